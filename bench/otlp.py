"""What OTLP export costs a call, and how fast ``mcp-ledger export --format otlp`` backfills a collector.

Two tables:

* **Per call** (in process, the real app factory and the no-op tool of bench/_noop.py, ``fsync=never``):
  the round trip of a ``tools/call`` with export off, with export on to a receiver that answers at
  once, and with export on to a receiver that is down (port closed); the overhead is the difference of
  the p50s. Another row installs an SDK tracer provider that exports nothing: the cost of the span itself.
  Rounds alternate, so drift in a shared machine hits every row alike. Brief by design: ``bench.overhead``
  is the full study.
* **Backfill**: a ledger of ``--spans`` calls sent by ``provenance.otlp.backfill`` in batches of 512;
  spans per second (and the ledger's bytes per span, for scale).

The receiver runs in a subprocess (``bench/_otlp_sink.py``): it reads each request and answers 200,
decoding nothing, so its CPU does not count against the server's in this process.

    python -m bench.otlp            # about 30 s on 2 cores
    python -m bench.otlp --quick    # smoke run

Prints both tables and writes ``bench/results/otlp-<UTC stamp>.json`` and ``otlp-latest.json``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.shared import _otel as mcp_otel
from opentelemetry import trace as otel_trace
from opentelemetry.util._once import Once

from bench._noop import NOOP_ARGUMENTS, register
from bench._results import save
from bench.overhead import machine_info, source_info
from mcp_ledger.provenance import otlp
from mcp_ledger.server import VERSION
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import prov

__all__ = ["main"]

TOOL = "bench_noop"


@contextmanager
def sink() -> Iterator[str]:
    """A loopback OTLP/HTTP receiver in a subprocess; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._otlp_sink"], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reset_opentelemetry() -> None:
    # A process sets its global tracer provider once; each row starts as a fresh process would.
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None
    tracer = getattr(mcp_otel, "_tracer", None)
    if isinstance(tracer, otel_trace.ProxyTracer):
        tracer._real_tracer = None


SDK_ONLY = "sdk-only"  # an SDK tracer provider with no processor: what the span itself costs


async def _round(endpoint: str | None, calls: int, workdir: Path) -> tuple[list[float], dict[str, Any] | None]:
    _reset_opentelemetry()
    if endpoint == SDK_ONLY:
        from opentelemetry.sdk.trace import TracerProvider

        otel_trace.set_tracer_provider(TracerProvider())
        endpoint = None
    settings = ServerSettings(ledger_dir=workdir, fsync="never", checkpoints=False, otlp_endpoint=endpoint)
    app = create_app(settings, groups=[register(), prov.register()])
    latencies: list[float] = []
    try:
        async with Client(app.server) as client:
            for _ in range(min(200, calls)):  # warm-up: imports, caches, the exporter's connection
                await client.call_tool(TOOL, NOOP_ARGUMENTS)
            for _ in range(calls):
                start = time.perf_counter()
                await client.call_tool(TOOL, NOOP_ARGUMENTS)
                latencies.append((time.perf_counter() - start) * 1e6)
    finally:
        app.close()  # sends what is queued (or counts it dropped)
        _reset_opentelemetry()
    return latencies, app.otlp_export.counts() if app.otlp_export is not None else None


def per_call(calls: int, rounds: int) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with sink() as url, tempfile.TemporaryDirectory(prefix="mcp-ledger-bench-otlp-") as tmp:
        variants = {
            "export off": None,
            "SDK tracer provider, no export": SDK_ONLY,
            "export on (receiver up)": url,
            "export on (receiver down)": f"http://127.0.0.1:{closed_port()}",
        }
        for r in range(rounds):
            for name, endpoint in variants.items():
                latencies, counts = anyio.run(_round, endpoint, calls, Path(tmp) / f"{r}-{len(rows)}-{name[:10]}")
                row = rows.setdefault(name, {"variant": name, "latencies": [], "round_p50_us": [], "counts": None})
                row["latencies"].extend(latencies)
                row["round_p50_us"].append(round(statistics.median(latencies), 1))
                row["counts"] = counts
    table = []
    for row in rows.values():
        latencies = row.pop("latencies")
        table.append(
            {
                **row,
                "calls": len(latencies),
                "mean_us": round(statistics.fmean(latencies), 1),
                "p50_us": round(statistics.median(latencies), 1),
                "p99_us": round(statistics.quantiles(latencies, n=100)[98], 1),
            }
        )
    # The headline is the p50: on a shared machine the mean follows other processes' bursts (the p99).
    base = table[0]["p50_us"]
    for row in table:
        row["overhead_us"] = round(row["p50_us"] - base, 1)
    return table


async def _record(ledger: Path, spans: int) -> None:
    app = create_app(
        ServerSettings(ledger_dir=ledger, fsync="never", checkpoints=False), groups=[register(), prov.register()]
    )
    try:
        async with Client(app.server) as client:
            for i in range(spans):
                await client.call_tool(TOOL, {"text": f"call {i}"})
    finally:
        app.close()


def backfill_rate(spans: int) -> dict[str, Any]:
    with sink() as url, tempfile.TemporaryDirectory(prefix="mcp-ledger-bench-otlp-") as tmp:
        ledger = Path(tmp) / "ledger"
        anyio.run(_record, ledger, spans)
        jsonl_bytes = sum(p.stat().st_size for p in ledger.glob("*.jsonl"))
        endpoint = f"{url}/v1/traces"
        report = otlp.backfill(ledger, endpoint, service_version=VERSION)
        assert report.ok and report.spans == spans, report
    return {
        "spans": report.spans,
        "batches": report.batches,
        "seconds": round(report.seconds, 3),
        "spans_per_s": round(report.spans / report.seconds),
        "ledger_bytes_per_span": round(jsonl_bytes / spans),
    }


def _print_tables(table: list[dict[str, Any]], backfill: dict[str, Any]) -> None:
    print("Per call, in process (no-op tool, fsync never):\n")
    header = f"{'variant':<32} {'calls':>6} {'mean µs':>8} {'p50 µs':>7} {'p99 µs':>7} {'+µs p50':>7}"
    print(f"{header}  {'p50 per round':<36} exported/dropped/failed (last round)")
    for row in table:
        counts = row["counts"]
        shown = f"{counts['exported']}/{counts['dropped']}/{counts['failed']}" if counts else ""
        print(
            f"{row['variant']:<32} {row['calls']:>6} {row['mean_us']:>8} {row['p50_us']:>7} {row['p99_us']:>7} "
            f"{row['overhead_us']:>7}  {row['round_p50_us']!s:<36} {shown}"
        )
    print(
        f"\nBackfill: {backfill['spans']} spans in {backfill['batches']} batches, {backfill['seconds']} s: "
        f"{backfill['spans_per_s']:,} spans/s ({backfill['ledger_bytes_per_span']} ledger bytes per span)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500, help="timed calls per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=10_000, help="ledger size for the backfill")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.rounds, args.spans = 200, 1, 1000
    os.environ.setdefault("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    table = per_call(args.calls, args.rounds)
    backfill = backfill_rate(args.spans)
    _print_tables(table, backfill)
    if not args.no_write:
        results = {
            "config": {"calls": args.calls, "rounds": args.rounds, "spans": args.spans},
            "per_call": table,
            "backfill": backfill,
            "machine": machine_info(),
            "source": source_info(),
        }
        print(f"\nwrote {save('otlp', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
