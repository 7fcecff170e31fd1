"""Self-hosted Actions runners of a repository or an organisation: name, OS, status, busy, labels."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.github._backend import GitHubBackend, next_page
from mcp_ledger.tools.github._models import CURSOR_PATTERN, NAME_PATTERN, page
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool


class RunnerListArgs(ToolArgs):
    owner: str = Field(pattern=NAME_PATTERN)
    repo: str | None = Field(default=None, description="Omit for organization runners", pattern=NAME_PATTERN)
    limit: int = Field(default=30, ge=1, le=100)
    cursor: str | None = Field(default=None, description="next_cursor from the previous page", pattern=CURSOR_PATTERN)


class Runner(ToolModel):
    id: int
    name: str
    os: str
    status: str = Field(description="online or offline")
    busy: bool = Field(description="Running a job now")
    labels: list[str]
    ephemeral: bool | None
    version: str | None = Field(description="Runner software version (null before its first connection)")
    runner_group_id: int | None


class RunnerList(ToolModel):
    scope: str = Field(description="owner/repo, or the organization")
    runners: list[Runner]
    total_count: int = Field(description="Runners in the scope, all pages")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


def _runner(runner: dict[str, Any]) -> Runner:
    return Runner(
        id=runner["id"],
        name=runner["name"],
        os=runner["os"],
        status=runner["status"],
        busy=runner["busy"],
        labels=[label["name"] for label in runner["labels"]],
        ephemeral=runner.get("ephemeral"),
        version=runner.get("version"),
        runner_group_id=runner.get("runner_group_id"),
    )


@tool(read_only=True, idempotent=True, open_world=True)
async def github_runner_list(args: RunnerListArgs, backend: GitHubBackend, ctx: Context) -> RunnerList:
    """Self-hosted runners of a repo, or of an org (no repo): status (online/offline), busy, OS, labels."""
    if args.repo is None:
        scope, path, what = args.owner, f"/orgs/{args.owner}/actions/runners", f"runners of organization {args.owner}"
        annotate(organization=args.owner)
    else:
        scope = f"{args.owner}/{args.repo}"
        path, what = f"/repos/{scope}/actions/runners", f"runners of {scope}"
        annotate(repository=scope)
    response = await backend.request("GET", path, what=what, params={"per_page": args.limit, "page": page(args.cursor)})
    body = response.json()
    runners = [_runner(runner) for runner in body["runners"]]
    annotate(runner_ids=[runner.id for runner in runners])
    return RunnerList(
        scope=scope,
        runners=runners,
        total_count=body["total_count"],
        next_cursor=next_page(response.headers.get("link")),
    )
