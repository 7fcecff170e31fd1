"""The index is derived data that always equals a scan: interleaved writers, crashes mid-update, rebuilds."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_ledger import provenance
from mcp_ledger.provenance._index import open_index, rebuild_index
from mcp_ledger.provenance._query import SpanFilter, query_spans, span_stats
from tests.provenance.test_query import TOOLS, brute_force, page_through
from tests.provenance.test_store import synthetic_span


class Crash(Exception):
    pass


ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 1), st.integers(1, 30)),
        st.tuples(st.just("catch_up_crash"), st.integers(0, 5)),
        st.tuples(st.just("catch_up"), st.just(0)),
        st.tuples(st.just("rebuild"), st.just(0)),
        st.tuples(st.just("torn_tail"), st.booleans()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops, seed=st.integers(0, 1000))
def test_index_equals_a_scan_after_writes_crashes_and_rebuilds(
    tmp_path: Path, steps: list[tuple[Any, ...]], seed: int
) -> None:
    directory = tmp_path / f"ledger-{seed}-{len(steps)}-{abs(hash(tuple(steps)))}"
    rng = random.Random(seed)
    stores = [provenance.SpanStore(directory, fsync="never", segment_bytes=8000) for _ in range(2)]
    n = 0
    try:
        for step in steps:
            match step:
                case ("write", which, count):
                    for _ in range(count):
                        span = synthetic_span(n, tool=rng.choice(TOOLS), status=rng.choice(["OK", "ERROR"]))
                        stores[which].append(span)
                        n += 1
                case ("catch_up_crash", after):
                    if directory.exists():
                        index = open_index(directory)

                        def crash(name: str, rows: int, after: int = after) -> None:
                            raise Crash(name)

                        index.before_commit = crash
                        try:
                            with pytest.raises(Crash):
                                index.catch_up()
                        except pytest.fail.Exception:
                            pass  # nothing new to index: no transaction to crash
                        finally:
                            index.before_commit = None
                case ("catch_up", _):
                    if directory.exists():
                        open_index(directory).catch_up()
                case ("rebuild", _):
                    if directory.exists():
                        rebuild_index(directory)
                case ("torn_tail", zero_tail):
                    # A crashed third writer leaves a torn line (and, killed with its space reserved, the
                    # zero bytes after it); the next store to open repairs it.
                    if directory.exists():
                        dead = provenance.SpanStore(directory, fsync="never")
                        dead.append(synthetic_span(n))
                        n += 1
                        path = dead.current_segment
                        dead.close()
                        assert path is not None
                        with open(path, "ab") as f:
                            f.write(b'{"attributes":{"half' + (b"\x00" * 5000 if zero_tail else b""))
                        open_index(directory).catch_up()
                        provenance.Ledger(directory).recover()
        if not directory.exists():
            return
        everything = list(provenance.Ledger(directory).scan())
        for span_filter in (
            SpanFilter(),
            SpanFilter(status="error"),
            SpanFilter(tool=TOOLS[0]),
        ):
            assert page_through(directory, span_filter, 7) == brute_force(everything, span_filter)
        stats = span_stats(directory)
        assert stats["count"] == len(everything)
    finally:
        for store in stores:
            store.close()


def test_catch_up_sees_another_live_processes_spans(tmp_path: Path) -> None:
    """A second process writes while this one queries; each query sees what was written before it."""
    script = (
        "import sys, time, provenance\n"
        "from tests.provenance.test_store import synthetic_span\n"
        "store = provenance.SpanStore(sys.argv[1], fsync='never')\n"
        "for i in range(5):\n"
        "    store.append(synthetic_span(i, tool='github_run_get'))\n"
        "print('written', flush=True)\n"
        "sys.stdin.readline()\n"
        "store.close()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
        page = query_spans(tmp_path, SpanFilter(tool="github_run_get"))
        assert len(page.spans) == 5
        report = provenance.Ledger(tmp_path).verify()
        assert report.ok and report.chains[0].live
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=30)


def test_index_survives_a_segment_cut_back_by_torn_tail_recovery(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    for i in range(3):
        store.append(synthetic_span(i))
    path = store.current_segment
    store.close()
    assert path is not None
    with open(path, "ab") as f:
        f.write(b"garbage that is not json\n")  # a whole but damaged last line gets indexed past...
    open_index(tmp_path).catch_up()
    provenance.Ledger(tmp_path).recover()  # ...then cut back
    store = provenance.SpanStore(tmp_path, fsync="never")
    store.append(synthetic_span(9))
    store.close()
    everything = list(provenance.Ledger(tmp_path).scan())
    assert page_through(tmp_path, SpanFilter(), 2) == brute_force(everything, SpanFilter())


@pytest.mark.parametrize(("key", "value"), [("attributes", []), ("attributes", "x"), ("status", []), ("start_ns", {})])
def test_a_span_line_of_the_wrong_shape_is_skipped_by_the_index_and_query(tmp_path: Path, key: str, value: Any) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    store.append(synthetic_span(0))
    path = store.current_segment
    store.close()
    assert path is not None
    damaged = {**synthetic_span(1), key: value}  # still JSON, only of the wrong shape
    with open(path, "ab") as f:
        f.write(orjson.dumps(damaged) + b"\n")
    listed = subprocess.run(
        [sys.executable, "-m", "mcp_ledger.server", "query", "--json", "--ledger-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert len(orjson.loads(listed.stdout)["spans"]) == 1


def test_a_rebuild_invalidates_old_cursors_with_a_clear_message(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never")
    for i in range(30):
        store.append(synthetic_span(i))
    store.close()
    page = query_spans(tmp_path, SpanFilter(), limit=5)
    rebuild_index(tmp_path)
    with pytest.raises(provenance.QueryError, match="rebuilt"):
        query_spans(tmp_path, SpanFilter(), limit=5, cursor=page.next_cursor)


def test_queries_fall_back_to_a_scan_when_the_index_cannot_be_written(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path / "ledger", fsync="never")
    for i in range(12):
        store.append(synthetic_span(i, status="ERROR" if i % 3 else "OK"))
    store.close()
    (tmp_path / "ledger" / "index.sqlite").mkdir()  # not a database: sqlite cannot open it
    everything = list(provenance.Ledger(tmp_path / "ledger").scan())
    span_filter = SpanFilter(status="error")
    assert page_through(tmp_path / "ledger", span_filter, 3) == brute_force(everything, span_filter)
    assert span_stats(tmp_path / "ledger")["count"] == 12


async def test_fsync_always_makes_the_result_wait_for_the_disk_and_shares_fsyncs(
    connect: Any, ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, float]] = []
    real = os.fdatasync
    lock = threading.Lock()

    def slow_fsync(fd: int) -> None:
        with lock:
            events.append(("fsync-start", time.monotonic()))
        time.sleep(0.3)
        real(fd)
        with lock:
            events.append(("fsync-end", time.monotonic()))

    monkeypatch.setattr(os, "fdatasync", slow_fsync)
    async with connect(fsync="always") as (client, _):
        started = time.monotonic()
        await client.call_tool("fake_echo", {})
        first_done = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(client.call_tool, "fake_echo", {"text": str(i)})
    assert first_done - started >= 0.3  # the result waited for the slow fsync
    assert any(kind == "fsync-end" and t <= first_done for kind, t in events)
    flushes_for_eight = sum(1 for kind, t in events if kind == "fsync-start" and t > first_done)
    assert 1 <= flushes_for_eight < 8  # concurrent calls shared fsyncs (group commit)
    assert len(list(provenance.Ledger(ledger_dir).scan())) == 9


def test_tail_follow_shows_spans_from_two_writers(tmp_path: Path) -> None:
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_ledger.server",
            "tail",
            "-f",
            "--json",
            "--interval",
            "0.1",
            "--ledger-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        writers = [provenance.SpanStore(tmp_path, fsync="never") for _ in range(2)]
        for i, store in enumerate(writers):
            span = synthetic_span(i, tool=f"docker_writer{i}")
            span["attributes"]["mcp-ledger.connection.id"] = f"c-writer-{i}"
            store.append(span)
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        assert tail.stdout is not None
        while seen != {"c-writer-0", "c-writer-1"} and time.monotonic() < deadline:
            line = tail.stdout.readline()
            if line:
                seen.add(orjson.loads(line)["connection"])
        for store in writers:
            store.close()
        assert seen == {"c-writer-0", "c-writer-1"}
    finally:
        tail.terminate()
        tail.wait(timeout=10)
