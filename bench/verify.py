"""``verify`` throughput: one long chain and many short ones, in one process and on every core.

Two ledgers of the same size (default 1 GiB of spans shaped like real ones, 1.7 KB a line), written
directly as valid chains by ``bench/_dead_ledger.py`` and then repaired as the next server would: one
chain of 64 MiB segments, and ``--chains`` chains of one segment each (servers started per session).
Each is verified ``--runs`` times in a fresh interpreter, as ``mcp-ledger verify`` runs, with one
process and with every core; the best run is kept, by the wall clock and by CPU seconds (verify's
own and its workers': on a shared machine, waiting for a CPU is not verify's time). The pages are
in the page cache (the ledgers were just written). The target of issue 10 is printed as met / not met.

    python -m bench.verify                   # 1 GiB each, 64 chains, best of 3
    python -m bench.verify --gib 0.2 --runs 1
    python -m bench.verify --baseline /tmp/old   # also verify with an earlier commit's code, same ledgers

Prints a markdown table and writes ``bench/results/verify-<UTC stamp>.json`` and ``verify-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._dead_ledger import write_dead_ledger
from bench._results import save
from bench.store import REPO_ROOT, VERIFY_TARGET, machine_info
from mcp_ledger import provenance

__all__ = ["main"]


# In a fresh interpreter, as `mcp-ledger verify` runs. CPU seconds (this process and its workers) are
# taken beside the wall clock: on a shared machine, time spent waiting for a CPU is not verify's.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from mcp_ledger.provenance._verify import verify  # the module an earlier commit (--baseline) has too
directory, workers, runs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = []
def cpu():
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(r.ru_utime + r.ru_stime for r in usage)
for _ in range(runs):
    began, began_cpu = time.perf_counter(), cpu()
    report = verify(directory, workers=workers)
    out.append([time.perf_counter() - began, cpu() - began_cpu, report.spans, report.ok])
print(json.dumps(out))
"""


def bench_verify(
    label: str, directory: Path, spans: int, size: int, workers: int, runs: int, code: Path = REPO_ROOT
) -> dict[str, Any]:
    """``runs`` verifies of ``directory`` with ``workers`` processes by the ``provenance`` package in
    ``code``; the best wall and CPU times are kept."""
    argv = [sys.executable, "-c", _CHILD, str(directory), str(workers), str(runs)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=code)
    measured = json.loads(done.stdout)
    if any(row[2] != spans or not row[3] for row in measured):
        raise RuntimeError(f"verify of {label} gave {measured}, expected {spans} spans, ok")
    wall, cpu = min(row[0] for row in measured), min(row[1] for row in measured)
    return {
        "ledger": label,
        "code": "this checkout" if code == REPO_ROOT else str(code),
        "workers": workers,
        "spans": spans,
        "bytes": size,
        "runs": [[round(row[0], 3), round(row[1], 3)] for row in measured],
        "per_second": round(spans / wall),
        "per_cpu_second": round(spans / cpu),
        "mib_per_second": round(size / wall / 2**20),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mcp-ledger-bench-verify-", dir=args.tmpdir))
    results: dict[str, Any] = {"machine": machine_info(workdir), "rows": []}
    try:
        for name, chains in (("one chain", 1), (f"{args.chains} chains", args.chains)):
            directory = workdir / name.replace(" ", "-")
            segment_bytes = 64 * 2**20 if chains == 1 else -(-int(args.gib * 2**30) // chains) + 2**20
            ledger = write_dead_ledger(
                directory, total_bytes=int(args.gib * 2**30), chains=chains, segment_bytes=segment_bytes
            )
            provenance.Ledger(directory).recover()  # as the next server leaves it
            size = sum(path.stat().st_size for path in directory.glob("*.jsonl"))
            label = f"{name} ({ledger.segments} segments)"
            print(f"wrote {label}: {ledger.spans:,} spans, {size / 2**30:.2f} GiB", file=sys.stderr)
            for workers in (1, os.cpu_count() or 1):
                for code in [REPO_ROOT, *([args.baseline] if args.baseline else [])]:
                    row = bench_verify(label, directory, ledger.spans, size, workers, args.runs, code)
                    results["rows"].append(row)
                    print(f"{label}, {workers} process(es), {row['code']}: {row['per_second']:,}/s", file=sys.stderr)
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["target_per_second"] = VERIFY_TARGET
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        "| ledger | code | processes | spans | spans/s | MiB/s | spans per CPU-second | target | |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in results["rows"]:
        met = "met" if row["per_second"] >= VERIFY_TARGET else "**not met**"
        lines.append(
            f"| {row['ledger']} | {row['code']} | {row['workers']} | {row['spans']:,} | {row['per_second']:,} | "
            f"{row['mib_per_second']} | {row['per_cpu_second']:,} | ≥ {VERIFY_TARGET:,.0f}/s | {met} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of each ledger in GiB")
    parser.add_argument("--chains", type=int, default=64, help="chains in the many-chain ledger")
    parser.add_argument("--runs", type=int, default=3, help="runs per ledger and process count (best is kept)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of another commit (e.g. from `git archive`) to verify the same ledgers with, for comparison",
    )
    parser.add_argument("--tmpdir", default=None, help="where the temporary ledgers go (default: the system's)")
    args = parser.parse_args(argv)
    results = run(args)
    print(render(results))
    save("verify", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
