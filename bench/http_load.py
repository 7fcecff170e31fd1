"""Streamable HTTP under load: 64 concurrent clients against 1, 2 and 4 worker processes, with and
without provenance.

Each row starts a fresh server the way ``mcp-ledger serve --transport http --workers N`` does (the
supervisor of ``server.workers`` binds a loopback port and runs N workers on it; every worker writes
its own chain), but with the benchmark's no-op tool (``bench._noop``) so that a call costs the HTTP
stack, the SDK and — when it is on — the provenance middleware, and nothing else. Each client holds
one keep-alive connection and sends stateless ``tools/call`` requests back to back (raw HTTP/1.1 with
the MCP headers, written and parsed here: an HTTP client library would cost the 2-core machine more
CPU than the server it measures). Per worker count two servers run at once, without and with
provenance; after a warm-up each, timed blocks alternate between them (as ``bench.overhead`` pairs
do), so that a drift of the machine falls on both. Then each server is stopped with SIGTERM and its
ledger checked: ``verify`` holds and it holds exactly one span per call sent (warm-up included). The
provenance overhead at load is read two ways: the share of throughput it costs (median over adjacent
blocks of 1 - calls/s with it / without it) and the workers' CPU time per call (from ``/proc``), which a
busy machine disturbs much less.

    python -m bench.http_load              # full run (about 2 minutes on 2 cores)
    python -m bench.http_load --quick      # smoke run

Prints a markdown table and writes ``bench/results/http_load-<UTC stamp>.json`` and ``-latest.json``
(plus ``http_load-latest.md``, the table as the README shows it); ``load_average`` in the JSON says
how busy the machine was, ``block_rates`` and ``client_cpu_us`` what each block served and what the
clients cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._results import RESULTS_DIR, save

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
    block_rates: list[float] = field(default_factory=list)  # calls/s of each timed block
    server_cpu_us: float | None = None  # CPU time of all workers per call after their start (Linux)
    client_cpu_us: float | None = None  # CPU time of the benchmark's clients per call
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
    """(latencies of the successful calls that ended in the timed window, in s; failed calls, all of
    them; the window's seconds; every call sent). Calls still running at the window's end finish, uncounted."""
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
            if not ok:
                errors += 1
            elif start <= done <= end:
                latencies.append(done - began)

    await asyncio.gather(*(run(client) for client in pool))
    for client in pool:
        client.close()
    return latencies, errors, seconds, sum(client.sent for client in pool)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(workers: int, provenance_on: bool, ledger: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    command = [sys.executable, "-m", "bench.http_load", "--role", "serve", "--workers", str(workers)]
    command += ["--port", str(port), "--provenance", "on" if provenance_on else "off", "--ledger-dir", str(ledger)]
    return subprocess.Popen(command, stdout=subprocess.PIPE), port


def _wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline() != b"ready\n":  # every worker serves
        raise SystemExit(f"the server exited ({proc.wait()}) before serving")


_PROC = Path("/proc/self/stat").exists()
_TICKS = os.sysconf("SC_CLK_TCK") if _PROC else 100


def _workers_cpu(supervisor: int) -> float:
    """CPU seconds (user + system) used so far by the worker processes of a supervisor (0 without /proc)."""
    if not _PROC:
        return 0.0
    try:
        pids = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return 0.0
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


_RAMP = 0.3  # untimed seconds at the start of each block: its clients connect and reach a steady state


def _run_pair(workers: int, clients: int, warmup: float, blocks: int, block: float, root: Path) -> list[Row]:
    """Two servers of ``workers`` workers at once, without and with provenance; after a warm-up each, timed
    blocks alternate between them (which goes first alternates too), so that the machine's drift falls
    on both alike."""
    from mcp_ledger import provenance

    ledgers = {on: root / f"w{workers}-{'on' if on else 'off'}" for on in (False, True)}
    servers = {on: _start(workers, on, ledgers[on]) for on in (False, True)}
    latencies: dict[bool, list[float]] = {False: [], True: []}
    errors = {False: 0, True: 0}
    totals = {False: 0, True: 0}
    rates: dict[bool, list[float]] = {False: [], True: []}
    server_cpu = {False: 0.0, True: 0.0}
    client_cpu = {False: 0.0, True: 0.0}
    try:
        for proc, _ in servers.values():
            _wait_ready(proc)
        for on in (False, True):
            server_cpu[on] -= _workers_cpu(servers[on][0].pid)
            client_cpu[on] -= _own_cpu()
            totals[on] += asyncio.run(_load(servers[on][1], clients, 0.0, warmup))[3]
            client_cpu[on] += _own_cpu()
        for number in range(blocks):
            for on in (False, True) if number % 2 == 0 else (True, False):
                client_cpu[on] -= _own_cpu()
                timed, failed, seconds, sent = asyncio.run(_load(servers[on][1], clients, _RAMP, block))
                client_cpu[on] += _own_cpu()
                latencies[on] += timed
                errors[on] += failed
                totals[on] += sent
                rates[on].append(len(timed) / seconds)
        for on in (False, True):
            server_cpu[on] += _workers_cpu(servers[on][0].pid)
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
        codes = {on: proc.wait(timeout=60) for on, (proc, _) in servers.items()}
    if any(codes.values()):
        raise SystemExit(f"a server exited with status {codes} after SIGTERM")
    rows = []
    for on in (False, True):
        ordered = sorted(latencies[on])
        row = Row(
            workers=workers,
            provenance=on,
            clients=clients,
            calls=len(ordered),
            errors=errors[on],
            seconds=blocks * block,
            calls_per_s=round(len(ordered) / (blocks * block), 1),
            p50_ms=round(1000 * ordered[len(ordered) // 2], 2) if ordered else 0.0,
            p99_ms=round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2) if ordered else 0.0,
            total_calls=totals[on],
            block_rates=[round(rate, 1) for rate in rates[on]],
            server_cpu_us=round(1e6 * server_cpu[on] / totals[on], 1) if _PROC and totals[on] else None,
            client_cpu_us=round(1e6 * client_cpu[on] / totals[on], 1) if totals[on] else None,
            load_average=round(os.getloadavg()[0], 2),
        )
        if on:
            store = provenance.Ledger(ledgers[on])
            report = store.verify()
            row.spans = sum(1 for span in store.scan() if span["attributes"].get("gen_ai.tool.name") == TOOL)
            per_chain = _spans_per_chain(ledgers[on])
            row.verified = report.ok
            row.chains = len(report.chains)
            row.shares = sorted((round(n / max(1, row.spans), 3) for n in per_chain.values()), reverse=True)
        rows.append(row)
    return rows


def _cost(off: Row, on: Row) -> float | None:
    """What provenance costs of the throughput: the median over adjacent block pairs of 1 - on / off."""
    ratios = [1 - b / a for a, b in zip(off.block_rates, on.block_rates, strict=False) if a]
    return statistics.median(ratios) if ratios else None


def _spans_per_chain(ledger: Path) -> Counter[str]:
    """Span lines per chain (one chain per worker process), from the segment files' names."""
    counts: Counter[str] = Counter()
    for path in ledger.glob("*.jsonl"):
        if path.name != "checkpoints.jsonl":
            counts[path.name.split(".")[0]] += path.read_bytes().count(b'"type":"span"')
    return counts


def _table(rows: list[Row], worker_counts: list[int]) -> str:
    by = {(r.workers, r.provenance): r for r in rows}
    header = "| | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in worker_counts) + " |"
    lines = [header, "|---|" + "---:|" * len(worker_counts)]

    def line(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(n) for n in worker_counts) + " |")

    def get(n: int, on: bool) -> Row | None:
        return by.get((n, on))

    def cost(n: int) -> str:
        on, off = get(n, True), get(n, False)
        value = _cost(off, on) if on is not None and off is not None else None
        return "" if value is None else f"{100 * value:.1f} %"

    def cpu(n: int) -> str:
        on, off = get(n, True), get(n, False)
        if on is None or off is None or on.server_cpu_us is None or off.server_cpu_us is None:
            return ""
        return f"{on.server_cpu_us:,.0f} / {off.server_cpu_us:,.0f}"

    def cpu_cost(n: int) -> str:
        on, off = get(n, True), get(n, False)
        if on is None or off is None or on.server_cpu_us is None or not off.server_cpu_us:
            return ""
        extra = on.server_cpu_us - off.server_cpu_us
        return f"{extra:+,.0f} ({100 * extra / off.server_cpu_us:+.1f} %)"

    def failures(n: int) -> str:
        return " / ".join(str(r.errors) if r else "" for r in (get(n, True), get(n, False)))

    def checks(n: int) -> str:
        r = get(n, True)
        if r is None or r.spans is None:
            return ""
        return f"{'yes' if r.spans == r.total_calls else 'NO'} ({r.spans:,}), {'ok' if r.verified else 'FAILED'}"

    line("calls/s, provenance on", lambda n: f"{r.calls_per_s:,.0f}" if (r := get(n, True)) else "")
    line("calls/s, provenance off", lambda n: f"{r.calls_per_s:,.0f}" if (r := get(n, False)) else "")
    line("provenance cost of throughput", cost)
    line("server CPU µs per call, on / off", cpu)
    line("provenance CPU µs per call", cpu_cost)
    line("p50 / p99 ms, provenance on", lambda n: f"{r.p50_ms:.1f} / {r.p99_ms:.1f}" if (r := get(n, True)) else "")
    line("p50 / p99 ms, provenance off", lambda n: f"{r.p50_ms:.1f} / {r.p99_ms:.1f}" if (r := get(n, False)) else "")
    line(
        "failed calls (on / off)",
        lambda n: " / ".join(str(r.errors) if r else "" for r in (get(n, True), get(n, False))),
    )
    line("spans == calls, verify", checks)
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
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per server (default 6)")
    parser.add_argument("--block", type=float, default=2.5, help="timed seconds per block (default 2.5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first (default 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 blocks of 1 s")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results")
    args = parser.parse_args(argv)
    if args.role == "serve":
        args.workers = int(args.workers)
        return _serve(args)
    if args.role == "worker":
        return _worker(args)

    counts = [int(n) for n in args.workers.split(",")]
    if args.quick:
        args.blocks, args.block, args.warmup = 2, 1.0, 0.5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mcp-ledger-http-load-") as tmp:
        os.environ.setdefault("MCP_LEDGER_CHECKPOINT_KEY", str(Path(tmp) / "checkpoint-key.pem"))
        for n in counts:
            pair = _run_pair(n, args.clients, args.warmup, args.blocks, args.block, Path(tmp))
            for row in pair:
                print(
                    f"{n} worker(s), provenance {'on ' if row.provenance else 'off'}: {row.calls_per_s:,.0f} calls/s "
                    f"(blocks {row.block_rates}), p50 {row.p50_ms} ms, p99 {row.p99_ms} ms, {row.errors} failed, "
                    f"load {row.load_average}"
                    + (
                        f", {row.spans} spans of {row.total_calls} calls, verify {row.verified}"
                        if row.provenance
                        else ""
                    ),
                    file=sys.stderr,
                    flush=True,
                )
            rows += pair
    table = _table(rows, counts)
    print(table)
    failed = [r for r in rows if r.provenance and (not r.verified or r.spans != r.total_calls)]
    results = {
        "benchmark": "http_load",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "clients": args.clients,
        "blocks": args.blocks,
        "block_seconds": args.block,
        "warmup": args.warmup,
        "rows": [asdict(r) for r in rows],
        "table": table,
    }
    if not args.no_write:
        print(f"\nwrote {save('http_load', results)}", file=sys.stderr)
        (RESULTS_DIR / "http_load-latest.md").write_text(table + "\n")
    if failed:
        print("LEDGER CHECK FAILED: " + ", ".join(f"{r.workers} worker(s)" for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
