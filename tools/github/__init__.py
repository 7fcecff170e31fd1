"""github: Actions (workflows, runs, jobs, logs, runners, caches), pull requests and issues, through githubkit.

Reads are read-only and idempotent. One write is destructive: deleting Actions caches (hidden unless
``--allow-destructive``). The others are not (merge, close, cancel and rerun can all be followed by
another call that undoes or repeats them): each says so explicitly, and ``--read-only`` hides them all.
Text written by other people comes back in ``untrusted_*`` fields and the span records
``mcp-ledger.untrusted_content``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from mcp_ledger.tools.group import GroupEnvironment, GroupSettings, ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.github._backend import GitHubBackend

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


async def connect(environment: GroupEnvironment[GitHubSettings]) -> GitHubBackend:
    from mcp_ledger.tools.github._backend import open_backend

    settings = environment.settings
    return await open_backend(
        host=settings.host, max_rate_limit_wait=settings.max_rate_limit_wait, request_timeout=settings.timeout
    )


def register() -> ToolGroup[GitHubBackend]:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from mcp_ledger.tools.github import actions, caches, issues, pulls, runners

    group = ToolGroup(
        "github",
        "GitHub Actions runs, logs, runners and caches, pull requests and issues",
        settings=GitHubSettings,
        connect=connect,
        requires=("githubkit",),
    )
    for module in (actions, runners, caches, pulls, issues):
        group.add_module(module)
    return group
