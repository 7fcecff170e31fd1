"""What provenance costs in instructions: a count that does not move with the machine's load.

``bench.overhead`` times calls; on a shared machine its percentages move by about a point from run to
run. This counts instead. A client session calls the no-op tool in process under valgrind's callgrind,
on a server without and with provenance; each runs twice, with ``--calls`` and with ``--calls`` plus
``--extra`` timed calls after the same warm-up, so start-up cancels out and the difference divided by
``--extra`` is one call. Every thread of the process is counted (the fsync and checkpoint threads too).

Per call it reports instructions executed (Ir) and misses in callgrind's simulated first-level
instruction cache (I1mr: 64 KB here, larger than most real ones), and how many of the instructions
ran in libcrypto. Read that last column with care: valgrind does not implement the CPU's SHA
extensions, so OpenSSL hashes with its vector code under valgrind (about 2,300 instructions per 64-byte
block, ~16 blocks for a span's line) where the real machine runs a few hundred instructions in all.

    python -m bench.instructions            # both protocol eras (about 10 minutes on 2 cores)
    python -m bench.instructions --era auto --calls 100 --extra 200   # smoke run

Needs valgrind (``callgrind_annotate`` comes with it). Prints a markdown table and writes
``bench/results/instructions-<UTC stamp>.json`` and ``instructions-latest.json``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._results import RESULTS_DIR, save
from bench.overhead import REPO_ROOT, machine_info, source_info

__all__ = ["main"]

ERAS = ("auto", "legacy")
_EVENTS = ("Ir", "I1mr")
# callgrind_annotate's per-function lines: "<Ir> (<pct>)  <I1mr> (<pct>)  file:function [object]".
_ROW = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+([\d,]+) \([^)]*\)\s+(.*)$")


@dataclass(frozen=True)
class Count:
    """One callgrind run: totals, and the instructions that ran in libcrypto."""

    ir: int
    i1mr: int
    libcrypto_ir: int


def _child(era: str, provenance_on: bool, calls: int, warmup: int) -> None:
    """The measured process: one in-process client session, ``warmup`` + ``calls`` calls of the no-op tool."""
    import anyio
    from mcp import Client

    from bench._noop import NOOP_ARGUMENTS, build_app

    async def session() -> None:
        with tempfile.TemporaryDirectory(prefix="mcp-ledger-instr-") as tmp:
            app = build_app(Path(tmp), provenance_enabled=provenance_on)
            try:
                async with Client(app.server, mode=era) as client:
                    for _ in range(warmup + calls):
                        await client.call_tool("bench_noop", NOOP_ARGUMENTS)
            finally:
                app.close()

    anyio.run(session)


def _count(out_file: Path) -> Count:
    """Totals from callgrind's own summary; libcrypto's share from callgrind_annotate's per-function rows."""
    text = out_file.read_text(errors="replace")
    events = re.search(r"^events:\s*(.+)$", text, re.M)
    totals = re.search(r"^(?:summary|totals):\s*(.+)$", text, re.M)
    if events is None or totals is None:
        raise RuntimeError(f"{out_file}: no callgrind summary")
    by_name = dict(zip(events[1].split(), (int(v) for v in totals[1].split()), strict=False))
    annotated = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", "--show=" + ",".join(_EVENTS), str(out_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    libcrypto = 0
    for line in annotated.splitlines():
        row = _ROW.match(line)
        if row and "libcrypto" in row[3] and "PROGRAM TOTALS" not in line:
            libcrypto += int(row[1].replace(",", ""))
    return Count(by_name["Ir"], by_name["I1mr"], libcrypto)


def _run(era: str, provenance_on: bool, calls: int, warmup: int, work: Path) -> Count:
    out = work / f"callgrind.{era}.{'on' if provenance_on else 'off'}.{calls}"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        era,
        "on" if provenance_on else "off",
        str(calls),
        str(warmup),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return _count(out)


def _per_call(long: Count, short: Count, extra: int) -> dict[str, float]:
    return {
        "ir": (long.ir - short.ir) / extra,
        "i1mr": (long.i1mr - short.i1mr) / extra,
        "libcrypto_ir": (long.libcrypto_ir - short.libcrypto_ir) / extra,
    }


def measure(eras: Sequence[str], calls: int, extra: int, warmup: int, jobs: int) -> dict[str, Any]:
    runs = [(era, on, n) for era in eras for on in (False, True) for n in (calls, calls + extra)]
    with tempfile.TemporaryDirectory(prefix="mcp-ledger-callgrind-") as tmp, ThreadPoolExecutor(jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda r: _run(r[0], r[1], r[2], warmup, Path(tmp)), runs), strict=True))
    result: dict[str, Any] = {}
    for era in eras:
        off = _per_call(counts[(era, False, calls + extra)], counts[(era, False, calls)], extra)
        on = _per_call(counts[(era, True, calls + extra)], counts[(era, True, calls)], extra)
        result[era] = {"without": off, "with": on}
    return result


def markdown_table(result: dict[str, Any]) -> str:
    lines = [
        "| era | Ir/call without | Ir/call with | Ir added | of which libcrypto "
        "| I1 misses/call without | with | added |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for era, row in result.items():
        off, on = row["without"], row["with"]
        added = on["ir"] - off["ir"]
        lines.append(
            f"| {era} | {off['ir']:,.0f} | {on['ir']:,.0f} | {added:+,.0f} ({added / off['ir']:+.1%}) "
            f"| {on['libcrypto_ir'] - off['libcrypto_ir']:+,.0f} | {off['i1mr']:,.0f} | {on['i1mr']:,.0f} "
            f"| {on['i1mr'] - off['i1mr']:+,.0f} ({(on['i1mr'] - off['i1mr']) / off['i1mr']:+.1%}) |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="Count the instructions a tool call costs with and without provenance (valgrind's callgrind).",
    )
    parser.add_argument("--era", dest="eras", action="append", choices=ERAS, help="protocol era (default both)")
    parser.add_argument("--calls", type=int, default=300, help="calls of the shorter run after the warm-up")
    parser.add_argument("--extra", type=int, default=1000, help="calls the longer run makes in addition")
    parser.add_argument("--warmup", type=int, default=200, help="calls before either is counted")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind processes at once (default 2)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--child", nargs=4, metavar=("ERA", "ON", "CALLS", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (args.calls < 1 or args.extra < 1 or args.warmup < 0 or args.jobs < 1):
        parser.error("--calls, --extra and --jobs must be positive, --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        era, on, calls, warmup = args.child
        _child(era, on == "on", int(calls), int(warmup))
        return 0
    missing = [tool for tool in ("valgrind", "callgrind_annotate") if shutil.which(tool) is None]
    if missing:
        print(f"needs {' and '.join(missing)} (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    eras = args.eras or list(ERAS)
    result = measure(eras, args.calls, args.extra, args.warmup, args.jobs)
    table = markdown_table(result)
    print(table)
    if not args.no_write:
        document = {
            "benchmark": "provenance-instructions",
            "date": started.isoformat(timespec="seconds"),
            "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
            "machine": machine_info(),
            "source": source_info(),
            "config": {"calls": args.calls, "extra": args.extra, "warmup": args.warmup, "tool": "bench_noop"},
            "per_call": "(counts of the longer run - counts of the shorter) / extra, every thread of the process",
            "caveat": "valgrind lacks the SHA extensions: libcrypto's SHA-256 runs its vector code under it",
            "eras": result,
        }
        path = save("instructions", document, args.results_dir)
        print(f"\nwrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
