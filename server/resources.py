"""The ledger as MCP resources (read-only JSON). A bad parameter is an invalid-params error
(-32602) with a short message, never an internal error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_ledger import provenance

__all__ = ["register"]

_JSON = "application/json"


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


async def _read(fn: Callable[[], Any]) -> Any:
    """Run a ledger read in a worker thread; a bad parameter is an invalid-params error."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except provenance.QueryError as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from None


def register(server: MCPServer[Any], ledger_dir: Path) -> None:
    ledger = provenance.Ledger(ledger_dir)

    @server.resource(
        "provenance://spans{?tool,group,status,session,trace,since,until,principal,limit,cursor}",
        name="spans",
        description="Recorded tool calls, newest first, filtered; next_cursor pages on",
        mime_type=_JSON,
    )
    async def spans(
        tool: str = "",
        group: str = "",
        status: str = "",
        session: str = "",
        trace: str = "",
        since: str = "",
        until: str = "",
        principal: str = "",
        limit: str = "",
        cursor: str = "",
    ) -> str:
        page = await _read(
            lambda: ledger.query(
                tool=tool,
                group=group,
                status=status,
                session=session,
                trace=trace,
                since=since,
                until=until,
                principal=principal,
                limit=limit,
                cursor=cursor,
            )
        )
        return _dumps(page)

    @server.resource(
        "provenance://spans/{span_id}", name="span", description="One recorded tool call in full", mime_type=_JSON
    )
    async def span(span_id: str) -> str:
        record = await _read(lambda: ledger.span(span_id))
        if record is None:
            raise MCPError(INVALID_PARAMS, f"no span {span_id} in the ledger")
        return _dumps(record)

    @server.resource(
        "provenance://traces/{trace_id}",
        name="trace",
        description="Every recorded call of one trace, nested by parent",
        mime_type=_JSON,
    )
    async def trace(trace_id: str) -> str:
        roots = await _read(lambda: ledger.trace(trace_id))
        if not roots:
            raise MCPError(INVALID_PARAMS, f"no spans of trace {trace_id} in the ledger")
        return _dumps({"trace_id": trace_id, "spans": roots})

    @server.resource(
        "provenance://stats{?since,until}",
        name="stats",
        description="Per-tool counts, error rates, mean and p95 durations",
        mime_type=_JSON,
    )
    async def stats(since: str = "", until: str = "") -> str:
        return _dumps(await _read(lambda: ledger.stats(since=since, until=until)))

    @server.resource(
        "provenance://errors{?since,until,group,tool}",
        name="errors",
        description="What keeps failing: failed calls grouped by tool and error signature, newest first",
        mime_type=_JSON,
    )
    async def errors(since: str = "", until: str = "", group: str = "", tool: str = "") -> str:
        return _dumps(await _read(lambda: ledger.errors(since=since, until=until, group=group, tool=tool)))
