"""Read tools against the real engine, through an MCP client; the spans name what was read."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from mcp_ledger.server.app import LedgerApp
from tests.docker.conftest import TEST_IMAGE, TEST_LABEL, Caller, Engine, check_against_spec
from tests.harness import last_span, ledger_text

pytestmark = pytest.mark.docker

SECRET = "planted-s3cret-value-7d1f0c"


async def test_system_info_names_engine_and_api_version(client: Caller, app: LedgerApp, engine: Engine) -> None:
    info = await client.ok("docker_system_info", {})
    assert info["engine"]["api_version"] == "1.41"
    assert info["engine"]["engine_version"].startswith("20.10")
    assert engine.host in info["address"]
    upstream = last_span(app, "docker_system_info")["upstream"]
    assert upstream == {"engine_version": info["engine"]["engine_version"], "api_version": "1.41"}
    check_against_spec("/version", "get", "200", engine.json("GET", "/version"))
    check_against_spec("/info", "get", "200", engine.json("GET", "/info"))


async def test_list_shows_exited_container_with_its_exit_code_and_pages(
    client: Caller, app: LedgerApp, engine: Engine, container: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    failed = container(["sh", "-c", "echo boom >&2; exit 3"], name=f"failed-{tag}", wait=True)
    running = [container(["sleep", "60"], name=f"run{i}-{tag}") for i in range(3)]

    exited = await client.ok("docker_container_list", {"status": "exited", "name": tag})
    assert [c["id"] for c in exited["containers"]] == [failed]
    summary = exited["containers"][0]
    assert summary["exit_code"] == 3 and summary["state"] == "exited"
    assert summary["name"] == f"failed-{tag}" and summary["image"] == TEST_IMAGE
    assert summary["labels"] == {TEST_LABEL: "1"}

    first = await client.ok("docker_container_list", {"name": tag, "limit": 2})
    assert first["total"] == 3 and len(first["containers"]) == 2 and first["next_cursor"]
    second = await client.ok("docker_container_list", {"name": tag, "limit": 2, "cursor": first["next_cursor"]})
    assert second["next_cursor"] is None
    seen = [c["id"] for c in first["containers"] + second["containers"]]
    assert sorted(seen) == sorted(running)

    upstream = last_span(app, "docker_container_list")["upstream"]
    assert upstream["container_ids"] == [c["id"] for c in second["containers"]]
    assert upstream["api_version"] == "1.41"
    raw = engine.json("GET", "/containers/json", params={"all": "1"})
    check_against_spec("/containers/json", "get", "200", raw)


async def test_list_filters_by_label_and_ancestor(client: Caller, engine: Engine, container: Any) -> None:
    mine = container(["sleep", "60"])
    by_label = await client.ok("docker_container_list", {"label": [f"{TEST_LABEL}=1"]})
    assert mine in [c["id"] for c in by_label["containers"]]
    by_other_label = await client.ok("docker_container_list", {"label": ["no.such.label"]})
    assert by_other_label["containers"] == []
    by_image = await client.ok("docker_container_list", {"ancestor": TEST_IMAGE})
    assert mine in [c["id"] for c in by_image["containers"]]


async def test_inspect_redacts_env_values_and_secret_labels(
    client: Caller, app: LedgerApp, engine: Engine, container: Any
) -> None:
    container_id = container(
        ["sleep", "60"],
        env=[f"API_TOKEN={SECRET}", "PLAIN=visible-but-env"],
        labels={"db.password": SECRET, "team": "ops"},
    )
    engine_label_id = engine.json("GET", f"/containers/{container_id}/json")
    check_against_spec("/containers/{id}/json", "get", "200", engine_label_id)

    details = await client.ok("docker_container_inspect", {"container": container_id[:12]})
    assert details["id"] == container_id
    assert "API_TOKEN=[REDACTED]" in details["env"] and "PLAIN=[REDACTED]" in details["env"]
    assert details["state"]["running"] is True and details["network_mode"] == "none"
    assert details["labels"] == {TEST_LABEL: "1", "db.password": "[REDACTED]", "team": "ops"}
    listed = await client.ok("docker_container_list", {"name": details["name"]})
    assert listed["containers"][0]["labels"]["db.password"] == "[REDACTED]"
    span = last_span(app, "docker_container_inspect")
    assert span["upstream"]["container_id"] == container_id
    assert span["upstream"]["container_name"] == details["name"]
    assert span["upstream"]["image_id"] == details["image_id"]
    assert SECRET not in ledger_text(app) and SECRET not in str(details) + str(listed)


async def test_logs_tell_stdout_from_stderr_and_default_to_100_lines(
    client: Caller, app: LedgerApp, container: Any
) -> None:
    script = "i=1; while [ $i -le 150 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done"
    container_id = container(["sh", "-c", script], wait=True)
    logs = await client.ok("docker_container_logs", {"container": container_id})
    assert len(logs["lines"]) == 100 and logs["truncated"] is True and logs["note"]
    everything = await client.ok("docker_container_logs", {"container": container_id, "tail": 400})
    assert len(everything["lines"]) == 300 and everything["truncated"] is False and everything["note"] is None
    by_stream = {
        stream: [line["text"] for line in everything["lines"] if line["stream"] == stream]
        for stream in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": [f"out-{i}" for i in range(1, 151)], "stderr": [f"err-{i}" for i in range(1, 151)]}

    only_err = await client.ok("docker_container_logs", {"container": container_id, "stdout": False, "tail": 5})
    assert [line["text"] for line in only_err["lines"]] == [f"err-{i}" for i in range(146, 151)]
    assert {line["stream"] for line in only_err["lines"]} == {"stderr"}

    grepped = await client.ok("docker_container_logs", {"container": container_id, "grep": r"^out-1\d$"})
    assert [line["text"] for line in grepped["lines"]] == [f"out-{i}" for i in range(10, 20)]
    assert grepped["truncated"] is False

    small = await client.ok("docker_container_logs", {"container": container_id, "max_bytes": 256})
    assert sum(len(line["text"]) + 1 for line in small["lines"]) <= 256
    assert small["truncated"] is True and "max_bytes" in small["note"]

    span = last_span(app, "docker_container_logs")
    assert span["upstream"]["container_id"] == container_id
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True


async def test_logs_since_until_and_timestamps(client: Caller, container: Any) -> None:
    container_id = container(["sh", "-c", "echo early; sleep 2; echo late"], wait=True)
    stamped = await client.ok("docker_container_logs", {"container": container_id, "timestamps": True})
    stamps, texts = zip(*(line["text"].split(" ", 1) for line in stamped["lines"]), strict=True)
    assert texts == ("early", "late")
    early = dt.datetime.fromisoformat(stamps[0][:26] + "+00:00")  # RFC 3339 nanoseconds -> microseconds
    middle = (early + dt.timedelta(seconds=1)).isoformat()
    after = await client.ok("docker_container_logs", {"container": container_id, "since": middle})
    assert [line["text"] for line in after["lines"]] == ["late"]
    before = await client.ok("docker_container_logs", {"container": container_id, "until": middle})
    assert [line["text"] for line in before["lines"]] == ["early"]
    recent = await client.ok("docker_container_logs", {"container": container_id, "since": "10m"})
    assert [line["text"] for line in recent["lines"]] == ["early", "late"]
    old = await client.ok("docker_container_logs", {"container": container_id, "until": f"{time.time() - 600}"})
    assert old["lines"] == []
    message = await client.error("docker_container_logs", {"container": container_id, "since": "yesterday"})
    assert "since: use ISO-8601" in message


async def test_stats_snapshot_of_a_running_container(client: Caller, app: LedgerApp, container: Any) -> None:
    container_id = container(["sh", "-c", "while :; do :; done"])
    stats = await client.ok("docker_container_stats", {"container": container_id})
    assert stats["container_id"] == container_id and stats["running"] is True
    assert stats["cpu_percent"] > 1
    assert stats["memory_usage_bytes"] > 0 and stats["memory_limit_bytes"] >= stats["memory_usage_bytes"]
    assert stats["pids"] >= 1
    assert last_span(app, "docker_container_stats")["upstream"]["container_id"] == container_id


async def test_image_list_and_inspect(client: Caller, app: LedgerApp, engine: Engine) -> None:
    listing = await client.ok("docker_image_list", {"reference": "local/busybox"})
    image = next(i for i in listing["images"] if TEST_IMAGE in i["repo_tags"])
    details = await client.ok("docker_image_inspect", {"image": TEST_IMAGE})
    assert details["id"] == image["id"] and details["os"] == "linux"
    assert details["env"] == ["PATH=[REDACTED]"] and details["command"] == ["/bin/sh"]
    assert len(details["layers"]) == 1
    assert last_span(app, "docker_image_inspect")["upstream"]["image_id"] == image["id"]
    assert image["id"] in last_span(app, "docker_image_list")["upstream"]["image_ids"]
    check_against_spec("/images/json", "get", "200", engine.json("GET", "/images/json"))
    check_against_spec("/images/{name}/json", "get", "200", engine.json("GET", f"/images/{TEST_IMAGE}/json"))


async def test_unknown_container_is_a_clear_error_naming_it(client: Caller, app: LedgerApp) -> None:
    for tool in ("docker_container_inspect", "docker_container_logs", "docker_container_stats"):
        message = await client.error(tool, {"container": "no-such-container-xyz"})
        assert "container 'no-such-container-xyz' not found" in message
        span = last_span(app, tool)
        assert span["status"]["code"] == "ERROR"
        assert span["attributes"]["error.type"] == "tool_error"


async def test_a_container_printing_its_environment_leaks_no_value(
    client: Caller, app: LedgerApp, container: Any
) -> None:
    container_id = container(
        ["sh", "-c", 'env; echo "connecting with $DB_PASSWORD" >&2; exit 1'],
        env=[f"DB_PASSWORD={SECRET}", "MODE=x"],
        wait=True,
    )
    logs = await client.ok("docker_container_logs", {"container": container_id, "tail": 200})
    texts = [line["text"] for line in logs["lines"]]
    assert "DB_PASSWORD=[REDACTED]" in texts
    assert "connecting with [REDACTED]" in texts
    assert "MODE=[REDACTED]" in texts  # every env value is a secret by nature; the names stay
    assert "SHLVL=1" in texts  # the shell's own variables are not the container's environment
    assert SECRET not in str(logs)
    assert SECRET not in ledger_text(app)
