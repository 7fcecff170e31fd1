"""Self-hosted runner tools through a real MCP client against the spec-checked loopback GitHub."""

from __future__ import annotations

from pathlib import Path

from tests.github import bodies as b
from tests.github.conftest import REPO_PATH, Connect
from tests.github.fake import FakeGitHub, Reply
from tests.harness import call_error, call_ok, only_span, spans

REPO = {"owner": b.OWNER, "repo": b.REPO}
REPO_RUNNERS = "/repos/{owner}/{repo}/actions/runners"
ORG_RUNNERS = "/orgs/{org}/actions/runners"


async def test_repository_runners_page_with_a_cursor_and_every_runner_id_reaches_the_ledger(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    runners = [
        b.runner(21, "build-1"),
        b.runner(22, "build-2", busy=True),
        b.runner(23, "gpu-1", status="offline"),
        b.runner(24, "mac-1", os="macOS"),
        b.runner(25, "mac-2", os="macOS", status="offline"),
    ]
    github_env.on(
        "GET", REPO_RUNNERS, github_env.paged(runners, lambda chunk: {"total_count": len(runners), "runners": chunk})
    )
    pages = []
    async with connect() as client:
        cursor = None
        for _ in range(5):
            page = await call_ok(client, "github_runner_list", {**REPO, "limit": 2, "cursor": cursor})
            pages.append(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert [len(page["runners"]) for page in pages] == [2, 2, 1]
    listed = [runner for page in pages for runner in page["runners"]]
    assert [r["id"] for r in listed] == [21, 22, 23, 24, 25]
    assert pages[0]["scope"] == f"{b.OWNER}/{b.REPO}" and pages[0]["total_count"] == 5
    assert listed[1] == {
        "id": 22,
        "name": "build-2",
        "os": "Linux",
        "status": "online",
        "busy": True,
        "labels": ["self-hosted", "Linux", "gpu"],
        "ephemeral": False,
        "version": "2.323.0",
        "runner_group_id": 1,
    }
    assert [r["name"] for r in listed if r["status"] == "offline" or r["busy"]] == ["build-2", "gpu-1", "mac-2"]
    assert [c.query for c in github_env.calls("actions/list-self-hosted-runners-for-repo")] == [
        {"per_page": "2"},
        {"per_page": "2", "page": "2"},
        {"per_page": "2", "page": "3"},
    ]
    recorded = spans(ledger_dir, "github_runner_list")
    assert [span["upstream"]["runner_ids"] for span in recorded] == [[21, 22], [23, 24], [25]]
    assert all(span["upstream"]["repository"] == f"{b.OWNER}/{b.REPO}" for span in recorded)
    assert recorded[0]["upstream"]["github_request"] == f"GET {REPO_PATH}/actions/runners"


async def test_without_repo_the_organization_runners_are_listed(
    github_env: FakeGitHub, connect: Connect, ledger_dir: Path
) -> None:
    org_runners = {"total_count": 1, "runners": [b.runner(7, "org-linux-1", status="offline")]}
    github_env.on("GET", ORG_RUNNERS, Reply(200, org_runners))
    async with connect(mode="legacy") as client:
        result = await call_ok(client, "github_runner_list", {"owner": b.OWNER})
    assert result["scope"] == b.OWNER and result["next_cursor"] is None
    assert result["runners"][0]["status"] == "offline"
    (request,) = github_env.calls("actions/list-self-hosted-runners-for-org")
    assert request.path == f"/orgs/{b.OWNER}/actions/runners"
    upstream = only_span(ledger_dir, "github_runner_list")["upstream"]
    assert upstream["organization"] == b.OWNER and upstream["runner_ids"] == [7]
    assert "repository" not in upstream


async def test_runner_list_without_admin_rights_names_the_scope_and_the_missing_permission(
    github_env: FakeGitHub, connect: Connect
) -> None:
    github_env.on(
        "GET",
        REPO_RUNNERS,
        Reply(
            403,
            {
                "message": "Must have admin rights to Repository.",
                "documentation_url": "https://docs.github.com/rest/actions/self-hosted-runners",
            },
        ),
    )
    async with connect() as client:
        text = await call_error(client, "github_runner_list", REPO)
        bad = await call_error(client, "github_runner_list", {"owner": "octo-org/../x"})
    assert text == (
        "GitHub refused access to runners of octo-org/hello (403: Must have admin rights to Repository.); "
        "the token lacks a permission or scope for it"
    )
    assert "owner" in bad and github_env.calls("actions/list-self-hosted-runners-for-org") == []
