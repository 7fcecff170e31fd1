"""github: Actions (workflows, runs, jobs, logs), pull requests and issues, through githubkit (async).

Reads are read-only and idempotent. No write here is destructive (merge, close, cancel and rerun can
all be followed by another call that undoes or repeats them): each says so explicitly, and
``--read-only`` hides them all. Text written by other people comes back in ``untrusted_*`` fields and
the span records ``mcp-ledger.untrusted_content``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools._group import GroupEnvironment, GroupSettings, ToolGroup

if TYPE_CHECKING:
    from tools.github._backend import GitHubBackend

__all__ = ["SETTINGS", "GitHubSettings", "connect", "register"]


class GitHubSettings(GroupSettings):
    host: str | None = Field(
        default=None,
        description="GitHub Enterprise Server or ghe.com host (name or URL); default: GITHUB_API_URL, else github.com",
        max_length=255,
    )
    max_rate_limit_wait: float = Field(
        default=20.0, ge=0, le=300, description="seconds a call may wait out a rate limit before failing"
    )
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per GitHub request")


SETTINGS = GitHubSettings


async def connect(environment: GroupEnvironment) -> GitHubBackend:
    from tools.github._backend import open_backend

    settings = environment.settings
    assert isinstance(settings, GitHubSettings)
    return await open_backend(
        host=settings.host, max_rate_limit_wait=settings.max_rate_limit_wait, request_timeout=settings.timeout
    )


def register() -> ToolGroup:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from tools.github import actions, issues, pulls

    group = ToolGroup(
        "github", "GitHub Actions runs and logs, pull requests and issues", settings=GitHubSettings, connect=connect
    )
    for read in (
        actions.github_workflow_list,
        actions.github_run_list,
        actions.github_run_get,
        actions.github_job_logs,
        pulls.github_pr_list,
        pulls.github_pr_get,
        issues.github_issue_list,
        issues.github_issue_get,
    ):
        group.add(read, read_only=True, idempotent=True, open_world=True)
    group.add(actions.github_workflow_dispatch, read_only=False, destructive=False, idempotent=False)
    group.add(actions.github_run_rerun, read_only=False, destructive=False, idempotent=False)
    group.add(actions.github_run_cancel, read_only=False, destructive=False, idempotent=True)
    group.add(pulls.github_pr_create, read_only=False, destructive=False, idempotent=False)
    group.add(pulls.github_pr_review, read_only=False, destructive=False, idempotent=False)
    group.add(pulls.github_pr_merge, read_only=False, destructive=False, idempotent=True)
    group.add(issues.github_issue_create, read_only=False, destructive=False, idempotent=False)
    group.add(issues.github_issue_comment, read_only=False, destructive=False, idempotent=False)
    group.add(issues.github_issue_update, read_only=False, destructive=False, idempotent=True)
    return group
