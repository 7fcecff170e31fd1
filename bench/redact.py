"""What redaction costs on adversarial text, and whether one large call stalls the others.

Two tables:

* **Per rule**: 1 MB of text built to trap one rule — the near misses that made the old JWT and PEM
  patterns rescan the rest of the text from every candidate (200 KB took 7.4 s and 13.3 s) — and 1 MB
  dense with real matches of it. The time of ``redact_text`` (best of ``--repeat``) at 256 KB and
  1 MB; a ratio near 4 is linear time. Target: ≤ 50 ms per MB of adversarial text.
* **Concurrency**: an in-process server (the real app factory and the no-op tool of bench/_noop.py)
  with two clients: one keeps sending calls whose argument is 1 MB of adversarial text, the other
  makes small calls and times them. Rows: no large call (baseline), large calls with their redaction
  in a worker thread (the default, payloads above 64 KiB), and large calls with it on the event loop.

    python -m bench.redact            # full run (about a minute on 2 cores)
    python -m bench.redact --quick    # smoke run

Prints both tables and writes ``bench/results/redact-<UTC stamp>.json`` and ``redact-latest.json``
(plus ``redact-latest.md``, the tables as the README shows them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
from mcp import Client

from bench._noop import NOOP_ARGUMENTS, build_app
from bench.overhead import RESULTS_DIR, machine_info, source_info
from mcp_ledger.provenance import _middleware
from mcp_ledger.provenance._redact import redact_text

__all__ = ["CASES", "main"]

MB = 1_000_000
TARGET_MS = 50.0
TOOL = "bench_noop"

# Built at run time from pieces, so no scanner flags this file.
_GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS"
_HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
_AWS = "AKIA" + "IOSFODNN7EXAMPLQ"
_JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
_PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lg\n-----END RSA PRIVATE KEY-----"


@dataclass(frozen=True)
class Case:
    """One row: a rule, and the piece repeated to make the text (``adversarial`` or ``dense`` matches)."""

    rule: str
    kind: str
    unit: str
    description: str

    def text(self, size: int) -> str:
        return (self.unit * (size // len(self.unit) + 1))[:size]


CASES: tuple[Case, ...] = (
    Case("(none)", "baseline", "hello world, ", "prose without a candidate: the floor"),
    Case("jwt", "adversarial", "-eyJ", "`-eyJ` repeated (finding 2)"),
    Case("jwt", "adversarial", "eyJa.eyJ", "segments too short to be a JWT"),
    Case("jwt", "dense", _JWT + " ", "real JWTs"),
    Case("pem", "adversarial", "-----BEGIN A-----_", "headers without an end marker (finding 2)"),
    Case("pem", "adversarial", "-----BEGIN A-----\n-----END ", "broken end markers"),
    Case("pem", "dense", _PEM + "\n", "real PEM blocks"),
    Case("github-token", "adversarial", "ghp_" + "a" * 29 + "-", "prefixes one character short"),
    Case("github-token", "dense", _GH + " ", "real tokens"),
    Case("github-pat", "adversarial", "github_pat_" + "a" * 21 + "-", "prefixes one character short"),
    Case("github-pat", "dense", _PAT + " ", "real tokens"),
    Case("hf-token", "adversarial", "hf_" + "a" * 29 + "-", "prefixes one character short"),
    Case("hf-token", "dense", _HF + " ", "real tokens"),
    Case("aws-access-key", "adversarial", "AKIA" + "A" * 15 + "-", "keys one character short"),
    Case("aws-access-key", "dense", _AWS + " ", "real keys"),
    Case("bearer", "adversarial", "Bearer " + "a" * 15 + " ", "credentials one character short"),
    Case("bearer", "dense", "Bearer " + "a1" * 10 + " ", "real credentials"),
    Case("basic", "adversarial", "Basic " + "aGVsbG8gd29ybGQ" + " ", "base64 without user:password"),
    Case("basic", "dense", "Basic " + "dXNlcjpwYXNz" + " ", "real credentials"),
    Case("url-userinfo", "adversarial", "://a", "schemes without an @"),
    Case("url-userinfo", "dense", "https://u:p@h/ ", "real userinfo"),
    Case("url-credential", "adversarial", "x=" * 4, "= without a credential's name"),
    Case("url-credential", "dense", "&sig=abc", "real parameters"),
    Case("key-value", "adversarial", "token ", "secret names without a value"),
    Case("key-value", "adversarial", "pwd" * 10 + " ", "names packed in short runs"),
    Case("key-value", "adversarial", "token", "one name run of 1 MB"),
    Case("key-value", "dense", "token=a ", "real assignments"),
)


@dataclass
class RuleResult:
    rule: str
    kind: str
    description: str
    ms_256k: float
    ms_1m: float
    cuts_1m: int

    @property
    def ratio(self) -> float:
        return self.ms_1m / self.ms_256k if self.ms_256k else float("nan")

    @property
    def met(self) -> bool | None:
        return self.ms_1m <= TARGET_MS if self.kind == "adversarial" else None


def _best_ms(text: str, repeat: int) -> tuple[float, int]:
    best, cuts = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        _, kinds = redact_text(text)
        best = min(best, time.perf_counter() - start)
        cuts = len(kinds)
    return best * 1000, cuts


def measure_rules(repeat: int) -> list[RuleResult]:
    results = []
    for case in CASES:
        ms_small, _ = _best_ms(case.text(MB // 4), repeat)
        ms_large, cuts = _best_ms(case.text(MB), repeat)
        results.append(RuleResult(case.rule, case.kind, case.description, ms_small, ms_large, cuts))
    return results


@dataclass
class LatencyResult:
    name: str
    large_calls: int
    innocent_calls: int
    median_ms: float
    p99_ms: float
    max_ms: float


@contextmanager
def _off_loop_bytes(limit: int) -> Iterator[None]:
    saved = _middleware._OFF_LOOP_BYTES
    _middleware._OFF_LOOP_BYTES = limit
    try:
        yield
    finally:
        _middleware._OFF_LOOP_BYTES = saved


async def _innocent_latency(name: str, large: str | None, calls: int, workdir: Path) -> LatencyResult:
    app = build_app(Path(tempfile.mkdtemp(dir=workdir)), provenance_enabled=True)
    latencies: list[float] = []
    large_calls = 0
    try:
        async with Client(app.server, mode="auto") as innocent, Client(app.server, mode="auto") as heavy:
            for _ in range(20):  # warm-up
                await innocent.call_tool(TOOL, NOOP_ARGUMENTS)
            done = anyio.Event()

            async def keep_sending() -> None:
                nonlocal large_calls
                while not done.is_set():
                    await heavy.call_tool(TOOL, {"text": large})  # refused (too long), recorded all the same
                    large_calls += 1

            async with anyio.create_task_group() as group:
                if large is not None:
                    group.start_soon(keep_sending)
                    await anyio.sleep(0.2)
                for _ in range(calls):
                    start = time.perf_counter()
                    await innocent.call_tool(TOOL, NOOP_ARGUMENTS)
                    latencies.append((time.perf_counter() - start) * 1000)
                    await anyio.sleep(0.002)
                done.set()
    finally:
        app.close()
    latencies.sort()
    return LatencyResult(
        name,
        large_calls,
        len(latencies),
        statistics.median(latencies),
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        latencies[-1],
    )


async def measure_latency(calls: int) -> list[LatencyResult]:
    large = CASES[1].text(MB)  # the JWT trap of finding 2
    with tempfile.TemporaryDirectory(prefix="mcp-ledger-bench-") as tmp:
        workdir = Path(tmp)
        rows = [await _innocent_latency("no large call", None, calls, workdir)]
        rows.append(await _innocent_latency("large calls, redaction in a worker thread", large, calls, workdir))
        with _off_loop_bytes(1 << 62):
            rows.append(await _innocent_latency("large calls, redaction on the event loop", large, calls, workdir))
    return rows


def markdown_tables(rules: Sequence[RuleResult], latency: Sequence[LatencyResult]) -> str:
    lines = [
        "| rule | input (repeated to 1 MB) | ms / 256 KB | ms / 1 MB | ratio | cuts | ≤ 50 ms? |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for r in rules:
        met = "—" if r.met is None else ("yes" if r.met else "no")
        lines.append(
            f"| {r.rule} | {r.description} ({r.kind}) | {r.ms_256k:.1f} | {r.ms_1m:.1f} | {r.ratio:.1f} "
            f"| {r.cuts_1m} | {met} |"
        )
    lines += [
        "",
        "| innocent call while … | large calls | median ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in latency:
        lines.append(f"| {row.name} | {row.large_calls} | {row.median_ms:.2f} | {row.p99_ms:.2f} | {row.max_ms:.2f} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redact", description="Measure redaction on adversarial text and its effect on others."
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per text; the best counts (default 5)")
    parser.add_argument("--calls", type=int, default=300, help="innocent calls timed per latency row (default 300)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 50 innocent calls")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.calls = 2, 50
    if args.repeat < 1 or args.calls < 1:
        parser.error("--repeat and --calls must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    rules = measure_rules(args.repeat)
    latency = anyio.run(measure_latency, args.calls)
    tables = markdown_tables(rules, latency)
    print(tables)
    if args.no_write:
        return 0
    document = {
        "benchmark": "redaction",
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "source": source_info(),
        "config": {"repeat": args.repeat, "innocent_calls": args.calls, "target_ms_per_mb": TARGET_MS},
        "rules": [{**asdict(r), "ratio": r.ratio, "met": r.met} for r in rules],
        "latency": [asdict(row) for row in latency],
    }
    out_dir: Path = args.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    path = out_dir / f"redact-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text)
    (out_dir / "redact-latest.json").write_text(text)
    (out_dir / "redact-latest.md").write_text(tables + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
