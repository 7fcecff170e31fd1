"""The store on disk: chains, headers, rotation, locks, torn tails, verification of tampering."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import random
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_ledger import provenance
from mcp_ledger.provenance import _store as store_module
from mcp_ledger.provenance._store import line_digest
from mcp_ledger.provenance._verify import UnfinishedTail


def synthetic_span(
    i: int, *, tool: str = "fake_echo", status: str = "OK", start_ns: int | None = None
) -> dict[str, Any]:
    start = start_ns if start_ns is not None else 1_700_000_000_000_000_000 + i * 1_000_000
    attrs: dict[str, Any] = {"gen_ai.tool.name": tool, "mcp-ledger.tool.group": tool.split("_")[0]}
    if status == "ERROR":
        attrs["error.type"] = "tool_error"
    return {
        "type": "span",
        "trace_id": secrets.token_hex(16),
        "span_id": secrets.token_hex(8),
        "parent_span_id": None,
        "name": f"tools/call {tool}",
        "kind": "SERVER",
        "start_ns": str(start),
        "end_ns": str(start + 500_000),
        "status": {"code": status, "message": None},
        "attributes": attrs,
        "input": {"sha256": "0" * 64, "size": 2, "preview": "{}", "truncated": False, "redactions": []},
        "output": {"sha256": "0" * 64, "size": 2, "preview": "{}", "truncated": False, "redactions": []},
        "upstream": {},
    }


def write_chain(directory: Path, n: int, **kwargs: Any) -> provenance.SpanStore:
    store = provenance.SpanStore(directory, fsync="never", **kwargs)
    for i in range(n):
        store.append(synthetic_span(i))
    return store


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_nothing_is_created_until_the_first_span(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path / "ledger")
    store.close()
    assert not (tmp_path / "ledger").exists()


def test_chain_starts_with_a_header_and_links_every_line(tmp_path: Path) -> None:
    write_chain(tmp_path, 5).close()
    (path,) = segment_files(tmp_path)
    lines = path.read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert records[0]["type"] == "header" and records[0]["prev"] is None and records[0]["seq"] == 0
    for prev_line, record, seq in zip(lines[:-1], records[1:], range(1, 6), strict=True):
        assert record["seq"] == seq and record["prev"] == line_digest(prev_line)
    assert all(line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) for line in lines)
    assert provenance.Ledger(tmp_path).verify().ok


def test_rotation_continues_the_chain_across_segments(tmp_path: Path) -> None:
    write_chain(tmp_path, 60, segment_bytes=4096).close()
    files = segment_files(tmp_path)
    assert len(files) > 3
    seqs = []
    for index, path in enumerate(files):
        first = orjson.loads(path.read_bytes().splitlines()[0])
        assert first["type"] == "header" and first["segment"] == index
        assert path.stat().st_size <= 4096
        seqs += [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]
    assert seqs == list(range(len(seqs)))
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 60 and len(report.chains) == 1


def test_a_missing_middle_segment_is_reported(tmp_path: Path) -> None:
    write_chain(tmp_path, 60, segment_bytes=4096).close()
    segment_files(tmp_path)[1].unlink()
    report = provenance.Ledger(tmp_path).verify()
    assert not report.ok and "missing" in report.failures[0].reason


def test_the_writer_holds_an_exclusive_lock_on_its_segment(tmp_path: Path) -> None:
    store = write_chain(tmp_path, 1)
    (path,) = segment_files(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        store.close()
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_batch_fsync_flushes_a_write_made_during_a_flush_and_groups_a_burst(tmp_path: Path) -> None:
    import threading
    import time

    calls: list[float] = []
    inside, release = threading.Event(), threading.Event()

    def fsync(fd: int) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:  # hold the first flush until a write has come in during it
            inside.set()
            assert release.wait(5)
        os.fdatasync(fd)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(calls) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(calls) >= count, f"{len(calls)} flushes, expected {count}"

    store = provenance.SpanStore(tmp_path, fsync="batch", fsync_interval=0.05, fsync_fn=fsync)
    store.append(synthetic_span(0))
    assert inside.wait(5)
    store.append(synthetic_span(1))  # during the first flush, which may not cover it
    release.set()
    wait_for(2)  # so it gets a flush of its own
    time.sleep(0.2)
    quiet = len(calls)
    time.sleep(0.2)
    assert len(calls) == quiet  # nothing written, nothing flushed
    started = time.monotonic()
    for i in range(2, 202):  # a burst shares its flushes: about one per interval, not one per write
        store.append(synthetic_span(i))
    burst = time.monotonic() - started
    wait_for(quiet + 1)
    time.sleep(0.2)
    assert len(calls) - quiet <= 2 + int(burst / 0.05)
    store.close()
    assert len(list(provenance.Ledger(tmp_path).scan())) == 202


@pytest.mark.parametrize("on_failure", ["refuse", "allow"])
def test_a_held_record_says_what_its_caller_was_told_and_lands_in_the_chain_on_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_failure: Any
) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never", on_failure=on_failure)
    store.append(synthetic_span(0))
    written = store_module._OpenSegment.append

    def disk_full(self: Any, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module._OpenSegment, "append", disk_full)
    # A line that fits in the pages made ready is copied in by the store itself (a copy into memory cannot
    # fail); the next one needs more of the file, which is where a full disk shows.
    assert store._open is not None
    store._open.populated = 0
    with pytest.raises(provenance.RecordError, match="No space left on device"):
        store.append(synthetic_span(1))
    refused = synthetic_span(2, status="ERROR")
    refused["attributes"]["error.type"] = "record_failed"
    refused["status"]["message"] = "refused: the ledger cannot record calls"
    with pytest.raises(provenance.RecordError):
        store.append(refused)  # failed already: held without a write
    assert not store.recover()
    monkeypatch.setattr(store_module._OpenSegment, "append", written)
    assert store.recover()
    store.append(synthetic_span(3))
    store.close()
    spans = list(provenance.Ledger(tmp_path).scan())
    assert [s["seq"] for s in spans] == [1, 2, 3, 4]
    ran = spans[1]
    if on_failure == "refuse":  # its call was answered "ran but could not be recorded"
        assert ran["status"] == {"code": "ERROR", "message": "the call ran but could not be recorded"}
        assert ran["attributes"]["error.type"] == "record_failed"
    else:  # its call was answered with its own result
        assert ran["status"] == {"code": "OK", "message": None} and "error.type" not in ran["attributes"]
    assert spans[2]["status"]["message"] == "refused: the ledger cannot record calls"
    assert provenance.Ledger(tmp_path).verify().ok


def test_torn_last_line_is_set_aside_and_chain_ends_at_last_good_line(tmp_path: Path) -> None:
    write_chain(tmp_path, 3).close()
    (path,) = segment_files(tmp_path)
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"attributes":{"gen_ai.tool.name":"half-writ')
    # What a crash leaves is no break: the chain ends at its last whole line, and the leftover is noted.
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 3
    assert report.unfinished == [UnfinishedTail(path.name, 5, 44)]
    # The next writer to open the directory repairs what a dead writer left behind.
    write_chain(tmp_path, 1).close()
    assert path.read_bytes() == good
    assert path.with_name(path.name + ".torn").read_bytes().startswith(b'{"attributes"')
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.torn_files == [path.name + ".torn"] and len(report.chains) == 2
    assert not report.unfinished


def test_an_unfinished_line_before_the_end_of_a_chain_is_a_break(tmp_path: Path) -> None:
    write_chain(tmp_path, 60, segment_bytes=4096).close()
    middle = segment_files(tmp_path)[1]
    with open(middle, "ab") as f:
        f.write(b'{"attributes":{"gen_ai.tool.name":"half-writ')
    report = provenance.Ledger(tmp_path).verify()
    assert not report.ok and report.failures[0].file == middle.name and "no newline" in report.failures[0].reason


def test_a_last_segment_a_power_loss_left_without_a_line_is_noted_then_removed(tmp_path: Path) -> None:
    write_chain(tmp_path, 60, segment_bytes=4096).close()
    files = segment_files(tmp_path)
    files[-1].write_bytes(b"\x00" * 8192)  # renamed into place, but its data never reached the disk
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.unfinished == [UnfinishedTail(files[-1].name, 1, 0)]
    assert provenance.Ledger(tmp_path).recover() == [files[-1]]
    assert not files[-1].exists()
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and not report.unfinished and report.chains[0].segments == len(files) - 1


def test_a_garbage_last_line_is_still_a_break_until_it_is_set_aside(tmp_path: Path) -> None:
    write_chain(tmp_path, 3).close()
    (path,) = segment_files(tmp_path)
    with open(path, "ab") as f:
        f.write(b"not json\n")  # a whole line: an edit, or a power loss; never a kill
    report = provenance.Ledger(tmp_path).verify()
    assert not report.ok and report.failures[0].line == 5
    assert provenance.Ledger(tmp_path).recover() == [path]
    assert provenance.Ledger(tmp_path).verify().ok


def test_garbage_last_line_with_a_newline_counts_as_torn(tmp_path: Path) -> None:
    write_chain(tmp_path, 2).close()
    (path,) = segment_files(tmp_path)
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x00\x00\n")
    assert provenance.Ledger(tmp_path).recover() == [path]
    assert provenance.Ledger(tmp_path).verify().ok


def test_a_live_writers_segment_is_never_touched(tmp_path: Path) -> None:
    store = write_chain(tmp_path, 2)
    (path,) = segment_files(tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"partial')  # as if mid-write
    assert provenance.Ledger(tmp_path).recover() == []
    assert path.read_bytes().endswith(b'{"partial')
    assert provenance.Ledger(tmp_path).verify().ok  # an unfinished line of a live writer is not a break
    store.close()


def test_an_open_segment_is_reserved_ahead_and_cut_back_to_its_lines_on_close(tmp_path: Path) -> None:
    store = write_chain(tmp_path, 3)
    (path,) = segment_files(tmp_path)
    data = path.read_bytes()
    written = data.rstrip(b"\x00")
    assert len(data) > len(written) and written.endswith(b"\n")  # the reserved space reads as zeros
    assert len(list(provenance.Ledger(tmp_path).scan())) == 3
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 3
    store.close()
    assert path.read_bytes() == written


def test_a_filesystem_that_cannot_map_files_gets_the_same_ledger_by_pwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(mmap, "mmap", refuse)
    monkeypatch.setattr(store_module, "_mapping_supported", True)
    store = write_chain(tmp_path, 5)
    assert not store_module._mapping_supported
    (path,) = segment_files(tmp_path)
    assert len(list(provenance.Ledger(tmp_path).scan())) == 5
    store.close()
    assert path.read_bytes().endswith(b"\n")
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 5


def test_where_files_are_not_mapped_lines_are_appended_with_pwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Platforms without posix_fallocate and mremap (macOS): no reserved space, no zero tail.
    monkeypatch.setattr(store_module, "_mapping_supported", False)
    store = write_chain(tmp_path, 5, segment_bytes=3000)
    files = segment_files(tmp_path)
    assert len(files) > 1 and all(path.read_bytes().endswith(b"\n") for path in files)
    store.close()
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 5


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from mcp_ledger import provenance
from tests.provenance.test_store import synthetic_span
store = provenance.SpanStore(Path(sys.argv[1]), fsync="never")
for i in range(int(sys.argv[2])):
    store.append(synthetic_span(i))
print("written", flush=True)
time.sleep(60)
"""


def test_a_killed_writer_loses_nothing_and_its_reserved_tail_is_cut_by_the_next(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path), "40"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
    finally:
        proc.kill()
        proc.wait()
    (path,) = segment_files(tmp_path)
    data = path.read_bytes()
    assert data.endswith(b"\x00")  # killed with its space reserved
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 40 and not report.chains[0].live
    assert len(list(provenance.Ledger(tmp_path).scan())) == 40
    write_chain(tmp_path, 1).close()  # the next writer's start repairs the directory
    assert path.read_bytes() == data.rstrip(b"\x00")
    assert not list(tmp_path.glob("*.torn"))  # zeros are not data: nothing to set aside
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 41


def test_a_line_cut_off_mid_copy_is_set_aside_without_the_zero_tail(tmp_path: Path) -> None:
    write_chain(tmp_path, 3).close()
    (path,) = segment_files(tmp_path)
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"attributes":{"gen_ai.to' + b"\x00" * 5000)  # a writer killed while copying a line in
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.unfinished == [UnfinishedTail(path.name, 5, 25)]
    assert provenance.Ledger(tmp_path).recover() == [path]
    assert path.read_bytes() == good
    assert path.with_name(path.name + ".torn").read_bytes() == b'{"attributes":{"gen_ai.to'
    assert provenance.Ledger(tmp_path).verify().ok


def _mutate(path: Path, how: str, line_no: int) -> None:
    lines = path.read_bytes().split(b"\n")[:-1]
    match how:
        case "edit":
            line = bytearray(lines[line_no])
            pos = line.index(b'"preview":"') + len(b'"preview":"')
            line[pos] = ord("X") if line[pos] != ord("X") else ord("Y")
            lines[line_no] = bytes(line)
        case "delete":
            del lines[line_no]
        case "swap":
            lines[line_no], lines[line_no + 1] = lines[line_no + 1], lines[line_no]
        case "zero":  # a zero byte inside the chain is damage, not the reserved tail of an open segment
            line = bytearray(lines[line_no])
            line[line.index(b'"preview":"') + len(b'"preview":"')] = 0
            lines[line_no] = bytes(line)
        case "insert":
            forged = orjson.loads(lines[line_no])
            forged["span_id"] = "f" * 16
            lines.insert(line_no + 1, orjson.dumps(forged, option=orjson.OPT_SORT_KEYS))
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize(
    ("how", "line_no", "reported_line", "words"),
    [
        ("edit", 4, 6, "prev does not match the digest of line 5"),
        ("delete", 4, 5, "seq is 5, expected 4"),
        ("swap", 4, 5, "seq is 5, expected 4"),
        ("insert", 4, 6, "seq is 4, expected 5"),
        ("zero", 4, 5, "line does not parse as JSON"),
    ],
)
def test_verify_names_file_and_line_of_each_kind_of_tampering(
    tmp_path: Path, how: str, line_no: int, reported_line: int, words: str
) -> None:
    write_chain(tmp_path, 10).close()
    (path,) = segment_files(tmp_path)
    _mutate(path, how, line_no)
    report = provenance.Ledger(tmp_path).verify()
    assert not report.ok
    (failure,) = report.failures
    assert failure.file == path.name and failure.line == reported_line and words in failure.reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["edit", "delete", "swap", "insert"]),
    seed=st.integers(0, 10_000),
    segment_bytes=st.sampled_from([3000, 8000, 1 << 20]),
)
def test_any_mutation_inside_a_chain_is_caught(tmp_path: Path, how: str, seed: int, segment_bytes: int) -> None:
    directory = tmp_path / f"{how}-{seed}-{segment_bytes}"
    write_chain(directory, 25, segment_bytes=segment_bytes).close()
    files = segment_files(directory)
    rng = random.Random(seed)
    # Inside a chain: not the chain's very last line (a cut-off tail needs checkpoints).
    candidates = []
    for path in files:
        count = len(path.read_bytes().splitlines())
        last_file = path == files[-1]
        top = count - (2 if how in ("swap", "edit") and last_file else 1) - (1 if last_file and how != "insert" else 0)
        candidates += [(path, i) for i in range(1, max(1, top + 1)) if not (how == "swap" and i + 1 >= count)]
    path, line_no = rng.choice(candidates)
    _mutate(path, how, line_no)
    assert not provenance.Ledger(directory).verify().ok


def test_verify_cli_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcp_ledger.server.cli import main

    write_chain(tmp_path, 5).close()
    assert main(["verify", "--ledger-dir", str(tmp_path)]) == 0
    assert "verified: 1 chain(s), 5 spans" in capsys.readouterr().out
    (path,) = segment_files(tmp_path)
    _mutate(path, "delete", 2)
    assert main(["verify", "--ledger-dir", str(tmp_path), "--json"]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["failures"][0]["file"] == path.name and report["failures"][0]["line"] == 3


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["edit", "delete", "swap", "insert", "none"]),
    seed=st.integers(0, 10_000),
    torn=st.booleans(),
)
def test_parallel_verify_reports_exactly_what_serial_verify_does(
    tmp_path: Path, how: str, seed: int, torn: bool
) -> None:
    directory = tmp_path / f"p-{how}-{seed}-{torn}"
    for _ in range(2):
        write_chain(directory, 40, segment_bytes=5000).close()
    rng = random.Random(seed)
    files = segment_files(directory)
    if how != "none":
        path = rng.choice(files)
        count = len(path.read_bytes().splitlines())
        _mutate(path, how, rng.randrange(1, max(2, count - 1)))
    if torn:
        with open(rng.choice(files), "ab") as f:
            f.write(b'{"half')
    serial = provenance.Ledger(directory).verify(workers=1)
    parallel = provenance.Ledger(directory).verify(workers=2)
    assert serial.as_dict() == parallel.as_dict()
    assert [c.__dict__ for c in serial.chains] == [c.__dict__ for c in parallel.chains]
