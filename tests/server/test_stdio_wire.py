"""How a stdio server reads and writes its wire: pipes on the event loop, anything else from a thread.

Either way every line is answered; the fast path is checked from outside through the flags of the
server's own descriptors (an event-loop pipe is non-blocking).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_ledger import provenance
from tests.server.test_stdio import _exchange

INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def _server(ledger: Path, **streams: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mcp_ledger.server", "serve"],
        env={"MCP_LEDGER_DIR": str(ledger), "PATH": os.environ.get("PATH", "")},
        **{"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams},
    )


def _nonblocking_fds_on(pid: int, inode: int) -> list[bool]:
    """For each of the server's descriptors open on the pipe ``inode``: is it non-blocking?"""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.stat(f"/proc/{pid}/fd/{fd}").st_ino != inode:
                continue
            flags = next(
                line for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines() if line.startswith("flags:")
            )
        except (FileNotFoundError, StopIteration):
            continue
        found.append(bool(int(flags.split()[1], 8) & os.O_NONBLOCK))
    return found


def test_pipes_are_served_by_the_event_loop(tmp_path: Path) -> None:
    proc = _server(tmp_path / "ledger")
    try:
        replies = _exchange(proc, [{"name": "prov_stats", "arguments": {}}])
        assert replies[1]["id"] == 10 and "result" in replies[1]
        assert proc.stdin is not None and proc.stdout is not None
        for pipe in (proc.stdin, proc.stdout):
            flags = _nonblocking_fds_on(proc.pid, os.fstat(pipe.fileno()).st_ino)
            assert True in flags, "the wire is not on the event loop"
    finally:
        proc.kill()
        proc.wait()


def test_a_line_over_64_mib_is_refused_and_the_next_one_answered(tmp_path: Path) -> None:
    proc = _server(tmp_path / "ledger")
    try:
        _exchange(proc, [])
        assert proc.stdin is not None and proc.stdout is not None
        chunk = b"x" * (1 << 20)
        proc.stdin.write(b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"pad":"')
        for _ in range(65):
            proc.stdin.write(chunk)
        proc.stdin.write(b'"}}\n{"jsonrpc":"2.0","id":6,"method":"ping"}\n')
        proc.stdin.flush()
        refused, answered = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
        assert refused["error"]["code"] == -32700 and refused["id"] is None
        assert answered == {"jsonrpc": "2.0", "id": 6, "result": {}}
    finally:
        proc.kill()
        proc.wait()


def test_a_stdout_that_is_also_stderr_keeps_the_threaded_wire_and_is_answered(tmp_path: Path) -> None:
    """Non-blocking mode on a pipe stderr shares would make the server's own log writes fail with EAGAIN."""
    proc = _server(tmp_path / "ledger", stderr=subprocess.STDOUT)
    try:
        replies = _exchange(proc, [{"name": "prov_stats", "arguments": {}}])
        assert replies[1]["id"] == 10 and "result" in replies[1]
        assert proc.stdout is not None
        flags = _nonblocking_fds_on(proc.pid, os.fstat(proc.stdout.fileno()).st_ino)
        assert flags and not any(flags), flags
    finally:
        proc.kill()
        proc.wait()


def test_requests_from_a_file_are_answered_into_a_file(tmp_path: Path) -> None:
    requests, answers = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with requests.open("rb") as stdin, answers.open("wb") as stdout:
        proc = _server(tmp_path / "ledger", stdin=stdin, stdout=stdout)
        proc.communicate(timeout=60)
    got = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [reply["id"] for reply in got] == [1, 2]
    assert any(tool["name"] == "prov_stats" for tool in got[1]["result"]["tools"])


def test_the_chain_digest_of_an_answered_call_is_taken_after_its_answer_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stdio writer settles the store (SpanStore.settle) once a response is out: the span's line is
    written before the answer, the work the next line would do first is done after it."""
    from mcp_ledger.server import transport
    from tests.conftest import make_app

    app = make_app(tmp_path / "ledger")
    to_server_r, to_server_w = os.pipe()
    from_server_r, from_server_w = os.pipe()
    wire_in, wire_out = os.fdopen(to_server_r, "rb"), os.fdopen(from_server_w, "wb")
    monkeypatch.setattr(transport, "_claim_stdio", lambda: (wire_in, wire_out, lambda: None))
    events: list[str] = []
    settle = app.store.settle

    def settled() -> None:
        events.append(f"settle after {len(lines_out())} answers")
        settle()

    answers = bytearray()

    def lines_out() -> list[bytes]:
        with contextlib.suppress(BlockingIOError):
            answers.extend(os.read(from_server_r, 1 << 20))
        return bytes(answers).splitlines()

    os.set_blocking(from_server_r, False)
    monkeypatch.setattr(app.store, "settle", settled)
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "fake_echo", "arguments": {"text": "x"}},
        },
    ]
    os.write(to_server_w, b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    os.close(to_server_w)
    try:
        anyio.run(transport.serve_stdio, app)
    finally:
        app.close()
        wire_in.close()
        wire_out.close()
    replies = [json.loads(line) for line in lines_out()]
    assert [r["id"] for r in replies] == [1, 2] and "result" in replies[1]
    assert events[-1] == "settle after 2 answers"  # the call's answer was readable before the store settled
    assert provenance.Ledger(tmp_path / "ledger").verify().ok
