"""What keeps failing: failed calls grouped by tool and error signature."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools._time import time_arg
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool
from mcp_ledger.tools.prov._backend import Ledger


class ErrorsArgs(ToolArgs):
    tool: str | None = Field(default=None, max_length=128)
    group: str | None = Field(default=None, max_length=64)
    since: str | None = time_arg("ISO-8601 or an age (15m, 2h, 7d)")
    until: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=provenance.Ledger.DEFAULT_GROUPS, ge=1, le=provenance.Ledger.MAX_GROUPS)


class ErrorGroups(ToolModel):
    groups: list[dict[str, Any]] = Field(
        description="Most recently failing first: tool, group, signature (the error with its variable parts "
        "masked), count, first_seen, last_seen, message (the newest), objects (the latest distinct upstream "
        "objects failed on), span_ids (the newest examples)"
    )
    failures: int = Field(description="Failed calls in all groups")
    more_groups: int = Field(description="Groups not shown: raise limit or narrow tool, group, since")


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_errors(args: ErrorsArgs, ledger: Ledger, ctx: Context) -> ErrorGroups:
    """What keeps failing: failed calls grouped by tool and error (ids, numbers, paths masked), newest first,
    with count, first/last seen, objects touched and example span ids."""
    answer = await ledger.read(
        lambda reader: reader.errors(
            since=args.since, until=args.until, group=args.group, tool=args.tool, limit=args.limit
        )
    )
    return ErrorGroups(**answer)
