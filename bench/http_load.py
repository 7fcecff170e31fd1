"""Streamable HTTP under load: 64 concurrent clients against 1, 2 and 4 worker processes, with and
without provenance.

Each row starts a fresh server the way ``mcp-ledger serve --transport http --workers N`` does (the
supervisor of ``server.workers`` binds a loopback port and runs N workers on it; every worker writes
its own chain), but with the benchmark's no-op tool (``bench._noop``) so that a call costs the HTTP
stack, the SDK and — when it is on — the provenance middleware, and nothing else. Each client holds
one keep-alive connection and sends stateless ``tools/call`` requests back to back (raw HTTP/1.1 with
the MCP headers, written and parsed here: an HTTP client library would cost the 2-core machine more
CPU than the server it measures). After a warm-up, calls are timed for ``--seconds``; the server is
then stopped with SIGTERM and its ledger checked: ``verify`` holds and it holds exactly one span per
call (warm-up included). The provenance overhead at load is the share of throughput the ledger costs
(1 - calls/s with it / calls/s without it) at the same worker count.

    python -m bench.http_load              # full run (about 2 minutes)
    python -m bench.http_load --quick      # smoke run

Prints a markdown table and writes ``bench/results/http_load-<UTC stamp>.json`` and ``-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._results import save

__all__ = ["Row", "main"]

TOOL = "bench_noop"
PROTOCOL_VERSION = "2025-11-25"


@dataclass
class Row:
    workers: int
    provenance: bool
    clients: int
    calls: int = 0  # timed calls that succeeded
    errors: int = 0
    seconds: float = 0.0
    calls_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    total_calls: int = 0  # warm-up included: what the ledger must hold
    spans: int | None = None
    verified: bool | None = None
    chains: int | None = None
    shares: list[float] = field(default_factory=list)  # of the spans, per worker (chain), largest first
    load_average: float = 0.0  # the machine's 1-minute load average after the row (2 cores: above 2, contended)


# -- the server side (run as subprocesses of the benchmark)


def _serve(args: argparse.Namespace) -> int:
    """The supervisor: bind the port, run ``--workers`` workers of this module on it."""
    from mcp_ledger.server import workers

    sockets = workers.bind("127.0.0.1", args.port, args.workers)
    command = [
        sys.executable,
        "-m",
        "bench.http_load",
        "--role",
        "worker",
        "--provenance",
        args.provenance,
        "--ledger-dir",
        str(args.ledger_dir),
    ]
    try:
        return workers.supervise(command, args.workers, sockets, on_ready=_say_ready)
    finally:
        for sock in sockets:
            sock.close()


def _say_ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def _worker(args: argparse.Namespace) -> int:
    from bench._noop import build_app
    from mcp_ledger.server import workers
    from mcp_ledger.server.transport import http_app

    sock = workers.inherited_socket()
    if sock is None:
        print("bench.http_load --role worker runs under --role serve only", file=sys.stderr)
        return 2
    app = build_app(args.ledger_dir, provenance_enabled=args.provenance == "on", network_transport="tcp")
    signal.signal(signal.SIGTERM, _interrupt)  # uvicorn raises it again after its graceful shutdown
    try:
        workers.run_worker(http_app(app, host="127.0.0.1", stateless=True, auth=None), sock)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- the load


def _request(port: int, request_id: str) -> bytes:
    params = f'{{"name":"{TOOL}","arguments":{{"text":"ping"}}}}'
    body = f'{{"jsonrpc":"2.0","id":"{request_id}","method":"tools/call","params":{params}}}'.encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\nmcp-protocol-version: {PROTOCOL_VERSION}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: status and body (Content-Length or chunked, as uvicorn sends SSE)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        return status, b"".join(chunks)
    return status, await reader.readexactly(int(headers.get(b"content-length", b"0")))


class _Client:
    def __init__(self, number: int, port: int) -> None:
        self.number = number
        self.port = port
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> bool:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.sent += 1
        self.writer.write(_request(self.port, f"c{self.number}-{self.sent}"))
        try:
            status, body = await _response(self.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            return False
        return status == 200 and b'"result"' in body and b'"isError":false' in body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(port: int, clients: int, warmup: float, seconds: float) -> tuple[list[float], int, float, int]:
    """(latencies of the timed successful calls in s, errors, timed seconds, every call sent)."""
    pool = [_Client(i, port) for i in range(clients)]
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + warmup
    end = start + seconds

    async def run(client: _Client) -> None:
        nonlocal errors
        while True:
            began = time.perf_counter()
            if began >= end:
                return
            ok = await client.call()
            done = time.perf_counter()
            if began >= start:
                if ok:
                    latencies.append(done - began)
                else:
                    errors += 1

    await asyncio.gather(*(run(client) for client in pool))
    for client in pool:
        client.close()
    return latencies, errors, seconds, sum(client.sent for client in pool)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_row(workers: int, provenance_on: bool, clients: int, warmup: float, seconds: float, root: Path) -> Row:
    from mcp_ledger import provenance

    ledger = root / f"w{workers}-{'on' if provenance_on else 'off'}"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "bench.http_load",
        "--role",
        "serve",
        "--workers",
        str(workers),
        "--port",
        str(port),
        "--provenance",
        "on" if provenance_on else "off",
        "--ledger-dir",
        str(ledger),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline() != b"ready\n":  # every worker serves
            raise SystemExit(f"the server exited ({proc.wait()}) before serving")
        latencies, errors, timed, total = asyncio.run(_load(port, clients, warmup, seconds))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    if code != 0:
        raise SystemExit(f"the server exited with status {code} after SIGTERM")
    latencies.sort()
    row = Row(
        workers=workers,
        provenance=provenance_on,
        clients=clients,
        calls=len(latencies),
        errors=errors,
        seconds=timed,
        calls_per_s=round(len(latencies) / timed, 1),
        p50_ms=round(1000 * latencies[len(latencies) // 2], 2) if latencies else 0.0,
        p99_ms=round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2) if latencies else 0.0,
        total_calls=total,
        load_average=round(os.getloadavg()[0], 2),
    )
    if provenance_on:
        store = provenance.Ledger(ledger)
        report = store.verify()
        row.spans = sum(1 for span in store.scan() if span["attributes"].get("gen_ai.tool.name") == TOOL)
        per_chain = _spans_per_chain(ledger)
        row.verified = report.ok
        row.chains = len(report.chains)
        row.shares = sorted((round(n / max(1, row.spans), 3) for n in per_chain.values()), reverse=True)
    return row


def _spans_per_chain(ledger: Path) -> Counter[str]:
    """Span lines per chain (one chain per worker process), from the segment files' names."""
    counts: Counter[str] = Counter()
    for path in ledger.glob("*.jsonl"):
        if path.name != "checkpoints.jsonl":
            counts[path.name.split(".")[0]] += path.read_bytes().count(b'"type":"span"')
    return counts


def _median_rows(rows: list[Row]) -> dict[tuple[int, bool], Row]:
    """Per worker count and provenance setting, the run with the median calls/s (its latencies with it)."""
    runs: dict[tuple[int, bool], list[Row]] = {}
    for row in rows:
        runs.setdefault((row.workers, row.provenance), []).append(row)
    return {key: sorted(group, key=lambda r: r.calls_per_s)[(len(group) - 1) // 2] for key, group in runs.items()}


def _table(rows: list[Row], worker_counts: list[int]) -> str:
    by = _median_rows(rows)
    header = "| | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in worker_counts) + " |"
    lines = [header, "|---|" + "---:|" * len(worker_counts)]

    def line(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(n) for n in worker_counts) + " |")

    def get(n: int, on: bool) -> Row | None:
        return by.get((n, on))

    def cost(n: int) -> str:
        on, off = get(n, True), get(n, False)
        if on is None or off is None or not off.calls_per_s:
            return ""
        return f"{100 * (1 - on.calls_per_s / off.calls_per_s):.1f} %"

    def checks(n: int) -> str:
        runs = [r for r in rows if r.workers == n and r.provenance]
        good = sum(1 for r in runs if r.verified and r.spans == r.total_calls)
        return f"{good} of {len(runs)} runs ({sum(r.spans or 0 for r in runs):,} spans)"

    line("calls/s, provenance on", lambda n: f"{r.calls_per_s:,.0f}" if (r := get(n, True)) else "")
    line("calls/s, provenance off", lambda n: f"{r.calls_per_s:,.0f}" if (r := get(n, False)) else "")
    line("provenance cost of throughput", cost)
    line("p50 / p99 ms, provenance on", lambda n: f"{r.p50_ms:.1f} / {r.p99_ms:.1f}" if (r := get(n, True)) else "")
    line("p50 / p99 ms, provenance off", lambda n: f"{r.p50_ms:.1f} / {r.p99_ms:.1f}" if (r := get(n, False)) else "")
    line("failed calls, all runs", lambda n: str(sum(r.errors for r in rows if r.workers == n)))
    line("spans == calls and verify ok", checks)
    line("share of calls per worker", lambda n: " / ".join(f"{s:.0%}" for s in r.shares) if (r := get(n, True)) else "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["bench", "serve", "worker"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--provenance", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    parser.add_argument("--ledger-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every cell; the table shows the median")
    parser.add_argument("--quick", action="store_true", help="smoke run: one round, 2 s per run")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results")
    args = parser.parse_args(argv)
    if args.role == "serve":
        args.workers = int(args.workers)
        return _serve(args)
    if args.role == "worker":
        return _worker(args)

    counts = [int(n) for n in args.workers.split(",")]
    if args.quick:
        args.seconds, args.warmup, args.rounds = 2.0, 0.5, 1
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mcp-ledger-http-load-") as tmp:
        os.environ.setdefault("MCP_LEDGER_CHECKPOINT_KEY", str(Path(tmp) / "checkpoint-key.pem"))
        # Which setting runs first alternates from round to round: a drift of the machine falls on both.
        runs = [
            (round_, n, provenance_on)
            for round_ in range(args.rounds)
            for n in counts
            for provenance_on in ((False, True) if round_ % 2 == 0 else (True, False))
        ]
        for round_, n, provenance_on in runs:
            directory = Path(tmp) / f"round{round_}"
            row = _run_row(n, provenance_on, args.clients, args.warmup, args.seconds, directory)
            print(
                f"{n} worker(s), provenance {'on ' if provenance_on else 'off'}: {row.calls_per_s:,.0f} calls/s, "
                f"p50 {row.p50_ms} ms, p99 {row.p99_ms} ms, {row.errors} failed, load {row.load_average}"
                + (f", spans {row.spans} of {row.total_calls} calls, verify {row.verified}" if provenance_on else ""),
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    table = _table(rows, counts)
    print(table)
    failed = [r for r in rows if r.provenance and (not r.verified or r.spans != r.total_calls)]
    results = {
        "benchmark": "http_load",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "rows": [asdict(r) for r in rows],
        "table": table,
    }
    if not args.no_write:
        print(f"\nwrote {save('http_load', results)}", file=sys.stderr)
    if failed:
        print("LEDGER CHECK FAILED: " + ", ".join(f"{r.workers} worker(s)" for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
