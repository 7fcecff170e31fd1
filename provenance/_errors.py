"""What keeps failing: failed spans grouped by tool and error signature, newest group first.

Each group says how often it failed, when first and last, which objects its failures touched (the
upstream facts that name objects, ``_signature.error_objects``) and which spans are examples. The
index answers from ``spans_errors``, a partial index of failed spans that covers every question here;
the details of a group shown read at most ``SCANNED_PER_GROUP`` of its entries, and one record. Without an index (it
cannot be updated) the same answer comes from a full scan. Every list is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mcp_ledger.provenance._index import IndexedSpan, LedgerIndex
from mcp_ledger.provenance._query import QueryError, SpanFilter, _index, _NoLedger, iter_spans
from mcp_ledger.provenance._signature import error_columns
from mcp_ledger.provenance._span import GROUP, TOOL, _iso, is_error

__all__ = ["DEFAULT_GROUPS", "MAX_GROUPS", "error_groups", "parse_group_limit"]

DEFAULT_GROUPS = 10
MAX_GROUPS = 100
OBJECTS_SHOWN = 10  # the most recent distinct objects of a group
EXAMPLES_SHOWN = 3  # the most recent span ids of a group
SCANNED_PER_GROUP = 500  # a group's latest failures read for its objects and examples
FIRST_SCAN = 50


def parse_group_limit(value: int | str | None) -> int:
    if value is None or value == "":
        return DEFAULT_GROUPS
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"limit: expected a whole number of groups from 1 to {MAX_GROUPS}") from None
    if not 1 <= limit <= MAX_GROUPS:
        raise QueryError(f"limit: expected a whole number of groups from 1 to {MAX_GROUPS}, got {limit}")
    return limit


@dataclass
class _Group:
    tool: str | None
    signature: str
    count: int
    first_ns: int
    last_ns: int
    group: str | None
    # The group's latest failures, newest first: (span_id, objects as JSON text or None).
    latest: list[tuple[str, str | None]] = field(default_factory=list)
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        objects: dict[str, Any] = {}
        for _, text in self.latest:
            if text is not None and text not in objects and len(objects) < OBJECTS_SHOWN:
                objects[text] = orjson.loads(text)
        return {
            "tool": self.tool,
            "group": self.group,
            "signature": self.signature,
            "count": self.count,
            "first_seen": _iso(self.first_ns),
            "last_seen": _iso(self.last_ns),
            "message": self.message,
            "objects": list(objects.values()),
            "span_ids": [span_id for span_id, _ in self.latest[:EXAMPLES_SHOWN]],
        }


def _order(group: _Group) -> tuple[int, str, str]:
    return -group.last_ns, group.tool or "", group.signature


def error_groups(
    directory: Path, span_filter: SpanFilter, *, limit: int | str | None = DEFAULT_GROUPS
) -> dict[str, Any]:
    """The ``limit`` most recently failing groups of the failed spans that ``span_filter`` keeps:
    ``{"groups": [...], "failures": N, "more_groups": N}``."""
    limit = parse_group_limit(limit)
    try:
        index = _index(directory)
    except _NoLedger:
        return {"groups": [], "failures": 0, "more_groups": 0}
    if index is None:
        groups, total, failures = _scan_groups(directory, span_filter, limit)
    else:
        groups, total, failures = _indexed_groups(index, span_filter, limit)
    return {
        "groups": [group.as_dict() for group in groups],
        "failures": failures,
        "more_groups": total - len(groups),
    }


def _conditions(span_filter: SpanFilter, *, time_column: str) -> tuple[str, list[Any]]:
    """The filter over failed spans. A ``+column`` is not looked up by index: without statistics SQLite
    would rather walk spans_by_group or spans_by_start through every span than the failures alone."""
    where, params = ["error = 1"], []  # error = 1: the term that lets SQLite use the partial index
    for condition, value in (
        ("tool = ?", span_filter.tool),
        ("+grp = ?", span_filter.group),
        (f"{time_column} >= ?", span_filter.since_ns),
        (f"{time_column} <= ?", span_filter.until_ns),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    return " AND ".join(where), params


def _indexed_groups(index: LedgerIndex, span_filter: SpanFilter, limit: int) -> tuple[list[_Group], int, int]:
    condition, params = _conditions(span_filter, time_column="+start_ns")
    rows = index.rows(
        "SELECT tool, sig, n, first, last, grp, COUNT(*) OVER (), SUM(n) OVER () FROM ("
        " SELECT tool, sig, COUNT(*) AS n, MIN(start_ns) AS first, MAX(start_ns) AS last, MAX(grp) AS grp"
        f" FROM spans WHERE {condition} GROUP BY tool, sig"
        ") ORDER BY last DESC, COALESCE(tool, ''), sig LIMIT ?",
        [*params, limit],
    )
    if not rows:
        return [], 0, 0
    groups = [_Group(tool, sig, count, first, last, grp) for tool, sig, count, first, last, grp, _, _ in rows]
    condition, params = _conditions(span_filter, time_column="start_ns")  # within one group: by time
    for group in groups:
        latest: list[tuple[Any, ...]] = []
        for scanned in (FIRST_SCAN, SCANNED_PER_GROUP):  # most groups show their objects in the first few
            latest = index.rows(
                f"SELECT spans.id, span_id, objects FROM spans WHERE {condition} AND tool IS ? AND sig = ?"
                " ORDER BY start_ns DESC, span_id DESC LIMIT ?",
                [*params, group.tool, group.signature, scanned],
            )
            if len(latest) < scanned or len({row[2] for row in latest if row[2]}) >= OBJECTS_SHOWN:
                break
        group.latest = [(span_id, objects) for _, span_id, objects in latest]
        if latest:
            located = index.rows(
                "SELECT segments.name, off, len FROM spans JOIN segments ON segments.id = spans.seg WHERE spans.id = ?",
                [latest[0][0]],
            )
            for record in index.fetch([IndexedSpan(0, *row) for row in located]):
                group.message = (record.get("status") or {}).get("message")
    return groups, int(rows[0][6]), int(rows[0][7])


def _scan_groups(directory: Path, span_filter: SpanFilter, limit: int) -> tuple[list[_Group], int, int]:
    """The same groups by reading every span (the index cannot be updated)."""
    found: dict[tuple[str | None, str], list[tuple[int, str, str | None, str | None, str | None]]] = {}
    for span in iter_spans(directory):
        if not is_error(span) or not span_filter.matches(span):
            continue
        attributes = span.get("attributes") or {}
        signature, objects = error_columns(span)
        message = (span.get("status") or {}).get("message")
        found.setdefault((attributes.get(TOOL), signature), []).append(
            (int(span["start_ns"]), str(span["span_id"]), objects, attributes.get(GROUP), message)
        )
    groups = []
    for (tool, signature), failures in found.items():
        failures.sort(key=lambda failure: (failure[0], failure[1]), reverse=True)
        groups.append(
            _Group(
                tool,
                signature,
                len(failures),
                failures[-1][0],
                failures[0][0],
                max((f[3] for f in failures if f[3] is not None), default=None),
                [(span_id, objects) for _, span_id, objects, _, _ in failures[:SCANNED_PER_GROUP]],
                failures[0][4],
            )
        )
    groups.sort(key=_order)
    return groups[:limit], len(groups), sum(group.count for group in groups)
