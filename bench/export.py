"""``mcp-ledger export`` on a large ledger: rate, peak memory and output size against the JSON lines.

Writes a synthetic ledger shaped like real use (``bench.store``'s spans: four chains over 30 days,
``--spans`` spans, default 1,000,000; ``--quick`` 100,000) and a ledger a tenth of its size, then runs
``mcp-ledger export`` on each in a process of its own, once per format, and reports spans/s (the run's
own clock, from the first line read to the manifest written), spans per CPU-second of the whole process
(imports included; steadier than the clock on a machine shared with other work), the process's peak
RSS (its ``VmHWM``: imports included, about 66 MiB for the CLI and 55 MiB more for pyarrow) and the
bytes written against the ledger's segment files. Peak RSS on the small and the large ledger side by
side shows whether memory grows with the ledger. With DuckDB installed (it comes with ``.[dev]``), the
Parquet output is read back: its row count must equal the ledger's, and a group-by over it is timed.

    python -m bench.export            # 1M spans: about 2 minutes on 2 cores
    python -m bench.export --quick    # 100,000 spans

Prints a markdown table and writes ``bench/results/export-<UTC stamp>.json`` and ``export-latest.json``.
Every number is taken with the ledger in the page cache (it was just written).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from bench._results import save
from bench.store import write_ledger

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


# The child reports its own peak RSS (VmHWM of its address space): ``wait4``'s ru_maxrss would count the
# parent's, which a child started by fork or vfork inherits until it execs.
_CHILD = """
import resource, sys
from mcp_ledger.server.cli import main
code = main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
usage = resource.getrusage(resource.RUSAGE_SELF)
print("peak_rss_kib", peak.split()[1], "cpu_seconds", usage.ru_utime + usage.ru_stime, file=sys.stderr)
sys.exit(code)
"""


def run_export(ledger: Path, out: Path, fmt: str) -> dict[str, Any]:
    """One ``mcp-ledger export`` process: its report, wall time and peak RSS."""
    argv = [sys.executable, "-c", _CHILD, "export", "--ledger-dir", str(ledger)]
    argv += ["--out", str(out), "--format", fmt, "--json"]
    began = time.perf_counter()
    process = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"export failed: {process.stderr.decode(errors='replace')[-2000:]}")
    report = orjson.loads(process.stdout)
    measured = process.stderr.decode().split("peak_rss_kib")[-1].split()
    peak_kib, cpu_seconds = int(measured[0]), float(measured[2])
    return {
        "format": fmt,
        "spans": report["spans"],
        "files": len(report["files"]),
        "bytes": report["bytes"],
        "seconds": report["seconds"],
        "wall_seconds": round(wall, 2),
        "spans_per_second": round(report["spans"] / report["seconds"]),
        "cpu_seconds": round(cpu_seconds, 2),
        "spans_per_cpu_second": round(report["spans"] / cpu_seconds),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def duckdb_check(out: Path, spans: int) -> dict[str, Any] | None:
    if _version("duckdb") is None:
        return None
    import duckdb

    db = duckdb.connect()
    source = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    count = db.execute(f"SELECT count(*) FROM {source}").fetchone()
    began = time.perf_counter()
    groups = db.execute(
        f"SELECT tool, status, count(*), avg(duration_ms) FROM {source} WHERE day >= DATE '2000-01-01' GROUP BY ALL"
    ).fetchall()
    seconds = time.perf_counter() - began
    return {
        "rows": count[0] if count else None,
        "rows_equal_spans": bool(count and count[0] == spans),
        "group_by_tool_status_ms": round(seconds * 1000, 1),
        "groups": len(groups),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mcp-ledger-bench-export-", dir=args.tmpdir))
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "pyarrow": _version("pyarrow"),
            "duckdb": _version("duckdb"),
            "loadavg_at_start": os.getloadavg(),
        },
        "runs": [],
    }
    try:
        for spans in (args.spans // 10, args.spans):
            directory = workdir / f"ledger-{spans}"
            began = time.perf_counter()
            ledger = write_ledger(directory, spans)
            print(
                f"wrote {spans:,} spans ({ledger.bytes / 2**20:,.0f} MiB) in {time.perf_counter() - began:.0f} s",
                file=sys.stderr,
            )
            for fmt in ("parquet", "jsonl"):
                out = workdir / f"out-{spans}-{fmt}"
                measured = run_export(directory, out, fmt)
                measured.update(ledger_spans=ledger.spans, ledger_bytes=ledger.bytes)
                measured["bytes_vs_jsonl"] = round(measured["bytes"] / ledger.bytes, 4)
                if fmt == "parquet" and spans == args.spans:
                    measured["duckdb"] = duckdb_check(out, ledger.spans)
                results["runs"].append(measured)
                print(f"{fmt} {spans:,}: {measured}", file=sys.stderr)
                shutil.rmtree(out)
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    return results


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"{m['cpus']} x {m['cpu']}, Python {m['python']}, pyarrow {m['pyarrow']}, DuckDB {m['duckdb'] or 'absent'}.",
        "",
        "| ledger | format | spans/s | spans per CPU-second | peak RSS | output | vs the JSON lines |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['ledger_spans']:,} spans, {r['ledger_bytes'] / 2**20:,.0f} MiB | {r['format']} "
            f"| {r['spans_per_second']:,} | {r['spans_per_cpu_second']:,} | {r['peak_rss_mib']:,.0f} MiB "
            f"| {r['bytes'] / 2**20:,.0f} MiB "
            f"| {r['bytes_vs_jsonl']:.1%} |"
        )
    checks = [r["duckdb"] for r in results["runs"] if r.get("duckdb")]
    for check in checks:
        lines += [
            "",
            f"DuckDB read the Parquet back: {check['rows']:,} rows "
            f"({'equal to' if check['rows_equal_spans'] else 'NOT equal to'} the ledger's spans); "
            f"count and mean duration per tool and status in {check['group_by_tool_status_ms']} ms.",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the large ledger (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 spans")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the temporary ledgers go")
    parser.add_argument("--no-save", action="store_true", help="print only; write nothing under bench/results")
    args = parser.parse_args(argv)
    if args.quick:
        args.spans = min(args.spans, 100_000)
    began = time.perf_counter()
    results = run(args)
    results["spans"] = args.spans
    results["seconds"] = round(time.perf_counter() - began, 1)
    print(render(results))
    if not args.no_save:
        save("export", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
