"""Start-up repair of what dead writers left: only the tails of their chains, never the history."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger import provenance
from mcp_ledger.provenance import _store as store_module
from tests.provenance.test_store import segment_files, synthetic_span, write_chain


def _kill_writer_in_place(paths: list[Path], zeros: int = 300_000) -> None:
    """Leave ``paths`` as a writer killed with its space reserved leaves them: zero bytes after the last line."""
    for path in paths:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size + zeros)


def test_recovery_opens_only_the_last_two_segments_of_each_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = []
    for _ in range(3):
        store = write_chain(tmp_path, 120, segment_bytes=8000)
        chains.append(sorted(tmp_path.glob(f"{store.chain}.*.jsonl")))
        store.close()
    assert all(len(segments) > 4 for segments in chains)
    _kill_writer_in_place(chains[0][-2:])  # killed during a rotation: both still reserved ahead
    with open(chains[1][-1], "ab") as f:
        f.write(b'{"attributes":{"half')  # killed while copying a line in
    history = [path for segments in chains for path in segments[:-2]]
    before = {path: path.read_bytes() for path in history}
    opened: list[str] = []
    read = 0
    real_open, real_pread = os.open, os.pread

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        nonlocal read
        data = real_pread(fd, length, offset)
        read += len(data)
        return data

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "pread", counting_pread)
    repaired = provenance.Ledger(tmp_path).recover()
    monkeypatch.undo()
    assert sorted(repaired) == sorted([*chains[0][-2:], chains[1][-1]])
    assert sorted(opened) == sorted(str(path) for segments in chains for path in segments[-2:])
    assert read < 2 * 300_000 + 6 * 2 * 65_536  # two zero tails and a window at the end of each segment opened
    assert {path: path.read_bytes() for path in history} == before
    assert chains[1][-1].with_name(chains[1][-1].name + ".torn").read_bytes() == b'{"attributes":{"half'
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 360


def test_the_first_call_never_waits_for_the_repair_of_other_chains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    repaired: list[Path] = []

    def slow_recovery(directory: Path) -> list[Path]:
        release.wait(30)
        repaired.append(directory)
        return []

    monkeypatch.setattr(store_module, "recover_torn_tails", slow_recovery)
    store = provenance.SpanStore(tmp_path, fsync="never")
    began = time.monotonic()
    store.append(synthetic_span(0))
    store.append(synthetic_span(1))
    assert time.monotonic() - began < 20 and not repaired  # answered while the repair still runs
    release.set()
    store.close()  # waits for the repair
    assert repaired == [tmp_path]
    assert provenance.Ledger(tmp_path).verify().spans == 2


def test_the_next_writer_cuts_a_rotation_left_half_done(tmp_path: Path) -> None:
    write_chain(tmp_path, 30, segment_bytes=4000).close()
    files = segment_files(tmp_path)
    kept = [path.read_bytes() for path in files]
    _kill_writer_in_place(files[-2:])
    assert provenance.Ledger(tmp_path).verify().ok  # zero bytes are no data
    write_chain(tmp_path, 1).close()
    assert [path.read_bytes() for path in files] == kept
    assert not list(tmp_path.glob("*.torn"))


def test_a_segment_its_writer_never_finished_creating_is_removed_once_old(tmp_path: Path) -> None:
    write_chain(tmp_path, 2).close()
    (path,) = segment_files(tmp_path)
    unfinished = path.with_name(path.name.replace(".000000.", ".000001.") + ".new")
    unfinished.write_bytes(b'{"chain":')
    assert provenance.Ledger(tmp_path).verify().ok  # never part of a chain
    assert provenance.Ledger(tmp_path).recover() == []  # young: it may be a live writer's, not yet locked
    old = time.time() - 3600
    os.utime(unfinished, (old, old))
    assert provenance.Ledger(tmp_path).recover() == [unfinished]
    assert not unfinished.exists()
    assert provenance.Ledger(tmp_path).verify().ok
