"""prov: the agent's view of the ledger — query spans, read a span or a trace, stats, verify.

All read-only. These tools read the ledger directory this server writes to (every writer's chains,
not just this process's) through ``provenance.Ledger``, the reader the CLI and the resources use too.
Calls to them are recorded like any other call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field

import provenance
from tools._time import time_arg
from tools.group import GroupEnvironment, ToolArgs, ToolFailure, ToolGroup, ToolModel, tool

T = TypeVar("T")

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
    """The group's backend: the ledger's one reader, its reads run in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.reader = provenance.Ledger(directory)

    async def aclose(self) -> None:
        """Nothing stays open between calls."""

    async def read(self, question: Callable[[provenance.Ledger], T]) -> T:
        """Ask the reader; a bad parameter is an error result that says what to fix."""
        try:
            return await anyio.to_thread.run_sync(question, self.reader)
        except provenance.QueryError as exc:
            raise ToolFailure(str(exc)) from None


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_query(args: QueryArgs, ledger: Ledger, ctx: Context) -> SpanList:
    """List recorded tool calls, newest first, filtered by tool, group, status, session, trace and time.

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
    return Stats(**await ledger.read(lambda reader: reader.stats(since=args.since, until=args.until)))


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_verify(args: VerifyArgs, ledger: Ledger, ctx: Context) -> Verification:
    """Check that the ledger is intact: every line parses, seq has no gaps, every hash link matches."""
    report = await ledger.read(lambda reader: reader.verify())
    return Verification(**report.as_dict())


async def connect(environment: GroupEnvironment[Any]) -> Ledger:
    return Ledger(environment.ledger_dir)


def register() -> ToolGroup[Ledger]:
    group = ToolGroup("prov", "The ledger of recorded tool calls: query, inspect, verify", connect=connect)
    group.add_module(sys.modules[__name__])
    return group
