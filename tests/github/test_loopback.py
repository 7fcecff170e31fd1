"""The loopback GitHub itself: it refuses traffic that GitHub's OpenAPI description does not allow,
so the tool tests cannot pass against shapes only our code accepts."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.github import bodies as b
from tests.github.fake import API_VERSION, FakeGitHub, Reply
from tests.github.spec import example

TOKEN = "loopback-test-token"
HEADERS = {"Authorization": f"token {TOKEN}", "X-GitHub-Api-Version": API_VERSION}


@pytest.fixture
def loop(httpserver: HTTPServer) -> FakeGitHub:
    return FakeGitHub(httpserver, TOKEN)


def get(fake: FakeGitHub, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request("GET", fake.url(path), headers=HEADERS, **kwargs)  # type: ignore[arg-type]


def test_a_response_body_missing_a_required_field_is_refused(loop: FakeGitHub) -> None:
    run = b.run(5)
    del run["head_sha"]
    loop.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, run))
    assert get(loop, "/repos/o/r/actions/runs/5").status_code == 599
    assert "head_sha' is a required property" in loop.violations[0]


def test_a_null_where_the_schema_is_not_nullable_is_refused(loop: FakeGitHub) -> None:
    loop.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, {**b.run(5), "display_title": None}))
    assert get(loop, "/repos/o/r/actions/runs/5").status_code == 599
    assert "display_title" in loop.violations[0]


def test_nullable_fields_accept_null(loop: FakeGitHub) -> None:
    loop.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, b.run(5, conclusion=None)))
    assert get(loop, "/repos/o/r/actions/runs/5").status_code == 200
    assert loop.violations == []


def test_unknown_query_parameters_paths_methods_and_bad_values_are_refused(loop: FakeGitHub) -> None:
    loop.on("GET", "/repos/{owner}/{repo}/actions/runs", Reply(200, {"total_count": 0, "workflow_runs": []}))
    assert get(loop, "/repos/o/r/actions/runs", params={"per_page": "5"}).status_code == 200
    assert get(loop, "/repos/o/r/actions/runs", params={"limit": "5"}).status_code == 599
    assert get(loop, "/repos/o/r/actions/runs", params={"per_page": "many"}).status_code == 599
    assert get(loop, "/repos/o/r/actions/runs", params={"status": "exploded"}).status_code == 599
    assert get(loop, "/repos/o/r/actions/artifacts").status_code == 599
    assert httpx.delete(loop.url("/repos/o/r/actions/runs"), headers=HEADERS).status_code == 599
    assert len(loop.violations) == 5


def test_request_bodies_and_headers_are_checked(loop: FakeGitHub) -> None:
    loop.on("POST", "/repos/{owner}/{repo}/issues", Reply(201, b.issue(1)))
    url = loop.url("/repos/o/r/issues")
    assert httpx.post(url, headers=HEADERS, json={"title": "ok"}).status_code == 201
    assert httpx.post(url, headers=HEADERS, json={"body": "no title"}).status_code == 599
    assert (
        httpx.post(url, headers={**HEADERS, "X-GitHub-Api-Version": "2026-03-10"}, json={"title": "x"}).status_code
        == 599
    )
    assert httpx.post(url, headers={"X-GitHub-Api-Version": API_VERSION}, json={"title": "x"}).status_code == 599
    assert len(loop.violations) == 3


def test_a_status_the_operation_does_not_list_is_refused_unless_it_is_a_basic_error(loop: FakeGitHub) -> None:
    loop.on("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(201, b.run(5)))
    loop.on("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}", Reply(401, {"message": "Bad credentials"}))
    assert get(loop, "/repos/o/r/actions/runs/5").status_code == 599
    assert get(loop, "/repos/o/r/actions/jobs/5").status_code == 401
    assert len(loop.violations) == 1


def test_example_bodies_are_validated_when_built() -> None:
    with pytest.raises(AssertionError, match="does not satisfy the spec"):
        example("workflow", state="sleeping")


def test_runner_and_cache_traffic_is_held_to_the_spec(loop: FakeGitHub) -> None:
    runner = b.runner(5, "r")
    del runner["busy"]
    loop.on("GET", "/repos/{owner}/{repo}/actions/runners", Reply(200, {"total_count": 1, "runners": [runner]}))
    loop.on("GET", "/orgs/{org}/actions/runners", Reply(200, {"total_count": 0, "runners": []}))
    loop.on("DELETE", "/repos/{owner}/{repo}/actions/caches", Reply(200, b.cache_list([])))
    loop.on("DELETE", "/repos/{owner}/{repo}/actions/caches/{cache_id}", Reply(204))
    assert get(loop, "/repos/o/r/actions/runners").status_code == 599
    assert "'busy' is a required property" in loop.violations[-1]
    assert get(loop, "/orgs/o/actions/runners", params={"status": "offline"}).status_code == 599
    assert "query parameter 'status' is not in the spec" in loop.violations[-1]
    caches = loop.url("/repos/o/r/actions/caches")
    assert httpx.delete(caches, headers=HEADERS, params={"key": "k"}).status_code == 200
    assert httpx.delete(caches, headers=HEADERS).status_code == 599
    assert "required query parameter 'key' is missing" in loop.violations[-1]
    assert httpx.delete(caches + "/abc", headers=HEADERS).status_code == 599
    assert httpx.delete(caches + "/7", headers=HEADERS).status_code == 204
    assert len(loop.violations) == 4
