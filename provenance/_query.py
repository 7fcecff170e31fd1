"""Questions about the ledger: filtered span listings with stable cursors, traces, stats.

This is a correct full scan of every chain; results are newest first by span start time.
Cursors are opaque and stable while new spans arrive: a listing remembers when its first page was
taken and later pages only hold spans that were already recorded then, so paging returns every
span exactly once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal

import orjson

from provenance._segments import iter_lines, list_chains

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "QueryError",
    "SpanFilter",
    "SpanPage",
    "get_span",
    "get_trace",
    "iter_spans",
    "parse_limit",
    "parse_time",
    "query_spans",
    "span_stats",
    "summarize_span",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
Status = Literal["ok", "error"]


class QueryError(ValueError):
    """A query parameter is malformed; the message says which and what is accepted."""


_RELATIVE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_of_day(text: str) -> dt_time:
    return dt_time.fromisoformat(text if text.count(":") > 1 or len(text) > 5 else text.zfill(5))


def parse_time(value: str, *, name: str = "since", now_ns: int | None = None) -> int:
    """Unix ns from ISO-8601 (a time without offset is UTC) or a relative age (``15m``, ``2h``, ``7d``)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    match = _RELATIVE_RE.match(value)
    if match:
        return now_ns - int(float(match[1]) * _UNIT_SECONDS[match[2]] * 1_000_000_000)
    text = value.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
            today = datetime.fromtimestamp(now_ns / 1e9, tz=UTC).date()
            moment = datetime.combine(today, time_of_day(text))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"{name}: expected an ISO-8601 time (2026-11-27T10:00:00Z) or an age such as 15m, 2h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def parse_limit(value: int | str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"limit: expected a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {limit}")
    return limit


@dataclass(frozen=True)
class SpanFilter:
    tool: str | None = None
    group: str | None = None
    status: Status | None = None
    session: str | None = None
    trace: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    @classmethod
    def from_params(
        cls,
        *,
        tool: str | None = None,
        group: str | None = None,
        status: str | None = None,
        session: str | None = None,
        trace: str | None = None,
        since: str | None = None,
        until: str | None = None,
        now_ns: int | None = None,
    ) -> SpanFilter:
        """Build a filter from text parameters; empty strings mean "not set"."""
        if status:
            status = status.lower()
            if status not in ("ok", "error"):
                raise QueryError("status: expected ok or error")
        if trace and not re.fullmatch(r"[0-9a-f]{32}", trace):
            raise QueryError("trace: expected a trace id of 32 lowercase hex digits")
        since_ns = parse_time(since, name="since", now_ns=now_ns) if since else None
        until_ns = parse_time(until, name="until", now_ns=now_ns) if until else None
        return cls(
            tool=tool or None,
            group=group or None,
            status=status or None,  # type: ignore[arg-type]
            session=session or None,
            trace=trace or None,
            since_ns=since_ns,
            until_ns=until_ns,
        )

    def matches(self, span: dict[str, Any]) -> bool:
        attrs = span.get("attributes") or {}
        if self.tool is not None and attrs.get("gen_ai.tool.name") != self.tool:
            return False
        if self.group is not None and attrs.get("mcp-ledger.tool.group") != self.group:
            return False
        if self.status is not None and (span.get("status") or {}).get("code") != self.status.upper():
            return False
        if self.session is not None and self.session not in (
            attrs.get("mcp.session.id"),
            attrs.get("mcp-ledger.connection.id"),
        ):
            return False
        if self.trace is not None and span.get("trace_id") != self.trace:
            return False
        start = int(span.get("start_ns", 0))
        if self.since_ns is not None and start < self.since_ns:
            return False
        return self.until_ns is None or start <= self.until_ns

    def fingerprint(self) -> str:
        raw = orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()[:12]


def iter_spans(directory: Path) -> Iterator[dict[str, Any]]:
    """Every span record in every chain (complete lines only; a line being written is skipped)."""
    for segments in list_chains(Path(directory)).values():
        for segment in segments:
            try:
                data = segment.path.read_bytes()
            except FileNotFoundError:
                continue
            for _, line in iter_lines(data):
                if b'"type":"span"' not in line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict) and record.get("type") == "span":
                    yield record


def _order_key(span: dict[str, Any]) -> tuple[int, str]:
    return int(span.get("start_ns", 0)), str(span.get("span_id", ""))


@dataclass
class SpanPage:
    spans: list[dict[str, Any]]
    next_cursor: str | None


def _encode_cursor(key: tuple[int, str], taken_ns: int, fingerprint: str) -> str:
    raw = orjson.dumps({"k": [str(key[0]), key[1]], "t": str(taken_ns), "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> tuple[tuple[int, str], int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        key = (int(data["k"][0]), str(data["k"][1]))
        taken = int(data["t"])
        owner = data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        raise QueryError("cursor: not a cursor returned by this query; start again without one") from None
    if owner != fingerprint:
        raise QueryError("cursor: it belongs to a query with other filters; start again without one")
    return key, taken


def query_spans(
    directory: Path, span_filter: SpanFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> SpanPage:
    """Spans matching ``span_filter``, newest first, ``limit`` at a time."""
    limit = parse_limit(limit)
    fingerprint = span_filter.fingerprint()
    after: tuple[int, str] | None = None
    if cursor:
        after, taken_ns = _decode_cursor(cursor, fingerprint)
    else:
        taken_ns = time.time_ns()
    matches = []
    for span in iter_spans(directory):
        if int(span.get("end_ns", 0)) > taken_ns:
            continue
        if after is not None and _order_key(span) >= after:
            continue
        if span_filter.matches(span):
            matches.append(span)
    matches.sort(key=_order_key, reverse=True)
    page = matches[:limit]
    next_cursor = None
    if len(matches) > limit:
        next_cursor = _encode_cursor(_order_key(page[-1]), taken_ns, fingerprint)
    return SpanPage(page, next_cursor)


def get_span(directory: Path, span_id: str) -> dict[str, Any] | None:
    if not re.fullmatch(r"[0-9a-f]{16}", span_id):
        raise QueryError("span_id: expected 16 lowercase hex digits")
    needle = f'"span_id":"{span_id}"'.encode()
    for segments in list_chains(Path(directory)).values():
        for segment in segments:
            data = segment.path.read_bytes()
            if needle not in data:
                continue
            for _, line in iter_lines(data):
                if needle in line:
                    record = orjson.loads(line)
                    if record.get("span_id") == span_id:
                        return record  # type: ignore[no-any-return]
    return None


def get_trace(directory: Path, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans nested by parent: roots (oldest first), each with ``children``."""
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        raise QueryError("trace_id: expected 32 lowercase hex digits")
    spans = [summarize_span(s) for s in iter_spans(directory) if s.get("trace_id") == trace_id]
    spans.sort(key=lambda s: (int(s["start_ns"]), str(s["span_id"])))
    by_id = {s["span_id"]: s for s in spans}
    roots: list[dict[str, Any]] = []
    for span in spans:
        span["children"] = []
    for span in spans:
        parent = by_id.get(span.get("parent_span_id") or "")
        (parent["children"] if parent is not None else roots).append(span)
    return roots


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def span_stats(directory: Path, *, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, Any]:
    """Per tool: count, errors, error rate, mean and p95 duration (ms)."""
    span_filter = SpanFilter(since_ns=since_ns, until_ns=until_ns)
    durations: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    groups: dict[str, str] = {}
    for span in iter_spans(directory):
        if not span_filter.matches(span):
            continue
        attrs = span.get("attributes") or {}
        tool = str(attrs.get("gen_ai.tool.name") or "?")
        groups.setdefault(tool, str(attrs.get("mcp-ledger.tool.group") or ""))
        durations.setdefault(tool, []).append((int(span["end_ns"]) - int(span["start_ns"])) / 1e6)
        if (span.get("status") or {}).get("code") == "ERROR":
            errors[tool] = errors.get(tool, 0) + 1
    tools: list[dict[str, Any]] = []
    for tool, values in sorted(durations.items()):
        values.sort()
        tools.append(
            {
                "tool": tool,
                "group": groups[tool],
                "count": len(values),
                "errors": errors.get(tool, 0),
                "error_rate": round(errors.get(tool, 0) / len(values), 4),
                "mean_ms": round(sum(values) / len(values), 3),
                "p95_ms": round(_percentile(values, 95), 3),
            }
        )
    total = sum(len(values) for values in durations.values())
    total_errors = sum(errors.values())
    return {
        "count": total,
        "errors": total_errors,
        "error_rate": round(total_errors / total, 4) if total else 0.0,
        "tools": tools,
    }


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC) + timedelta(microseconds=(ns % 1_000_000_000) // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarize_span(span: dict[str, Any]) -> dict[str, Any]:
    """A compact view of a span for listings: who, what, when, how it ended, what it touched."""
    attrs = span.get("attributes") or {}
    status = span.get("status") or {}
    start, end = int(span.get("start_ns", 0)), int(span.get("end_ns", 0))
    summary: dict[str, Any] = {
        "span_id": span.get("span_id"),
        "trace_id": span.get("trace_id"),
        "parent_span_id": span.get("parent_span_id"),
        "tool": attrs.get("gen_ai.tool.name"),
        "group": attrs.get("mcp-ledger.tool.group"),
        "status": status.get("code"),
        "start": _iso(start),
        "start_ns": str(start),
        "duration_ms": round((end - start) / 1e6, 3),
        "connection": attrs.get("mcp-ledger.connection.id"),
        "client": attrs.get("mcp.client.name"),
    }
    if "error.type" in attrs:
        summary["error_type"] = attrs["error.type"]
        summary["message"] = status.get("message")
    inp = span.get("input") or {}
    summary["input"] = inp.get("preview")
    if span.get("upstream"):
        summary["upstream"] = span["upstream"]
    return summary
