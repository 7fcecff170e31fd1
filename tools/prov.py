"""prov: the agent's view of the ledger — query spans, read a span or a trace, stats, verify.

All read-only. These tools read the ledger directory this server writes to (every writer's chains,
not just this process's). Calls to them are recorded like any other call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field

import provenance
from tools.group import GroupEnvironment, ToolArgs, ToolFailure, ToolGroup, ToolModel, tool

TimeArg = Field(
    default=None,
    description="ISO-8601 time (no offset = UTC) or an age such as 15m, 2h, 7d; compared with span start",
    max_length=64,
)


class QueryArgs(ToolArgs):
    tool: str | None = Field(default=None, description="Only calls of this tool", max_length=128)
    group: str | None = Field(default=None, description="Only calls of this tool group (docker, github, prov, …)")
    status: Literal["ok", "error"] | None = Field(default=None, description="Only successful or failed calls")
    session: str | None = Field(default=None, description="mcp.session.id or mcp-ledger.connection.id")
    trace: str | None = Field(
        default=None, description="Only spans of this trace id (32 hex)", pattern="^[0-9a-f]{32}$"
    )
    since: str | None = TimeArg
    until: str | None = TimeArg
    limit: int = Field(default=provenance.DEFAULT_LIMIT, ge=1, le=provenance.MAX_LIMIT, description="Page size")
    cursor: str | None = Field(default=None, description="next_cursor from the previous page", max_length=512)


class SpanList(ToolModel):
    spans: list[dict[str, Any]] = Field(description="Newest first; compact summaries (prov_span has the full record)")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class SpanArgs(ToolArgs):
    span_id: str = Field(
        description="16 hex digits, as in a result's _meta['mcp-ledger/span_id']", pattern="^[0-9a-f]{16}$"
    )


class SpanRecord(ToolModel):
    span: dict[str, Any] = Field(description="The full span as stored (digests, redacted previews, upstream facts)")


class TraceArgs(ToolArgs):
    trace_id: str = Field(description="32 hex digits", pattern="^[0-9a-f]{32}$")


class Trace(ToolModel):
    trace_id: str
    spans: list[dict[str, Any]] = Field(description="Root spans oldest first, each with its children nested")


class StatsArgs(ToolArgs):
    since: str | None = TimeArg
    until: str | None = TimeArg


class Stats(ToolModel):
    count: int
    errors: int
    error_rate: float
    tools: list[dict[str, Any]] = Field(
        description="Per tool: count, errors, error_rate, mean_ms, p50_ms, p95_ms, p99_ms"
    )
    groups: list[dict[str, Any]] = Field(description="The same per tool group")


class VerifyArgs(ToolArgs):
    pass


class Verification(ToolModel):
    ok: bool = Field(description="True when every chain is intact")
    chains: int
    spans: int
    lines: int
    failures: list[dict[str, Any]] = Field(description="Per broken chain: file, line and what failed")
    torn_files: list[str] = Field(description="Torn tails of crashed writers that were set aside")


class Ledger:
    """Read access to the ledger directory; file scans run in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def aclose(self) -> None:
        """Nothing stays open between calls."""

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: fn(self.directory, *args, **kwargs))
        except provenance.QueryError as exc:
            raise ToolFailure(str(exc)) from None


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_query(args: QueryArgs, ledger: Ledger, ctx: Context) -> SpanList:
    """List recorded tool calls, newest first, filtered by tool, group, status, session, trace and time.

    Returns compact summaries and a cursor for the next page."""
    try:
        span_filter = provenance.SpanFilter.from_fields(args)
    except provenance.QueryError as exc:
        raise ToolFailure(str(exc)) from None
    page = await ledger.run(provenance.query_spans, span_filter, limit=args.limit, cursor=args.cursor)
    return SpanList(spans=[provenance.summarize_span(s) for s in page.spans], next_cursor=page.next_cursor)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_span(args: SpanArgs, ledger: Ledger, ctx: Context) -> SpanRecord:
    """Read one recorded call in full: ids, timing, status, input/output digests and previews, upstream facts."""
    span = await ledger.run(provenance.get_span, args.span_id)
    if span is None:
        raise ToolFailure(f"no span {args.span_id} in the ledger; list spans with prov_query")
    return SpanRecord(span=span)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_trace(args: TraceArgs, ledger: Ledger, ctx: Context) -> Trace:
    """Read every recorded call of one trace, nested by parent span."""
    roots = await ledger.run(provenance.get_trace, args.trace_id)
    if not roots:
        raise ToolFailure(f"no spans of trace {args.trace_id} in the ledger")
    return Trace(trace_id=args.trace_id, spans=roots)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_stats(args: StatsArgs, ledger: Ledger, ctx: Context) -> Stats:
    """Per-tool and per-group call counts, error rates and p50/p95/p99 durations over a time range."""
    try:
        since = provenance.parse_time(args.since, name="since") if args.since else None
        until = provenance.parse_time(args.until, name="until") if args.until else None
    except provenance.QueryError as exc:
        raise ToolFailure(str(exc)) from None
    return Stats(**await ledger.run(provenance.span_stats, since_ns=since, until_ns=until))


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_verify(args: VerifyArgs, ledger: Ledger, ctx: Context) -> Verification:
    """Check that the ledger is intact: every line parses, seq has no gaps, every hash link matches."""
    report: provenance.VerifyReport = await ledger.run(provenance.verify)
    return Verification(**report.as_dict())


async def connect(environment: GroupEnvironment[Any]) -> Ledger:
    return Ledger(environment.ledger_dir)


def register() -> ToolGroup[Ledger]:
    group = ToolGroup("prov", "The ledger of recorded tool calls: query, inspect, verify", connect=connect)
    group.add_module(sys.modules[__name__])
    return group
