"""``Ledger``: the one reader of a ledger directory, behind the CLI, the MCP resources and the prov tools.

Every front end hands it the caller's text as given (an empty string means "not set") and shows
what it returns; parsing times, limits, filters and cursors, and summarising spans, happen here
once. A bad parameter raises :class:`QueryError`, whose message names the parameter and what it
accepts; each front end turns that into its own invalid-argument answer (a tool error result,
JSON-RPC -32602, exit status 2). Calls block on files and SQLite: async callers run them in a
worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from mcp_ledger.provenance._checkpoint import CHECKPOINT_LOG, CheckpointReport, check_checkpoints, read_checkpoint_log
from mcp_ledger.provenance._errors import DEFAULT_GROUPS, MAX_GROUPS, error_groups
from mcp_ledger.provenance._export import ExportFormat, ExportReport, export_spans
from mcp_ledger.provenance._index import open_index, rebuild_index
from mcp_ledger.provenance._keys import PublicKey
from mcp_ledger.provenance._proof import prove_span
from mcp_ledger.provenance._query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SpanFilter,
    get_span,
    get_trace,
    iter_spans,
    parse_limit,
    parse_time,
    query_spans,
    span_stats,
    tail_spans,
)
from mcp_ledger.provenance._segments import default_ledger_dir, recover_torn_tails
from mcp_ledger.provenance._span import summarize_span
from mcp_ledger.provenance._verify import VerifyReport, verify

__all__ = ["Ledger"]


class Ledger:
    """Read access to the ledger in ``directory`` (default: ``$MCP_LEDGER_DIR``, else the XDG state dir)."""

    DEFAULT_LIMIT = DEFAULT_LIMIT
    MAX_LIMIT = MAX_LIMIT
    DEFAULT_GROUPS = DEFAULT_GROUPS
    MAX_GROUPS = MAX_GROUPS

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else default_ledger_dir()

    def query(
        self,
        *,
        tool: str | None = None,
        group: str | None = None,
        status: str | None = None,
        session: str | None = None,
        trace: str | None = None,
        since: str | None = None,
        until: str | None = None,
        principal: str | None = None,
        limit: int | str | None = None,
        cursor: str | None = None,
        full: bool = False,
    ) -> dict[str, Any]:
        """Recorded calls, newest first: ``{"spans": [...], "next_cursor": ...}`` (summaries unless ``full``).

        ``principal`` keeps one caller's calls (``enduser.id``: an HTTP caller's name, a stdio server's OS user)."""
        span_filter = SpanFilter.from_params(
            tool=tool,
            group=group,
            status=status,
            session=session,
            trace=trace,
            since=since,
            until=until,
            principal=principal,
        )
        page = query_spans(self.directory, span_filter, limit=parse_limit(limit), cursor=cursor or None)
        spans = page.spans if full else [summarize_span(span) for span in page.spans]
        return {"spans": spans, "next_cursor": page.next_cursor}

    def span(self, span_id: str) -> dict[str, Any] | None:
        """One recorded call in full, or None when the ledger has no span with that id."""
        return get_span(self.directory, span_id)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's calls as summaries nested by parent: roots oldest first, each with ``children``."""
        return get_trace(self.directory, trace_id)

    def stats(self, *, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Per tool and per group: count, errors, error rate, mean/p50/p95/p99 duration (ms)."""
        span_filter = SpanFilter.from_params(since=since, until=until)
        return span_stats(self.directory, since_ns=span_filter.since_ns, until_ns=span_filter.until_ns)

    def errors(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        group: str | None = None,
        tool: str | None = None,
        limit: int | str | None = None,
    ) -> dict[str, Any]:
        """What keeps failing: failed calls grouped by tool and error signature, the most recently failing
        group first, each with count, first and last seen, the newest message, the objects touched and
        example span ids: ``{"groups": [...], "failures": N, "more_groups": N}``."""
        span_filter = SpanFilter.from_params(tool=tool, group=group, since=since, until=until)
        return error_groups(self.directory, span_filter, limit=limit)

    def tail(
        self,
        *,
        after: int | None = None,
        last: int = 10,
        tool: str | None = None,
        group: str | None = None,
        status: str | None = None,
        session: str | None = None,
        trace: str | None = None,
        since: str | None = None,
        until: str | None = None,
        principal: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Summaries of the calls recorded (by any writer) after position ``after``, oldest first, and the new position.

        Without ``after``: the ``last`` most recent matching calls. Pass the position back to follow.
        """
        span_filter = SpanFilter.from_params(
            tool=tool,
            group=group,
            status=status,
            session=session,
            trace=trace,
            since=since,
            until=until,
            principal=principal,
        )
        spans, position = tail_spans(self.directory, span_filter, after_id=after, last=last)
        return [summarize_span(span) for span in spans], position

    def verify(self, *, workers: int | None = None) -> VerifyReport:
        """Check every chain: each line parses, ``seq`` has no gaps, every hash link matches."""
        return verify(self.directory, workers=workers)

    def check_checkpoints(self, keys: Sequence[PublicKey], *, witness: Path | None = None) -> CheckpointReport:
        """Check the signed checkpoints (and a witness's copies) with ``keys`` against the chains: their tails.

        Call it before :meth:`verify`: every line a checkpoint names is then already on disk.
        """
        return check_checkpoints(self.directory, keys, witness=witness)

    def checkpoint_count(self) -> int:
        """How many checkpoints the ledger's checkpoint log holds (nothing about them is checked)."""
        return len(read_checkpoint_log(self.directory / CHECKPOINT_LOG))

    def prove(self, span_id: str) -> dict[str, Any]:
        """An inclusion proof of the span against its chain's latest signed checkpoint (``ProofError`` if none)."""
        return prove_span(self.directory, span_id)

    def recover(self) -> list[Path]:
        """Set aside the torn last lines that crashed writers left; return the segments repaired."""
        return recover_torn_tails(self.directory)

    def reindex(self, *, rebuild: bool = False) -> int:
        """Bring the SQLite sidecar index up to date (or recreate it); return how many spans were added."""
        if rebuild:
            return rebuild_index(self.directory)
        return open_index(self.directory).catch_up()

    def export(
        self,
        out: Path | str | None,
        *,
        fmt: ExportFormat = "parquet",
        stdout: IO[bytes] | None = None,
        tool: str | None = None,
        group: str | None = None,
        status: str | None = None,
        session: str | None = None,
        trace: str | None = None,
        since: str | None = None,
        until: str | None = None,
        principal: str | None = None,
    ) -> ExportReport:
        """Write the matching spans into the new or empty directory ``out``: Parquet files partitioned by day,
        or the spans' JSON lines as they are in the ledger (``out=None``: the lines go to ``stdout``).

        Reads the segments straight, in bounded chunks (memory stays flat on any ledger size); a bad
        filter is a ``QueryError``, anything else that stops the export an ``ExportError``.
        """
        span_filter = SpanFilter.from_params(
            tool=tool,
            group=group,
            status=status,
            session=session,
            trace=trace,
            since=since,
            until=until,
            principal=principal,
        )
        return export_spans(self.directory, Path(out) if out is not None else None, span_filter, fmt=fmt, stdout=stdout)

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every span record of every chain, read straight from the segments (no index)."""
        return iter_spans(self.directory)

    @staticmethod
    def parse_time(value: str, *, name: str = "since") -> int:
        """Unix ns from what ``since``/``until`` accept: ISO-8601 (no offset = UTC) or an age (15m, 2h, 7d)."""
        return parse_time(value, name=name)
