"""Error signatures: failures of one kind share one, whatever ids, numbers, paths or quoted values they
name; failures of different kinds keep apart. And the upstream facts that name objects."""

from __future__ import annotations

import pytest

from mcp_ledger.provenance._signature import (
    OBJECT_KEYS,
    OBJECT_VALUE_CHARS,
    SIGNATURE_CHARS,
    error_columns,
    error_objects,
    error_signature,
)

SAME_KIND = [
    pytest.param(
        [
            "container 'api-3' not found on the Docker engine at unix:///var/run/docker.sock: No such container: api-3",
            "container 'web' not found on the Docker engine at unix:///var/run/docker.sock: No such container: web",
        ],
        id="quoted value, repeated without quotes",
    ),
    pytest.param(
        [
            "not found: workflow run 1507610469 in acme/web (404); check the names and numbers",
            "not found: workflow run 88 in octo/data-pipeline (404); check the names and numbers",
        ],
        id="numbers and repositories",
    ),
    pytest.param(
        [
            "GitHub answered 502 for GET /repos/acme/web/pulls/123: Server Error",
            "GitHub answered 503 for GET /repos/o/r/pulls/9: Server Error",
        ],
        id="paths",
    ),
    pytest.param(
        [
            "request to https://api.github.com/repos/acme/web/actions/runs/99?page=2 failed",
            "request to https://api.github.com/user failed",
        ],
        id="a URL past its host",
    ),
    pytest.param(
        [
            "conflict: container 67e016ac600f is not running",
            "conflict: container 3f9a2c1 is not running",
        ],
        id="hex ids",
    ),
    pytest.param(
        [
            "image sha256:" + "ab" * 32 + " not found; pulled at 2026-11-27T10:00:00Z",
            "image sha256:" + "0c" * 32 + " not found; pulled at 2026-12-01T23:59:59.123+01:00",
        ],
        id="digests and times",
    ),
    pytest.param(
        [
            "pod web-7d9f8c9b4-xk2lp in 123e4567-e89b-12d3-a456-426614174000 gone",
            "pod worker-5f6c7d8e9f-abcde in 00000000-0000-4000-8000-000000000000 gone",
        ],
        id="generated names and UUIDs",
    ),
    pytest.param(
        [
            "endpoint worker-12: Bind for 0.0.0.0:8080 failed after 30s",
            "endpoint db_3: Bind for 10.1.2.3:5432 failed after 2s",
        ],
        id="names with a number, addresses and durations",
    ),
    pytest.param(
        ["cannot read /var/lib/app/config.json: denied", "cannot read ~/x/y.yaml: denied"],
        id="absolute and home paths",
    ),
]


@pytest.mark.parametrize("messages", SAME_KIND)
def test_failures_of_one_kind_share_a_signature(messages: list[str]) -> None:
    signatures = {error_signature("tool_error", message) for message in messages}
    assert len(signatures) == 1, signatures


DIFFERENT_KINDS = [
    ("tool_error", "container 'api' not found on the Docker engine"),
    ("tool_error", "container 'api' is not running"),
    ("tool_error", "the Docker engine did not answer in time"),
    ("timeout", "the Docker engine did not answer in time"),
    ("-32602", "Invalid arguments for tool: limit must be less than or equal to 200"),
    ("tool_error", None),
]


def test_failures_of_different_kinds_keep_apart() -> None:
    signatures = [error_signature(kind, message) for kind, message in DIFFERENT_KINDS]
    assert len(set(signatures)) == len(signatures), signatures


def test_a_signature_reads_as_the_error_with_its_variable_parts_named() -> None:
    signature = error_signature(
        "tool_error",
        "container 'api-3' not found on the Docker engine at unix:///var/run/docker.sock: No such container: api-3",
    )
    assert signature == (
        "tool_error: container <str> not found on the Docker engine at unix:<path>: No such container: <str>"
    )
    assert error_signature("tool_error", "GitHub answered 404 for GET /repos/a/b: check the owner") == (
        "tool_error: GitHub answered <n> for GET <path>: check the owner"
    )
    assert error_signature("cancelled", None) == "cancelled"
    assert error_signature(None, "") == "error"


def test_words_of_the_message_stay_and_apostrophes_are_not_quotes() -> None:
    signature = error_signature("tool_error", "can't find 'x y' in docker_container_list, doesn't exist")
    assert signature == "tool_error: can't find <str> in docker_container_list, doesn't exist"


def test_a_signature_is_bounded_and_the_same_in_every_process() -> None:
    long = " ".join(f"word{i % 7}x and 'v{i}' again v{i}" for i in range(400))
    signature = error_signature("tool_error", long)
    assert len(signature) <= SIGNATURE_CHARS
    assert signature == error_signature("tool_error", long)
    # Hostile shapes (long runs that make a naive pattern backtrack) still give a bounded signature.
    for hostile in ["a-" * 5000, "'a " * 5000, "1." * 5000, "a_" * 5000, '"' * 5000, "x" * 9999 + "-1"]:
        assert len(error_signature("e", hostile)) <= SIGNATURE_CHARS


def test_objects_are_the_upstream_facts_that_name_objects() -> None:
    upstream = {
        "container_id": "4f2a9c0e1b7d" * 5,
        "container_name": "api-3",
        "engine_version": "27.3.1",  # a setting, not an object
        "github_request_id": "ABCD:1234",  # a request, not an object
        "hub_request_id": ["r1", "r2"],
        "k8s.audit_id": "a-1",
        "mcp-ledger.upstream.request_id": "x",
        "gen_ai.request.model": "m",
        "k8s.namespace.name": "default",
        "k8s.object.uids": ["u1", "u2", "u3", "u4", "u5"],
        "repository": "acme/web",
        "run_id": 99,
        "http.response.status_code": 404,
        "exit_code": 137,
        "k8s.dry_run": True,
    }
    assert error_objects(upstream) == {
        "container_id": "4f2a9c0e1b7d" * 5,
        "container_name": "api-3",
        "k8s.namespace.name": "default",
        "k8s.object.uids": "u1, u2, u3 (+2)",
        "repository": "acme/web",
        "run_id": 99,
    }
    assert error_objects({}) is None and error_objects(None) is None and error_objects({"count": 3}) is None


def test_objects_are_bounded() -> None:
    upstream = {f"thing{i}_id": "x" * 1000 for i in range(50)}
    objects = error_objects(upstream)
    assert objects is not None and len(objects) == OBJECT_KEYS
    assert all(len(str(value)) <= OBJECT_VALUE_CHARS for value in objects.values())


def test_columns_of_a_damaged_record_do_not_fail() -> None:
    assert error_columns({"status": "ERROR", "attributes": None, "upstream": [1]}) == ("error", None)
    assert error_columns({"status": {"message": 5}, "attributes": {"error.type": 7}}) == ("7", None)
