"""Recorded calls: list them, read one in full, read a trace, per-tool statistics."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.provenance import otlp
from mcp_ledger.tools._time import time_arg
from mcp_ledger.tools.group import ToolArgs, ToolFailure, ToolModel, tool
from mcp_ledger.tools.prov._backend import Ledger

TimeArg = time_arg("ISO-8601 time (no offset = UTC) or an age such as 15m, 2h, 7d; compared with span start")


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
    principal: str | None = Field(default=None, description="Only calls of this caller (enduser.id)", max_length=256)
    limit: int = Field(
        default=provenance.Ledger.DEFAULT_LIMIT, ge=1, le=provenance.Ledger.MAX_LIMIT, description="Page size"
    )
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
    proof: dict[str, Any] | None = Field(
        default=None,
        description="Merkle inclusion proof against the latest signed checkpoint; anyone can check it offline "
        "with `mcp-ledger verify-proof FILE --public-key KEY`",
    )
    proof_unavailable: str | None = Field(default=None, description="Why there is no proof (yet)")


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
    otlp_export: dict[str, Any] | None = Field(
        default=None,
        description="OTLP export (--otlp-endpoint): spans exported, dropped (queue full), failed (collector did not "
        "take them) and pending, in total and per server since it started (this server's live); null if none exported",
    )


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_query(args: QueryArgs, ledger: Ledger, ctx: Context) -> SpanList:
    """List recorded tool calls, newest first, filtered by tool, group, status, session, trace, caller and time.

    Returns compact summaries and a cursor for the next page."""
    page = await ledger.read(
        lambda reader: reader.query(
            tool=args.tool,
            group=args.group,
            status=args.status,
            session=args.session,
            trace=args.trace,
            since=args.since,
            until=args.until,
            principal=args.principal,
            limit=args.limit,
            cursor=args.cursor,
        )
    )
    return SpanList(**page)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_span(args: SpanArgs, ledger: Ledger, ctx: Context) -> SpanRecord:
    """Read one recorded call in full: ids, timing, status, input/output digests and previews, upstream facts,
    and an inclusion proof against the latest signed checkpoint (evidence a third party can check)."""
    span = await ledger.read(lambda reader: reader.span(args.span_id))
    if span is None:
        raise ToolFailure(f"no span {args.span_id} in the ledger; list spans with prov_query")
    try:
        proof = await ledger.read(lambda reader: reader.prove(args.span_id))
    except provenance.ProofError as exc:
        return SpanRecord(span=span, proof_unavailable=str(exc))
    return SpanRecord(span=span, proof=proof)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_trace(args: TraceArgs, ledger: Ledger, ctx: Context) -> Trace:
    """Read every recorded call of one trace, nested by parent span."""
    roots = await ledger.read(lambda reader: reader.trace(args.trace_id))
    if not roots:
        raise ToolFailure(f"no spans of trace {args.trace_id} in the ledger")
    return Trace(trace_id=args.trace_id, spans=roots)


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_stats(args: StatsArgs, ledger: Ledger, ctx: Context) -> Stats:
    """Per-tool and per-group call counts, error rates and p50/p95/p99 durations over a time range."""
    stats = await ledger.read(lambda reader: reader.stats(since=args.since, until=args.until))
    return Stats(**stats, otlp_export=await ledger.read(lambda reader: otlp.export_status(reader.directory)))
