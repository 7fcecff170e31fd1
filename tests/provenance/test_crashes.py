"""kill -9 at every step of creating a segment, and at random under load: verify passes, nothing acknowledged is lost.

Writers are real processes killed with SIGKILL. They are forked from one helper process that imported
the store once (an interpreter start per kill would cost seconds). To kill a writer at an exact step,
the helper wraps the file system calls the store makes (open, flock, posix_fallocate, pwrite, mmap,
rename, ftruncate, fsync): the N-th such call of the writer's main thread stops and says so, and the
test kills it there, so every step of segment creation is a crash point, in order, deterministically.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger import provenance
from mcp_ledger.provenance._verify import VerifyReport
from mcp_ledger.server.cli import main as cli
from tests.provenance.test_store import write_chain

REPO = Path(__file__).resolve().parents[2]

_FORKING_WRITER = r"""
import fcntl, json, mmap, os, sys, threading, time
from pathlib import Path
from mcp_ledger import provenance
from tests.provenance.test_store import synthetic_span

STEPS = [(os, "open"), (fcntl, "flock"), (os, "posix_fallocate"), (os, "pwrite"), (mmap, "mmap"),
         (os, "rename"), (os, "ftruncate"), (os, "fdatasync"), (os, "fsync")]


def say(text):
    os.write(1, (text + "\n").encode())


def stop_before_call(number):
    calls = 0
    main = threading.main_thread()

    def wrap(module, name):
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            nonlocal calls
            if threading.current_thread() is main:
                calls += 1
                if calls == number:
                    say("stopped before " + name)
                    time.sleep(600)
            return real(*args, **kwargs)

        setattr(module, name, wrapped)

    for module, name in STEPS:
        wrap(module, name)


def write(job):
    store = provenance.SpanStore(Path(job["directory"]), fsync=job["fsync"], segment_bytes=job["segment_bytes"])
    for i in range(job["spans"]):
        if i == job["arm_after"]:
            stop_before_call(job["stop_at"])
        span = synthetic_span(i)
        seq = store.append(span)
        if job["fsync"] == "always":
            store.wait_durable(seq)
        say("ack " + span["span_id"])
    say("done")
    time.sleep(600)


for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            say("pid %d" % os.getpid())
            write(job)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    say("exited %d" % pid)
"""


class ForkingWriter:
    """The helper process; :meth:`start` forks a writer and returns its pid."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FORKING_WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
        )
        self._buffer = b""

    def start(self, directory: Path, **job: Any) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"directory": str(directory), **job}).encode() + b"\n")
        self.proc.stdin.flush()
        kind, pid = self.line().split()
        assert kind == "pid"
        return int(pid)

    def line(self, timeout: float = 120) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"the writer said nothing for {timeout} s (or its helper died)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def lines_until(self, *ends: str) -> Iterator[str]:
        while True:
            line = self.line()
            yield line
            if line.startswith(ends):
                return

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        for line in self.lines_until(f"exited {pid}"):
            assert not line.startswith("stopped"), line  # acks written before the kill landed are read on

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def writer() -> Iterator[ForkingWriter]:
    helper = ForkingWriter()
    try:
        yield helper
    finally:
        helper.close()


def _kill_at_step(writer: ForkingWriter, directory: Path, stop_at: int, **job: Any) -> tuple[list[str], str]:
    """Run a writer that stops before its ``stop_at``-th file system call; kill it there (or once done)."""
    pid = writer.start(directory, stop_at=stop_at, **job)
    acked: list[str] = []
    for line in writer.lines_until("stopped", "done"):
        if line.startswith("ack "):
            acked.append(line.split()[1])
        last = line
    writer.kill(pid)
    return acked, last


def _assert_intact(directory: Path, acked: list[str]) -> VerifyReport:
    """verify passes as the crash left the directory, and every acknowledged span is in it."""
    report = provenance.Ledger(directory).verify()
    assert report.ok, report.failures
    stored = {span["span_id"] for span in provenance.Ledger(directory).scan()}
    assert set(acked) <= stored
    return report


def _assert_repaired(directory: Path) -> None:
    """``verify --recover`` leaves nothing to note, and a next writer continues on the directory."""
    assert cli(["verify", "--recover", "--ledger-dir", str(directory)]) == 0
    report = provenance.Ledger(directory).verify()
    assert report.ok and not report.unfinished
    for path in directory.glob("*.jsonl"):
        data = path.read_bytes()
        assert data.startswith(b'{"chain":') and data.endswith(b"\n")  # a header first, no reserved tail
    spans = report.spans
    write_chain(directory, 1).close()
    after = provenance.Ledger(directory).verify()
    assert after.ok and after.spans == spans + 1


@pytest.mark.parametrize(
    ("where", "job"),
    [
        # The first call creates segment 0.
        ("first call", {"spans": 2, "arm_after": 0, "segment_bytes": 2000, "fsync": "never"}),
        # Header + two spans fill 2000 bytes: the third span rotates to segment 1.
        ("rotation", {"spans": 3, "arm_after": 1, "segment_bytes": 2000, "fsync": "never"}),
        ("rotation, fsync always", {"spans": 3, "arm_after": 1, "segment_bytes": 2000, "fsync": "always"}),
    ],
)
def test_a_kill_at_any_step_of_creating_a_segment_leaves_verify_passing(
    writer: ForkingWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, job: dict[str, Any]
) -> None:
    steps = []
    for stop_at in range(1, 30):
        directory = tmp_path / f"stop-{stop_at}"
        acked, last = _kill_at_step(writer, directory, stop_at, **job)
        if last == "done":
            assert len(acked) == job["spans"]
        else:
            steps.append(last.removeprefix("stopped before "))
            assert len(acked) >= job["arm_after"]  # what was acknowledged before the step
        _assert_intact(directory, acked)
        _assert_repaired(directory)
        capsys.readouterr()
        if last == "done":
            break
    else:
        raise AssertionError("the writer never finished")
    # Every step of creating a segment was a crash point.
    assert {"open", "flock", "posix_fallocate", "rename"} <= set(steps), steps


def test_kill_9_under_load_loses_nothing_acknowledged_and_verify_passes(
    writer: ForkingWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261202)
    acked: list[str] = []
    for round_number, fsync in enumerate(["never", "batch", "always", "never", "batch", "never"]):
        # Small segments: kills land in rotations too. Each writer starts by repairing the one before.
        pid = writer.start(tmp_path, spans=10**9, arm_after=-1, stop_at=0, segment_bytes=16_000, fsync=fsync)
        for _ in range(rng.randrange(1, 400)):
            kind, span_id = writer.line().split()
            assert kind == "ack"
            acked.append(span_id)
        os.kill(pid, signal.SIGKILL)  # while it keeps appending
        for line in writer.lines_until(f"exited {pid}"):
            if line.startswith("ack "):
                acked.append(line.split()[1])
        report = _assert_intact(tmp_path, acked)
        assert len(report.chains) == round_number + 1
    capsys.readouterr()
    _assert_repaired(tmp_path)
    assert len(acked) == len(set(acked))
