"""`mcp-ledger serve --transport http --workers N`: a supervisor and N workers behind one port.

Under load from concurrent clients one worker is killed with SIGKILL: the others keep serving, the
supervisor starts a new one, every call that was answered has its span in the ledger (matched by the
span id in the answer and the request id in the span), and `mcp-ledger verify` holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mcp_ledger import provenance
from mcp_ledger.server import workers
from mcp_ledger.server.cli import main
from tests.auth.conftest import write_tokens

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped) is gone too.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Supervised:
    url: str
    ledger: Path
    stderr: Path
    proc: subprocess.Popen[bytes]

    def workers(self) -> set[int]:
        return children(self.proc.pid)


@contextmanager
def serve(tmp_path: Path, count: int, *flags: str) -> Iterator[Supervised]:
    port = free_port()
    ledger = tmp_path / "ledger"
    stderr = tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http", "--port", str(port)]
    args += ["--workers", str(count), *flags]
    with stderr.open("w") as log:
        proc = subprocess.Popen(args, env={**os.environ, "MCP_LEDGER_DIR": str(ledger)}, stderr=log)
        served = Supervised(f"http://127.0.0.1:{port}/mcp", ledger, stderr, proc)
        try:
            wait_until(lambda: len(served.workers()) == count or proc.poll() is not None, 60, "the workers")
            assert proc.poll() is None, stderr.read_text()
            yield served
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
            for pid in served.workers():
                os.kill(pid, signal.SIGKILL)


def call_body(request_id: str, marker: str) -> bytes:
    params = {"name": "prov_query", "arguments": {"tool": marker, "limit": 1}}
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def answer(response: httpx.Response) -> dict[str, Any]:
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return orjson.loads(data[-1] if data else response.text)  # type: ignore[no-any-return]


async def one_call(http: httpx.AsyncClient, url: str, request_id: str) -> str | None:
    """The span id of a successful call, None when it failed in any way."""
    try:
        response = await http.post(url, content=call_body(request_id, f"marker-{request_id}"), headers=HEADERS)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    result = answer(response).get("result") or {}
    if result.get("isError") is not False:
        return None
    return str(result["_meta"]["mcp-ledger/span_id"])


@dataclass
class Outcome:
    request_id: str
    span_id: str | None
    started: float
    ended: float


async def load(url: str, clients: int, stop: asyncio.Event) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def client(number: int) -> None:
        sent = 0
        while not stop.is_set():
            # Ten calls per connection: new connections keep reaching every worker, a new one included.
            async with httpx.AsyncClient(timeout=30) as http:
                for _ in range(10):
                    if stop.is_set():
                        return
                    sent += 1
                    started = time.monotonic()
                    span_id = await one_call(http, url, f"c{number}-{sent}")
                    outcomes.append(Outcome(f"c{number}-{sent}", span_id, started, time.monotonic()))

    await asyncio.gather(*(client(n) for n in range(clients)))
    return outcomes


def chain_pids(ledger: Path) -> set[int]:
    """The pids of the writers of the chains with spans (a chain id says ``...-p<pid>-...``)."""
    pids = set()
    for path in ledger.glob("*-p*.jsonl"):
        if b'"type":"span"' in path.read_bytes():
            pids.add(int(path.name.split("-p", 1)[1].split("-", 1)[0]))
    return pids


@pytest.mark.parametrize("fsync", ["batch", "always"])
async def test_a_worker_killed_under_load_loses_no_answered_call_and_is_replaced(tmp_path: Path, fsync: str) -> None:
    clients = 12
    with serve(tmp_path, 3, "--toolsets", "prov", "--fsync", fsync) as served:
        first = served.workers()
        stop = asyncio.Event()
        running = asyncio.create_task(load(served.url, clients, stop))
        # Load until every worker has answered calls, then kill one of them.
        deadline = time.monotonic() + 60
        while not first <= chain_pids(served.ledger):
            assert time.monotonic() < deadline, "not every worker served a call"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        victim = sorted(first)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: len(served.workers() - first) == 1, 60, "a new worker")
        replacement = (served.workers() - first).pop()
        # Load on, until the replacement has answered calls too.
        deadline = time.monotonic() + 60
        while replacement not in chain_pids(served.ledger):
            assert time.monotonic() < deadline, "the new worker served no call"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        stop.set()
        outcomes = await running
        # After the load: new connections (any worker) all succeed.
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            after = [Outcome(f"after-{n}", await one_call(http, served.url, f"after-{n}"), 0, 0) for n in range(30)]
        assert all(o.span_id for o in after)

        assert served.workers() == (first - {victim}) | {replacement}
        assert not alive(victim)
        assert f"(pid {victim}) was killed by SIGKILL; restarting it" in served.stderr.read_text()

        failed = [o for o in outcomes if o.span_id is None]
        succeeded = [o for o in outcomes if o.span_id is not None]
        # Only calls in flight on the killed worker fail: at most one per client, none started before the
        # kill had ended before it.
        assert len(failed) <= clients
        assert all(o.ended >= killed_at for o in failed)
        assert sum(1 for o in succeeded if o.started > killed_at) > 10 * clients  # the others kept serving

        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in (first | {replacement}) - {victim})

    answered = {o.span_id: o.request_id for o in [*succeeded, *after]}
    spans = {span["span_id"]: span for span in provenance.Ledger(served.ledger).scan()}
    missing = [span_id for span_id in answered if span_id not in spans]
    assert not missing, f"{len(missing)} answered calls have no span"
    assert all(spans[s]["attributes"]["jsonrpc.request.id"] == r for s, r in answered.items())
    # Spans beyond the answered calls: only calls that failed (in flight on the killed worker).
    assert len(spans) - len(answered) <= len(failed)
    # The killed worker's chain ended in the zero bytes it had reserved ahead; the next worker to record a
    # call repaired it (the store's torn-tail recovery): cut back to its last whole line.
    (killed,) = served.ledger.glob(f"*-p{victim}-*.jsonl")
    assert not killed.read_bytes().endswith(b"\0")
    assert killed.read_bytes().endswith(b"\n")
    verify = subprocess.run(
        [sys.executable, "-m", "mcp_ledger.server", "verify", "--ledger-dir", str(served.ledger)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"verified: {len(chain_pids(served.ledger))} chain(s), {len(spans)} spans" in verify.stdout


async def test_every_worker_applies_authentication(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    secret = "alice_" + os.urandom(16).hex()
    write_tokens(tokens, [f"alice {secret} read-only"])
    flags = ["--auth", "bearer", "--auth-tokens-file", str(tokens), "--toolsets", "prov"]
    with serve(tmp_path, 2, *flags) as served:
        pids = served.workers()
        # A connection each: the kernel spreads them over both workers.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=no_reuse) as http:
            for n in range(40):
                refused = await http.post(served.url, content=call_body(f"x{n}", "x"), headers=HEADERS)
                assert refused.status_code == 401
            good = {**HEADERS, "authorization": f"Bearer {secret}"}
            for n in range(40):
                response = await http.post(served.url, content=call_body(f"a{n}", "a"), headers=good)
                assert response.status_code == 200 and answer(response)["result"]["isError"] is False
        assert chain_pids(served.ledger) == pids  # both workers answered
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
    spans = list(provenance.Ledger(served.ledger).scan())
    assert len(spans) == 40  # refused requests reach nothing behind the authentication
    assert {span["attributes"]["enduser.id"] for span in spans} == {"alice"}


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        (["--workers", "2"], {}, "--workers 2 applies to --transport http"),
        ([], {"MCP_LEDGER_WORKERS": "3"}, "--workers 3 applies to --transport http"),
        (["--transport", "http", "--workers", "2", "--no-stateless"], {}, "serves stateless HTTP only"),
        (["--transport", "http", "--workers", "2"], {"MCP_LEDGER_STATELESS": "false"}, "serves stateless HTTP only"),
        (["--transport", "http", "--workers", "0"], {}, "--workers: Input should be greater than or equal to 1"),
    ],
)
def test_workers_that_cannot_apply_are_refused(
    flags: list[str],
    environ: dict[str, str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MCP_LEDGER_DIR", str(tmp_path / "ledger"))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ledger").exists()


def test_a_port_in_use_and_workers_that_cannot_start_stop_the_supervisor_with_a_reason(tmp_path: Path) -> None:
    env = {**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger")}
    serve_http = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = subprocess.run([*serve_http, "--port", port, "--workers", "2"], env=env, capture_output=True, text=True)
    assert busy.returncode == 1
    assert f"mcp-ledger serve: cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
    bad = subprocess.run(
        [*serve_http, "--port", str(free_port()), "--workers", "2", "--toolsets", "nosuch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "nosuch" in bad.stderr  # the worker's own message
    assert "before it could serve" in bad.stderr


def test_a_worker_that_keeps_dying_is_restarted_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "RESTART_PAUSE", 0.01)
    said: list[str] = []
    # Serves (says it is ready), then exits at once: every restart dies again.
    command = [
        sys.executable,
        "-c",
        f"import os; os.write(int(os.environ[{workers.READY_FD_ENV!r}]), b'ready'); raise SystemExit(3)",
    ]
    sockets = workers.bind("127.0.0.1", 0, 2)
    try:
        status = workers.supervise(command, 2, sockets, say=said.append)
    finally:
        for sock in sockets:
            sock.close()
    assert status == 1
    restarts = [line for line in said if line.endswith("restarting it") or "restarting it in" in line]
    assert len(restarts) >= workers.MAX_RESTARTS
    assert said[-1].endswith(f"its {workers.MAX_RESTARTS + 1}th exit within 60 s; giving up")
    assert "exited with status 3" in said[-1]


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with serve(tmp_path, 2, "--toolsets", "prov") as served:
        pids = served.workers()
        served.proc.kill()
        served.proc.wait(timeout=20)
        wait_until(lambda: not any(alive(pid) for pid in pids), 30, "the orphaned workers to stop")


def start(args: list[str], ledger: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env={**os.environ, "MCP_LEDGER_DIR": str(ledger)})


async def test_one_http_server_stops_with_status_0_on_sigterm_and_closes_its_chain(tmp_path: Path) -> None:
    port = free_port()
    ledger = tmp_path / "ledger"
    args = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http", "--port", str(port)]
    proc = start([*args, "--stateless", "--toolsets", "prov"], ledger)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            deadline = time.monotonic() + 60
            while not await one_call(http, f"http://127.0.0.1:{port}/mcp", "only"):  # until it serves
                assert time.monotonic() < deadline and proc.poll() is None
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # was -15: uvicorn raised SIGTERM again with the default handler
    finally:
        if proc.poll() is None:
            proc.kill()
    (segment,) = ledger.glob("*-p*.jsonl")
    assert not segment.read_bytes().endswith(b"\0")  # closed: cut to its last line, no reserved zero tail


def start_with_stderr(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http", *flags]
    env = {**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger")}
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)


async def test_the_supervisor_says_where_it_serves_once_every_worker_does(tmp_path: Path) -> None:
    """With --port 0 the system picks the port: the one line on stderr is the only way to learn it."""
    proc = start_with_stderr(tmp_path, "--port", "0", "--workers", "2")
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60)
        prefix = "mcp-ledger serve: 2 workers serving http://127.0.0.1:"
        assert line.startswith(prefix) and line.rstrip().endswith("/mcp"), line
        url = line.strip().removeprefix("mcp-ledger serve: 2 workers serving ")
        assert int(url.rsplit(":", 1)[1].removesuffix("/mcp")) > 0
        async with httpx.AsyncClient(timeout=30) as http:
            assert await one_call(http, url, "where-1") is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
