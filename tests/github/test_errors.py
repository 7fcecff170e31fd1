"""Auth, upstream errors, rate limits, base URLs, read-only gating, secrets — through a real MCP client."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request

from mcp_ledger.tools.github import GitHubSettings
from tests.conftest import URL_USER_PASSWORD
from tests.github import bodies as b
from tests.github.conftest import ENV_TOKEN, Connect
from tests.github.fake import FakeGitHub, Reply
from tests.harness import call_error, call_ok, effective_hints, ledger_bytes, only_span

REPO = {"owner": b.OWNER, "repo": b.REPO}
RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}"
WRITES = {
    "github_workflow_dispatch",
    "github_run_rerun",
    "github_run_cancel",
    "github_pr_create",
    "github_pr_review",
    "github_pr_merge",
    "github_issue_create",
    "github_issue_comment",
    "github_issue_update",
}
READS = {
    "github_workflow_list",
    "github_run_list",
    "github_run_get",
    "github_job_logs",
    "github_pr_list",
    "github_pr_get",
    "github_issue_list",
    "github_issue_get",
    "github_runner_list",
    "github_cache_list",
}
DESTRUCTIVE = {"github_cache_delete"}


async def test_missing_token_is_a_clear_not_configured_error(
    monkeypatch: pytest.MonkeyPatch, connect: Connect, ledger_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gh CLI to ask
    async with connect() as client:
        text = await call_error(client, "github_run_list", REPO)
    assert text == "not configured: set GITHUB_TOKEN or GH_TOKEN (or log in with `gh auth login`)"
    assert only_span(ledger_dir, "github_run_list")["status"]["code"] == "ERROR"


async def test_token_comes_from_gh_auth_token_when_no_variable_is_set(
    monkeypatch: pytest.MonkeyPatch, fake: FakeGitHub, connect: Connect, ledger_dir: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\n[ "$1 $2" = "auth token" ] && echo {ENV_TOKEN} && exit 0\nexit 1\n')
    gh.chmod(0o755)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
    fake.on("GET", "/repos/{owner}/{repo}/actions/runs", Reply(200, {"total_count": 0, "workflow_runs": []}))
    async with connect() as client:
        result = await call_ok(client, "github_run_list", REPO)
    assert result["runs"] == []
    assert ENV_TOKEN.encode() not in ledger_bytes(ledger_dir)


async def test_rejected_token_says_which_variable_to_set(github_env: FakeGitHub, connect: Connect) -> None:
    github_env.on(
        "GET", RUN, Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
    )
    async with connect() as client:
        text = await call_error(client, "github_run_get", {**REPO, "run_id": 5})
    assert text.startswith("GitHub rejected the token (401 Bad credentials): set GITHUB_TOKEN or GH_TOKEN")


async def test_not_found_names_the_object(github_env: FakeGitHub, connect: Connect, ledger_dir: Path) -> None:
    github_env.on("GET", RUN, Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}))
    async with connect() as client:
        text = await call_error(client, "github_run_get", {**REPO, "run_id": 424242})
    assert text.startswith("not found: workflow run 424242 in octo-org/hello (404)")
    span = only_span(ledger_dir, "github_run_get")
    assert span["attributes"]["error.type"] == "tool_error" and span["upstream"]["github_request_id"].startswith("F00D")


async def test_validation_failed_quotes_github_with_secrets_redacted(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    leaked = "ghp_" + "LeakedIn422Message0123456789abcdefgh"
    github_env.on(
        "POST",
        "/repos/{owner}/{repo}/issues",
        Reply(
            422,
            {
                "message": "Validation Failed",
                "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                "errors": [
                    {"resource": "Issue", "field": "assignees", "code": "invalid", "message": f"no user {leaked}"}
                ],
            },
        ),
    )
    async with connect() as client:
        text = await call_error(client, "github_issue_create", {**REPO, "title": "x", "assignees": ["ghost"]})
    assert text.startswith(
        "GitHub rejected the request for an issue in octo-org/hello (422): Validation Failed: no user"
    )
    assert leaked not in text
    assert leaked.encode() not in ledger_bytes(ledger_dir)


async def test_a_short_rate_limit_is_waited_out(github_env: FakeGitHub, connect: Connect, ledger_dir: Path) -> None:
    attempts = []

    def limited_once(request: Request, params: dict[str, str]) -> Reply:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return Reply(
                403,
                {
                    "message": "You have exceeded a secondary rate limit.",
                    "documentation_url": "https://docs.github.com",
                },
                {"Retry-After": "1"},
            )
        return Reply(200, b.run(5))

    github_env.on("GET", RUN, limited_once)
    github_env.on("GET", RUN + "/jobs", Reply(200, {"total_count": 0, "jobs": []}))
    async with connect() as client:
        result = await call_ok(client, "github_run_get", {**REPO, "run_id": 5})
    assert result["run"]["id"] == 5
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.9
    assert only_span(ledger_dir, "github_run_get")["upstream"]["rate_limit_waited_s"] == 1.0


async def test_a_long_rate_limit_is_an_error_naming_the_time(github_env: FakeGitHub, connect: Connect) -> None:
    reset = int(time.time()) + 3600
    github_env.on(
        "GET",
        RUN,
        Reply(
            403,
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        ),
    )
    started = time.monotonic()
    async with connect() as client:
        text = await call_error(client, "github_run_get", {**REPO, "run_id": 5})
    assert time.monotonic() - started < 5, "must not sleep out an hour-long limit"
    assert "primary rate limit exceeded; rate limited until " in text
    until = text.split("rate limited until ")[1].split(" ")[0]
    assert abs(datetime.fromisoformat(until).timestamp() - reset) <= 2
    assert len(github_env.calls("actions/get-workflow-run")) == 1


@pytest.mark.parametrize("how", ["GITHUB_API_URL", "--github-host"])
async def test_enterprise_server_base_url(
    how: str, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer, connect: Connect, ledger_dir: Path
) -> None:
    ghes = FakeGitHub(httpserver, ENV_TOKEN, prefix="/api/v3")
    monkeypatch.setenv("GITHUB_TOKEN", ENV_TOKEN)
    settings = GitHubSettings(max_rate_limit_wait=3)
    if how == "GITHUB_API_URL":
        monkeypatch.setenv("GITHUB_API_URL", ghes.base_url)
    else:
        monkeypatch.setenv("GITHUB_API_URL", "https://api.github.com")  # the flag wins over the variable
        settings = GitHubSettings(host=httpserver.url_for("/").rstrip("/"))
    ghes.on("GET", "/repos/{owner}/{repo}/actions/workflows", Reply(200, {"total_count": 0, "workflows": []}))
    async with connect(github=settings) as client:
        await call_ok(client, "github_workflow_list", REPO)
    assert ghes.violations == []
    assert [s.path for s in ghes.seen] == ["/repos/octo-org/hello/actions/workflows"]
    assert only_span(ledger_dir, "github_workflow_list")["upstream"]["github_request"] == (
        "GET /repos/octo-org/hello/actions/workflows"
    )


async def test_read_only_hides_every_write_tool_and_keeps_every_read_and_destructive_ones_need_allowing(
    github_env: FakeGitHub, connect: Connect
) -> None:
    async with connect(read_only=True) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools if tool.name.startswith("github_")}
    assert listed == READS
    async with connect() as client:
        default = {tool.name for tool in (await client.list_tools()).tools if tool.name.startswith("github_")}
    assert default == READS | WRITES
    async with connect(allow_destructive=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools if tool.name.startswith("github_")}
    assert set(tools) == READS | WRITES | DESTRUCTIVE
    for name, tool in tools.items():
        hints = effective_hints(tool.annotations)
        assert hints["readOnlyHint"] is (name in READS), name
        assert name in READS or hints["destructiveHint"] is (name in DESTRUCTIVE), name
        assert hints["openWorldHint"] is True, name


async def test_environment_token_never_reaches_the_ledger_even_on_errors(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    github_env.on("GET", RUN, Reply(500, {"message": f"internal error near {ENV_TOKEN}"}))
    async with connect() as client:
        text = await call_error(client, "github_run_get", {**REPO, "run_id": 5})
        await call_error(client, "github_issue_comment", {**REPO, "number": 1, "body": ""})
    assert "GitHub answered 500" in text and ENV_TOKEN not in text
    assert ENV_TOKEN.encode() not in ledger_bytes(ledger_dir)


async def test_a_password_in_github_api_url_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, connect: Connect, ledger_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("GITHUB_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", f"http://ghuser:{URL_USER_PASSWORD}@127.0.0.1:{port}/api/v3")
    async with connect() as client:
        text = await call_error(client, "github_issue_get", {**REPO, "number": 1})
        listing = await client.read_resource("provenance://spans?limit=10")
    assert f"cannot reach GitHub at http://[REDACTED:url-userinfo]@127.0.0.1:{port}/api/v3" in text
    for where, blob in [
        ("error text", text),
        ("resource", listing.contents[0].text),
        ("ledger", ledger_bytes(ledger_dir).decode("latin-1")),  # the index is binary
        ("stderr", capfd.readouterr().err),
    ]:
        assert URL_USER_PASSWORD not in blob, where
