"""Questions about the ledger: filtered span listings with stable cursors, traces, stats.

Questions go through the SQLite sidecar index (caught up first, so other writers' spans are seen
at once); records are read back from the segments by byte offset. Results are newest first by span
start time. ``iter_spans`` and ``SpanFilter.matches`` are the plain-scan reference for the same
questions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal

import orjson

from mcp_ledger.provenance._index import IndexUnavailable, LedgerIndex, open_index
from mcp_ledger.provenance._segments import iter_lines, list_chains
from mcp_ledger.provenance._span import CONNECTION, ENDUSER_ID, GROUP, SESSION, TOOL, summarize_span

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
    "tail_spans",
]

logger = logging.getLogger("mcp_ledger.query")

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
Status = Literal["ok", "error"]


class QueryError(ValueError):
    """A query parameter is malformed; the message says which and what is accepted."""


_RELATIVE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_of_day(text: str) -> dt_time:
    return dt_time.fromisoformat(text if text.count(":") > 1 or len(text) > 5 else text.zfill(5))


# Times are compared as signed 64-bit nanoseconds (the index is SQLite): 1677-09-21 to 2262-04-11.
MIN_NS = -(2**63)
MAX_NS = 2**63 - 1
_TIME_RANGE = "between 1678-01-01 and 2262-01-01"


def parse_time(value: str, *, name: str = "since", now_ns: int | None = None) -> int:
    """Unix ns from ISO-8601 (a time without offset is UTC) or a relative age (``15m``, ``2h``, ``7d``).

    A time outside what a span's start can be compared with (64-bit nanoseconds) is a QueryError.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    match = _RELATIVE_RE.match(value)
    if match:
        try:
            ns = now_ns - int(float(match[1]) * _UNIT_SECONDS[match[2]] * 1_000_000_000)
        except OverflowError:  # an age with hundreds of digits is infinite as a float
            ns = MIN_NS - 1
        if ns < MIN_NS:
            raise QueryError(f"{name}: the age {match[1]}{match[2]} reaches back before 1678; use a shorter one")
        return ns
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
    try:
        ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    except (OverflowError, ValueError):  # year 1 with a positive offset is before the year 1 in UTC
        ns = MIN_NS - 1
    if not MIN_NS <= ns <= MAX_NS:
        raise QueryError(f"{name}: {text[:40]!r} is out of range; give a time {_TIME_RANGE}")
    return ns


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


FILTER_PARAMS = ("tool", "group", "status", "session", "trace", "since", "until", "principal")


@dataclass(frozen=True)
class SpanFilter:
    tool: str | None = None
    group: str | None = None
    status: Status | None = None
    session: str | None = None
    trace: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    principal: str | None = None

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
        principal: str | None = None,
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
            principal=principal or None,
        )

    @classmethod
    def from_fields(cls, source: Any) -> SpanFilter:
        """From any object with the filter's text parameters as attributes (CLI arguments, tool input)."""
        return cls.from_params(**{name: getattr(source, name, None) for name in FILTER_PARAMS})

    def matches(self, span: dict[str, Any]) -> bool:
        attrs = span.get("attributes") or {}
        if self.tool is not None and attrs.get(TOOL) != self.tool:
            return False
        if self.group is not None and attrs.get(GROUP) != self.group:
            return False
        if self.status is not None and (span.get("status") or {}).get("code") != self.status.upper():
            return False
        if self.session is not None and self.session not in (
            attrs.get(SESSION),
            attrs.get(CONNECTION),
        ):
            return False
        if self.trace is not None and span.get("trace_id") != self.trace:
            return False
        if self.principal is not None and attrs.get(ENDUSER_ID) != self.principal:
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


@dataclass
class SpanPage:
    spans: list[dict[str, Any]]
    next_cursor: str | None


def _where(span_filter: SpanFilter) -> tuple[list[str], list[Any]]:
    """The filter as SQL over the index; ``SpanFilter.matches`` is the same question for one span."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("tool", span_filter.tool),
        ("grp", span_filter.group),
        ("trace_id", span_filter.trace),
        ("principal", span_filter.principal),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if span_filter.status is not None:
        where.append("error = ?")
        params.append(1 if span_filter.status == "error" else 0)
    if span_filter.session is not None:
        where.append("(session = ? OR connection = ?)")
        params += [span_filter.session, span_filter.session]
    if span_filter.since_ns is not None:
        where.append("start_ns >= ?")
        params.append(span_filter.since_ns)
    if span_filter.until_ns is not None:
        where.append("start_ns <= ?")
        params.append(span_filter.until_ns)
    return where, params


class _NoLedger(Exception):
    pass


def _index(directory: Path) -> LedgerIndex | None:
    """The caught-up index; None when it cannot be updated (then questions are answered by a scan).

    The index is derived data: a full disk or a file-size limit must not stop anyone from reading
    the ledger itself.
    """
    if not Path(directory).is_dir():
        raise _NoLedger
    try:
        index = open_index(directory)
        index.catch_up()
    except (IndexUnavailable, OSError) as exc:
        logger.warning("ledger index unavailable (%s); answering by a full scan", exc)
        return None
    return index


SCAN_GENERATION = "scan"


def _scan_records(directory: Path, span_filter: SpanFilter) -> list[dict[str, Any]]:
    return [span for span in iter_spans(directory) if span_filter.matches(span)]


def _encode_cursor(key: tuple[int, str], watermark: int, generation: str, fingerprint: str) -> str:
    raw = orjson.dumps({"k": [str(key[0]), key[1]], "w": watermark, "g": generation, "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, generation: str, fingerprint: str) -> tuple[tuple[int, str], int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        key = (int(data["k"][0]), str(data["k"][1]))
        watermark = int(data["w"])
        owner, made_by = data["f"], data["g"]
        if not (MIN_NS <= key[0] <= MAX_NS and 0 <= watermark <= MAX_NS):  # what SQLite and a span can hold
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        raise QueryError("cursor: not a cursor returned by this query; start again without one") from None
    if owner != fingerprint:
        raise QueryError("cursor: it belongs to a query with other filters; start again without one")
    if made_by != generation:
        raise QueryError("cursor: the index was rebuilt since; start again without one")
    return key, watermark


def query_spans(
    directory: Path, span_filter: SpanFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> SpanPage:
    """Spans matching ``span_filter``, newest first by start time, ``limit`` at a time.

    A cursor remembers the last span shown and the index position when the first page was taken:
    later pages hold only spans indexed by then, so paging returns every span exactly once.
    """
    limit = parse_limit(limit)
    fingerprint = span_filter.fingerprint()
    try:
        index = _index(directory)
    except _NoLedger:
        return SpanPage([], None)
    if index is None:
        return _scan_page(directory, span_filter, limit, cursor, fingerprint)
    where, params = _where(span_filter)
    if cursor:
        after, watermark = _decode_cursor(cursor, index.generation, fingerprint)
        where.append("(start_ns, span_id) < (?, ?)")
        params += [after[0], after[1]]
    else:
        watermark = index.max_id()
    where.append("spans.id <= ?")
    params.append(watermark)
    located = index.select(where, params, order="start_ns DESC, span_id DESC", limit=limit + 1)
    page = list(index.fetch(located[:limit]))
    next_cursor = None
    if len(located) > limit and page:
        last = page[-1]
        next_cursor = _encode_cursor(
            (int(last["start_ns"]), str(last["span_id"])), watermark, index.generation, fingerprint
        )
    return SpanPage(page, next_cursor)


def _scan_page(directory: Path, span_filter: SpanFilter, limit: int, cursor: str | None, fingerprint: str) -> SpanPage:
    """The same page by a full scan; its watermark is a time (spans that ended later are left out)."""
    if cursor:
        after, taken_ns = _decode_cursor(cursor, SCAN_GENERATION, fingerprint)
    else:
        after, taken_ns = None, time.time_ns()
    chosen = [
        span
        for span in _scan_records(directory, span_filter)
        if int(span["end_ns"]) <= taken_ns and (after is None or _order_key(span) < after)
    ]
    chosen.sort(key=_order_key, reverse=True)
    page = chosen[:limit]
    next_cursor = None
    if len(chosen) > limit:
        next_cursor = _encode_cursor(_order_key(page[-1]), taken_ns, SCAN_GENERATION, fingerprint)
    return SpanPage(page, next_cursor)


def _order_key(span: dict[str, Any]) -> tuple[int, str]:
    return int(span.get("start_ns", 0)), str(span.get("span_id", ""))


def tail_spans(
    directory: Path, span_filter: SpanFilter, *, after_id: int | None, last: int = 10
) -> tuple[list[dict[str, Any]], int]:
    """Spans indexed after ``after_id`` in the order they were recorded (all writers), and the new position.

    With ``after_id=None``: the ``last`` most recent matching spans, oldest first.
    """
    try:
        index = _index(directory)
    except _NoLedger:
        return [], after_id or 0
    if index is None:
        raise QueryError("tail needs the ledger index, which cannot be updated here (see the warning)")
    where, params = _where(span_filter)
    if after_id is None:
        located = index.select(where, params, order="spans.id DESC", limit=last)[::-1]
    else:
        where.append("spans.id > ?")
        params.append(after_id)
        located = index.select(where, params, order="spans.id", limit=None)
    position = located[-1].id if located else (after_id if after_id is not None else index.max_id())
    return list(index.fetch(located)), position


def get_span(directory: Path, span_id: str) -> dict[str, Any] | None:
    if not re.fullmatch(r"[0-9a-f]{16}", span_id):
        raise QueryError("span_id: expected 16 lowercase hex digits")
    try:
        index = _index(directory)
    except _NoLedger:
        return None
    if index is None:
        return next((s for s in iter_spans(directory) if s.get("span_id") == span_id), None)
    for record in index.fetch(index.select(["span_id = ?"], [span_id], order="spans.id", limit=5)):
        if record.get("span_id") == span_id:
            return record
    return None


def get_trace(directory: Path, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans nested by parent: roots (oldest first), each with ``children``."""
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        raise QueryError("trace_id: expected 32 lowercase hex digits")
    try:
        index = _index(directory)
    except _NoLedger:
        return []
    if index is None:
        records = sorted(_scan_records(directory, SpanFilter(trace=trace_id)), key=_order_key)
    else:
        located = index.select(["trace_id = ?"], [trace_id], order="start_ns, span_id", limit=10_000)
        records = list(index.fetch(located))
    spans = [summarize_span(s) for s in records if s.get("trace_id") == trace_id]
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


def _summary(values: list[float], errors: int) -> dict[str, Any]:
    values.sort()
    return {
        "count": len(values),
        "errors": errors,
        "error_rate": round(errors / len(values), 4),
        "mean_ms": round(sum(values) / len(values), 3),
        "p50_ms": round(_percentile(values, 50), 3),
        "p95_ms": round(_percentile(values, 95), 3),
        "p99_ms": round(_percentile(values, 99), 3),
    }


def span_stats(directory: Path, *, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, Any]:
    """Per tool and per group: count, errors, error rate, mean/p50/p95/p99 duration (ms)."""
    span_filter = SpanFilter(since_ns=since_ns, until_ns=until_ns)
    try:
        index = _index(directory)
    except _NoLedger:
        index, rows = None, []
    else:
        if index is not None:
            where, params = _where(span_filter)
            sql = "SELECT tool, grp, error, end_ns - start_ns FROM spans WHERE " + (" AND ".join(where) or "1")
            rows = index.rows(sql, params)
        else:
            rows = [
                (
                    (s.get("attributes") or {}).get(TOOL),
                    (s.get("attributes") or {}).get(GROUP),
                    (s.get("status") or {}).get("code") == "ERROR",
                    int(s["end_ns"]) - int(s["start_ns"]),
                )
                for s in _scan_records(directory, span_filter)
            ]
    per_tool: dict[str, list[float]] = {}
    per_group: dict[str, list[float]] = {}
    tool_errors: dict[str, int] = {}
    group_errors: dict[str, int] = {}
    tool_group: dict[str, str] = {}
    for tool, group, error, duration in rows:
        tool, group = tool or "?", group or ""
        tool_group.setdefault(tool, group)
        per_tool.setdefault(tool, []).append(duration / 1e6)
        per_group.setdefault(group, []).append(duration / 1e6)
        if error:
            tool_errors[tool] = tool_errors.get(tool, 0) + 1
            group_errors[group] = group_errors.get(group, 0) + 1
    total_errors = sum(tool_errors.values())
    return {
        "count": len(rows),
        "errors": total_errors,
        "error_rate": round(total_errors / len(rows), 4) if rows else 0.0,
        "tools": [
            {"tool": tool, "group": tool_group[tool], **_summary(values, tool_errors.get(tool, 0))}
            for tool, values in sorted(per_tool.items())
        ],
        "groups": [
            {"group": group, **_summary(values, group_errors.get(group, 0))}
            for group, values in sorted(per_group.items())
        ],
    }
