"""Query filters and cursor paging equal a brute-force scan; stats; traces; time parsing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_ledger import provenance
from mcp_ledger.provenance._query import SpanFilter, get_trace, parse_time, query_spans, span_stats
from tests.provenance.test_store import synthetic_span

TOOLS = ["docker_container_list", "docker_container_logs", "github_run_get", "prov_query"]
BASE_NS = 1_700_000_000_000_000_000


def build_ledger(directory: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    spans = []
    stores = [provenance.SpanStore(directory, fsync="never", segment_bytes=6000) for _ in range(2)]
    for i in range(n):
        span = synthetic_span(
            i,
            tool=rng.choice(TOOLS),
            status="ERROR" if rng.random() < 0.2 else "OK",
            start_ns=BASE_NS + rng.randrange(0, 50) * 1_000_000_000,  # many equal start times
        )
        span["attributes"]["mcp-ledger.connection.id"] = rng.choice(["c-a", "c-b"])
        span["trace_id"] = rng.choice(["a" * 32, "b" * 32, span["trace_id"]])
        rng.choice(stores).append(span)
        spans.append(span)
    for store in stores:
        store.close()
    return spans


def brute_force(spans: list[dict[str, Any]], span_filter: SpanFilter) -> list[str]:
    chosen = [s for s in spans if span_filter.matches(s)]
    chosen.sort(key=lambda s: (int(s["start_ns"]), s["span_id"]), reverse=True)
    return [s["span_id"] for s in chosen]


def page_through(directory: Path, span_filter: SpanFilter, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = query_spans(directory, span_filter, limit=limit, cursor=cursor)
        assert len(page.spans) <= limit
        seen += [s["span_id"] for s in page.spans]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


filters = st.builds(
    SpanFilter,
    tool=st.none() | st.sampled_from(TOOLS),
    group=st.none() | st.sampled_from(["docker", "github", "prov"]),
    status=st.none() | st.sampled_from(["ok", "error"]),
    session=st.none() | st.sampled_from(["c-a", "c-b", "c-none"]),
    trace=st.none() | st.sampled_from(["a" * 32, "b" * 32]),
    since_ns=st.none() | st.integers(BASE_NS, BASE_NS + 50 * 10**9),
    until_ns=st.none() | st.integers(BASE_NS, BASE_NS + 50 * 10**9),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(span_filter=filters, limit=st.integers(1, 40), seed=st.integers(0, 3))
def test_filters_and_paging_equal_a_brute_force_scan(
    tmp_path: Path, span_filter: SpanFilter, limit: int, seed: int
) -> None:
    directory = tmp_path / f"ledger-{seed}"
    if not directory.exists():
        build_ledger(directory, 150, seed)
    spans = list(provenance.Ledger(directory).scan())
    assert page_through(directory, span_filter, limit) == brute_force(spans, span_filter)


def test_paging_while_new_spans_arrive_returns_each_existing_span_once(tmp_path: Path) -> None:
    build_ledger(tmp_path, 100, 7)
    before = {s["span_id"] for s in provenance.Ledger(tmp_path).scan()}
    store = provenance.SpanStore(tmp_path, fsync="never")
    seen: list[str] = []
    cursor = None
    i = 0
    while True:
        page = query_spans(tmp_path, SpanFilter(), limit=7, cursor=cursor)
        seen += [s["span_id"] for s in page.spans]
        for _ in range(3):  # new spans land between pages, some with old start times
            store.append(synthetic_span(i, start_ns=BASE_NS + (i % 50) * 10**9))
            i += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    store.close()
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_default_and_maximum_limits(tmp_path: Path) -> None:
    build_ledger(tmp_path, 250, 1)
    assert len(query_spans(tmp_path, SpanFilter()).spans) == 20
    assert len(query_spans(tmp_path, SpanFilter(), limit=200).spans) == 200
    with pytest.raises(provenance.QueryError, match="limit"):
        query_spans(tmp_path, SpanFilter(), limit=201)


def test_a_cursor_from_another_query_is_refused(tmp_path: Path) -> None:
    build_ledger(tmp_path, 50, 2)
    page = query_spans(tmp_path, SpanFilter(status="ok"), limit=5)
    assert page.next_cursor
    with pytest.raises(provenance.QueryError, match="other filters"):
        query_spans(tmp_path, SpanFilter(status="error"), cursor=page.next_cursor)
    with pytest.raises(provenance.QueryError, match="cursor"):
        query_spans(tmp_path, SpanFilter(), cursor="not-a-cursor")


def test_stats_per_tool(tmp_path: Path) -> None:
    spans = build_ledger(tmp_path, 200, 3)
    stats = span_stats(tmp_path)
    assert stats["count"] == 200
    by_tool = {t["tool"]: t for t in stats["tools"]}
    for tool in TOOLS:
        mine = [s for s in spans if s["attributes"]["gen_ai.tool.name"] == tool]
        errors = sum(1 for s in mine if s["status"]["code"] == "ERROR")
        assert by_tool[tool]["count"] == len(mine) and by_tool[tool]["errors"] == errors
        assert by_tool[tool]["mean_ms"] == pytest.approx(0.5) and by_tool[tool]["p95_ms"] == pytest.approx(0.5)


def test_trace_is_nested_by_parent(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    root, child, grandchild = (synthetic_span(i) for i in range(3))
    for span in (root, child, grandchild):
        span["trace_id"] = "c" * 32
    child["parent_span_id"] = root["span_id"]
    grandchild["parent_span_id"] = child["span_id"]
    for span in (grandchild, root, child):
        store.append(span)
    store.close()
    (top,) = get_trace(tmp_path, "c" * 32)
    assert top["span_id"] == root["span_id"]
    assert top["children"][0]["span_id"] == child["span_id"]
    assert top["children"][0]["children"][0]["span_id"] == grandchild["span_id"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:00Z", 1795773600 * 10**9),
        ("2026-11-27T10:00:00", 1795773600 * 10**9),
        ("2026-11-27T11:00:00+01:00", 1795773600 * 10**9),
        ("2026-11-27", 1795737600 * 10**9),
        ("15m", 1795773600 * 10**9 - 15 * 60 * 10**9),
        ("2h", 1795773600 * 10**9 - 2 * 3600 * 10**9),
        ("7d", 1795773600 * 10**9 - 7 * 86400 * 10**9),
    ],
)
def test_times_are_iso_or_relative_and_bare_times_are_utc(text: str, expected: int) -> None:
    assert parse_time(text, now_ns=1795773600 * 10**9) == expected


@pytest.mark.parametrize("bad", ["yesterday", "15 minutes", "2026-13-01", ""])
def test_bad_times_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(provenance.QueryError, match="ISO-8601"):
        parse_time(bad)


async def test_resources_answer_bad_parameters_with_invalid_params(connect: Any) -> None:
    from mcp.shared.exceptions import MCPError

    async with connect() as (client, _):
        await client.call_tool("fake_echo", {})
        for uri, words in [
            ("provenance://spans?limit=abc", "limit"),
            ("provenance://spans?since=yesterday", "since"),
            ("provenance://spans?status=maybe", "status"),
            ("provenance://spans/zz", "span_id"),
            ("provenance://traces/123", "trace_id"),
            ("provenance://stats?until=soon", "until"),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.error.code == -32602 and words in caught.value.error.message
        listing = await client.read_resource("provenance://spans?tool=fake_echo&limit=5")
        assert '"tool":"fake_echo"' in listing.contents[0].text
        stats = await client.read_resource("provenance://stats?since=1h")
        assert '"count":1' in stats.contents[0].text
