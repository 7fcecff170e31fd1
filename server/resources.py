"""The ledger as MCP resources (read-only JSON). A bad parameter is an invalid-params error
(-32602) with a short message, never an internal error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

import provenance

__all__ = ["register"]

_JSON = "application/json"


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except provenance.QueryError as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from None


def register(server: MCPServer[Any], ledger_dir: Path) -> None:
    @server.resource(
        "provenance://spans{?tool,group,status,session,trace,since,until,limit,cursor}",
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
        limit: str = "",
        cursor: str = "",
    ) -> str:
        def run() -> dict[str, Any]:
            span_filter = provenance.SpanFilter.from_params(
                tool=tool, group=group, status=status, session=session, trace=trace, since=since, until=until
            )
            page = provenance.query_spans(
                ledger_dir, span_filter, limit=provenance.parse_limit(limit), cursor=cursor or None
            )
            return {
                "spans": [provenance.summarize_span(s) for s in page.spans],
                "next_cursor": page.next_cursor,
            }

        return _dumps(await _run(run))

    @server.resource(
        "provenance://spans/{span_id}", name="span", description="One recorded tool call in full", mime_type=_JSON
    )
    async def span(span_id: str) -> str:
        record = await _run(provenance.get_span, ledger_dir, span_id)
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
        roots = await _run(provenance.get_trace, ledger_dir, trace_id)
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
        def run() -> dict[str, Any]:
            since_ns = provenance.parse_time(since, name="since") if since else None
            until_ns = provenance.parse_time(until, name="until") if until else None
            return provenance.span_stats(ledger_dir, since_ns=since_ns, until_ns=until_ns)

        return _dumps(await _run(run))
