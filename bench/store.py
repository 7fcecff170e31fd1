"""The ledger at scale: append, index, questions, verify and cold start on synthetic spans shaped like real ones.

Writes ``--spans`` spans (default 1,000,000; ``--quick`` 100,000) into a temporary ledger in four
chains (a server restarted weekly over 30 days), then measures in one run:

- append throughput per fsync policy with 1 and 16 writer threads on one store (``always``: each
  writer appends, then waits until its span is durable, as a server call does);
- index build (``rebuild_index``) over the ledger, and catch-up after 10,000 spans from a new writer;
- three questions (the 20 newest errors of one tool in a 7-day window, one trace, stats over a day)
  answered by the index, by a full scan (``iter_spans`` + ``SpanFilter.matches``) and by DuckDB
  ``read_json`` over the same segment files; the three answers are checked against each other;
- verify throughput, serial and with two worker processes (in a fresh interpreter, like ``mcp-ledger verify``);
- cold start of ``python -m mcp_ledger.server serve`` to its first ``tools/list`` answer against a bare SDK
  ``MCPServer`` with one tool (``bench/_bare_server.py``), launched alternately, raw JSON-RPC over pipes.

Every number is taken with the ledger in the page cache (it was just written); the targets of
issue 3 are printed as met / not met, never asserted.

    python -m bench.store              # full run: about 1 GB on disk, ~10 minutes on 2 cores
    python -m bench.store --quick      # 100,000 spans
    .venv/bin/pip install duckdb       # the DuckDB column (bench only; not a project dependency)

Prints a markdown table and writes ``bench/results/store-<UTC stamp>.json`` and ``store-latest.json``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from mcp_ledger import provenance
from mcp_ledger.provenance._index import open_index, rebuild_index
from mcp_ledger.provenance._query import SpanFilter, get_trace, iter_spans, query_spans, span_stats
from mcp_ledger.provenance._segments import list_chains
from mcp_ledger.provenance._store import FsyncPolicy

__all__ = ["SpanFactory", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"

DAY_NS = 86_400 * 1_000_000_000
LEDGER_DAYS = 30
PREVIEW_BYTES = 1024  # the middleware's default preview size
CHAINS = 4
CATCH_UP_SPANS = 10_000
PROTOCOL_VERSION = "2025-11-25"

# Targets from issue 3.
APPEND_TARGETS = {"never": 50_000.0, "batch": 20_000.0}
QUERY_TARGET_MS = 20.0
QUERY_TARGET_SPEEDUP = 50.0
VERIFY_TARGET = 300_000.0
COLD_START_TARGET = 1.15


@dataclass(frozen=True)
class ToolShape:
    """One tool as it shows up in the ledger: how often, how often it fails, what it takes and returns."""

    name: str
    group: str
    weight: int
    error_rate: float
    read_only: bool = True
    destructive: bool = False
    output_bytes: tuple[int, int] = (200, 1500)  # canonical output size range before the preview cut


TOOLS: tuple[ToolShape, ...] = (
    ToolShape("github_pr_get", "github", 12, 0.10, output_bytes=(60, 1600)),
    ToolShape("github_pr_list", "github", 10, 0.07, output_bytes=(40, 2000)),
    ToolShape("github_issue_list", "github", 8, 0.07, output_bytes=(40, 2000)),
    ToolShape("github_issue_get", "github", 8, 0.12, output_bytes=(60, 1400)),
    ToolShape("github_run_list", "github", 8, 0.08, output_bytes=(40, 1400)),
    ToolShape("github_job_logs", "github", 6, 0.18, output_bytes=(80, 3000)),
    ToolShape("github_issue_comment", "github", 3, 0.12, read_only=False, output_bytes=(150, 400)),
    ToolShape("github_workflow_dispatch", "github", 1, 0.20, read_only=False, output_bytes=(60, 200)),
    ToolShape("docker_container_list", "docker", 10, 0.06, output_bytes=(40, 1400)),
    ToolShape("docker_container_inspect", "docker", 6, 0.14, output_bytes=(80, 2000)),
    ToolShape("docker_container_logs", "docker", 8, 0.12, output_bytes=(40, 2500)),
    ToolShape("docker_container_stats", "docker", 3, 0.08, output_bytes=(40, 400)),
    ToolShape("docker_image_list", "docker", 3, 0.05, output_bytes=(40, 1000)),
    ToolShape(
        "docker_container_restart", "docker", 1, 0.18, read_only=False, destructive=False, output_bytes=(60, 200)
    ),
    ToolShape("prov_query", "prov", 5, 0.14, output_bytes=(30, 1200)),
    ToolShape("prov_stats", "prov", 3, 0.03, output_bytes=(60, 700)),
    ToolShape("prov_verify", "prov", 1, 0.01, output_bytes=(70, 200)),
)

ERROR_MESSAGES = (
    (
        "tool_error",
        "GitHub answered 404 Not Found for GET /repos/{owner}/{repo}/pulls/{n}: check the owner, "
        "repository and number, and that the token can read this repository",
    ),
    (
        "tool_error",
        "GitHub rate limit exhausted (0 of 5000 left, resets in 1412 s); retry after the reset or "
        "lower --github-max-rate-limit-wait",
    ),
    ("tool_error", "Docker engine answered 404: No such container: {name}; list containers with docker_container_list"),
    ("tool_error", "the call took longer than 120 s and was stopped; raise --call-timeout or narrow the request"),
    ("-32602", "Invalid arguments for tool: 1 validation error: limit must be less than or equal to 200"),
    ("tool_error", "since: expected an ISO-8601 time (2026-11-27T10:00:00Z) or an age such as 15m, 2h, 7d"),
)

CLIENTS = (("claude-code", "2.1.4"), ("cursor", "1.9.2"), ("mcp", "0.1.0"), ("codex", "0.58.0"), ("goose", "1.12.0"))
REPOS = ("acme/payments-api", "acme/web", "acme/infra", "acme/mobile-app", "acme/data-pipeline", "acme/docs")
_TEXT = (
    "fix retry budget in webhook consumer when upstream returns 429 and the queue is draining slowly "
    "add migration for ledger index bump dependency pin flaky test timeout on arm runners release notes "
    "refactor settings loader cache layer metrics exporter healthcheck rollout canary revert config"
)
WORDS = tuple(_TEXT.split())


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _output_for(tool: ToolShape, rng: random.Random) -> Any:
    """A plausible structured result of ``tool``, grown to a size in the tool's range."""
    low, high = tool.output_bytes
    target = int(math.exp(rng.uniform(math.log(low), math.log(high))))  # log-uniform: most results are small
    if target < 160:  # an acknowledgement, an empty page, one small object
        return {"items": [], "total": 0, "ok": True, "id": _hex(rng, 12)}
    repo = rng.choice(REPOS)
    items: list[dict[str, Any]] = []
    size = 0
    while size < target:
        if tool.group == "github":
            item: dict[str, Any] = {
                "number": rng.randint(1, 9000),
                "title": _sentence(rng, rng.randint(4, 10)),
                "state": rng.choice(("open", "closed", "merged")),
                "user": rng.choice(("octocat", "ana-dev", "bkumar", "ci-bot", "lmartin")),
                "html_url": f"https://github.com/{repo}/pull/{rng.randint(1, 9000)}",
                "updated_at": f"2026-11-{rng.randint(1, 27):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
            }
            if tool.name == "github_job_logs":
                item = {"line": f"2026-11-20T10:{rng.randint(0, 59):02d}:00Z {_sentence(rng, rng.randint(6, 16))}"}
        elif tool.group == "docker":
            item = {
                "id": _hex(rng, 64),
                "name": f"{rng.choice(('api', 'worker', 'db', 'cache', 'proxy'))}-{rng.randint(1, 9)}",
                "image": f"registry.local/{rng.choice(('api', 'worker', 'postgres'))}:{rng.randint(1, 40)}",
                "state": rng.choice(("running", "exited", "restarting")),
                "status": f"Up {rng.randint(1, 72)} hours",
            }
            if tool.name == "docker_container_logs":
                item = {"line": f'level=info ts={rng.randint(10**9, 2 * 10**9)} msg="{_sentence(rng, 8)}"'}
        else:
            item = {
                "span_id": _hex(rng, 16),
                "tool": rng.choice(TOOLS).name,
                "status": rng.choice(("OK", "OK", "ERROR")),
                "duration_ms": round(rng.random() * 900, 3),
            }
        items.append(item)
        size += len(orjson.dumps(item)) + 1
    return {"items": items, "total": len(items), "truncated": False}


def _input_for(tool: ToolShape, rng: random.Random) -> dict[str, Any]:
    owner, repo = rng.choice(REPOS).split("/")
    if tool.group == "github":
        args: dict[str, Any] = {"owner": owner, "repo": repo}
        if tool.name.endswith(("_get", "_logs", "_comment")):
            args["number"] = rng.randint(1, 9000)
        if tool.name.endswith("_list"):
            args.update(state=rng.choice(("open", "closed", "all")), per_page=rng.choice((10, 30, 50)))
        if tool.name == "github_issue_comment":
            args["body"] = _sentence(rng, rng.randint(10, 40))
        return args
    if tool.group == "docker":
        args = {"container": f"{rng.choice(('api', 'worker', 'db'))}-{rng.randint(1, 9)}"}
        if tool.name == "docker_container_logs":
            args.update(tail=rng.choice((100, 200, 500)), timestamps=True)
        return args
    return {"tool": rng.choice(TOOLS).name, "status": rng.choice(("error", "ok")), "since": "7d", "limit": 20}


def _digest(payload: Any) -> dict[str, Any]:
    """What the middleware stores for a payload: digest, size and a preview cut at ``PREVIEW_BYTES``."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    truncated = len(canonical) > PREVIEW_BYTES
    preview = canonical[:PREVIEW_BYTES].decode("utf-8", errors="ignore") if truncated else canonical.decode()
    return {
        "sha256": hashlib.sha256(canonical).hexdigest(),
        "size": len(canonical),
        "preview": preview,
        "truncated": truncated,
        "redactions": [],
    }


@dataclass
class _Connection:
    id: str
    client: tuple[str, str]
    transport: str
    session: str | None
    next_request: int = 1


class SpanFactory:
    """Deterministic spans in start-time order over ``days``: traces of 1-4 calls on one connection each.

    Payload digests come from a pool per tool (computed once), so a million spans cost seconds to make.
    """

    def __init__(self, total: int, *, start_ns: int, days: int = LEDGER_DAYS, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.start_ns = start_ns
        self.step_ns = days * DAY_NS // max(total, 1)
        self.made = 0
        self.errors = 0
        self._tools = list(TOOLS)
        self._weights = [t.weight for t in TOOLS]
        pool_rng = random.Random(seed + 1)
        self._inputs = {t.name: [_digest(_input_for(t, pool_rng)) for _ in range(48)] for t in TOOLS}
        self._outputs = {t.name: [_digest(_output_for(t, pool_rng)) for _ in range(48)] for t in TOOLS}
        self._connections = [
            _Connection(
                id=f"c-{pool_rng.randint(2000, 60000)}-{_hex(pool_rng, 8)}",
                client=pool_rng.choice(CLIENTS),
                transport="tcp" if i % 3 == 0 else "pipe",
                session=_hex(pool_rng, 32) if i % 3 == 0 else None,
            )
            for i in range(40)
        ]
        self.multi_span_traces: list[str] = []

    def traces(self) -> Iterator[list[dict[str, Any]]]:
        """Yield traces (lists of spans) until ``total`` spans were made."""
        rng = self.rng
        while self.made < self.total:
            size = min(rng.choices((1, 2, 3, 4), weights=(55, 25, 12, 8))[0], self.total - self.made)
            connection = rng.choice(self._connections)
            trace_id = _hex(rng, 32)
            root_id: str | None = None
            spans = []
            for _ in range(size):
                span = self._span(trace_id, root_id, connection)
                root_id = root_id or span["span_id"]
                spans.append(span)
            if size >= 3:
                self.multi_span_traces.append(trace_id)
            yield spans

    def _span(self, trace_id: str, parent: str | None, connection: _Connection) -> dict[str, Any]:
        rng = self.rng
        tool = rng.choices(self._tools, weights=self._weights)[0]
        start = self.start_ns + self.made * self.step_ns + rng.randrange(self.step_ns)
        duration = int(rng.lognormvariate(17.5, 1.2))  # median ~40 ms, a long tail into seconds
        error = rng.random() < tool.error_rate
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool.name,
            "jsonrpc.request.id": str(connection.next_request),
            "mcp-ledger.connection.id": connection.id,
            "mcp-ledger.tool.destructive": tool.destructive,
            "mcp-ledger.tool.group": tool.group,
            "mcp-ledger.tool.read_only": tool.read_only,
            "mcp.client.name": connection.client[0],
            "mcp.client.version": connection.client[1],
            "mcp.method.name": "tools/call",
            "mcp.protocol.version": PROTOCOL_VERSION,
            "network.transport": connection.transport,
        }
        connection.next_request += 1
        if connection.session is not None:
            attributes["mcp.session.id"] = connection.session
        message = None
        if error:
            error_type, message = rng.choice(ERROR_MESSAGES)
            attributes["error.type"] = error_type
            self.errors += 1
        upstream: dict[str, Any] = {}
        if tool.group == "github":
            upstream = {"github_request_id": f"{_hex(rng, 4).upper()}:{_hex(rng, 6).upper()}:{_hex(rng, 7).upper()}"}
        elif tool.group == "docker":
            upstream = {"container_id": _hex(rng, 64), "engine_version": "27.3.1"}
        self.made += 1
        return {
            "type": "span",
            "trace_id": trace_id,
            "span_id": _hex(rng, 16),
            "parent_span_id": parent,
            "name": f"tools/call {tool.name}",
            "kind": "SERVER",
            "start_ns": str(start),
            "end_ns": str(start + duration),
            "status": {"code": "ERROR" if error else "OK", "message": message},
            "attributes": attributes,
            "input": rng.choice(self._inputs[tool.name]),
            "output": rng.choice(self._outputs[tool.name]) if not error else _NO_OUTPUT,
            "upstream": upstream,
        }


_NO_OUTPUT = _digest(None)


def pool_of_spans(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Spans made in advance, so an append benchmark times the store and not the factory."""
    factory = SpanFactory(count, start_ns=time.time_ns() - LEDGER_DAYS * DAY_NS, seed=seed)
    return [span for trace in factory.traces() for span in trace]


# --- the ledger under test ---


@dataclass
class Ledger:
    directory: Path
    spans: int
    errors: int
    bytes: int
    segments: int
    chains: int
    start_ns: int
    end_ns: int
    write_seconds: float
    trace_id: str


def write_ledger(directory: Path, total: int) -> Ledger:
    """``total`` spans in ``CHAINS`` chains, one after the other (a server restarted weekly), fsync never."""
    now = time.time_ns()
    start_ns = now - LEDGER_DAYS * DAY_NS
    factory = SpanFactory(total, start_ns=start_ns)
    per_chain = -(-total // CHAINS)
    began = time.perf_counter()
    store = provenance.SpanStore(directory, fsync="never")
    chain_spans = 0
    for trace in factory.traces():
        if chain_spans >= per_chain:
            store.close()
            store = provenance.SpanStore(directory, fsync="never")
            chain_spans = 0
        for span in trace:
            store.append(span)
        chain_spans += len(trace)
    store.close()
    seconds = time.perf_counter() - began
    files = sorted(directory.glob("*.jsonl"))
    # A trace from the middle of the ledger, with several spans.
    traces = factory.multi_span_traces
    return Ledger(
        directory=directory,
        spans=factory.made,
        errors=factory.errors,
        bytes=sum(f.stat().st_size for f in files),
        segments=len(files),
        chains=len(list_chains(directory)),
        start_ns=start_ns,
        end_ns=start_ns + LEDGER_DAYS * DAY_NS,
        write_seconds=seconds,
        trace_id=traces[len(traces) // 2],
    )


# --- append throughput ---


@dataclass
class AppendResult:
    policy: str
    writers: int
    spans: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.spans / self.seconds


def bench_append(
    workdir: Path, policy: FsyncPolicy, writers: int, total: int, pool: list[dict[str, Any]]
) -> AppendResult:
    """``writers`` threads append ``total`` spans to one store; the clock stops after ``close()``."""
    directory = Path(tempfile.mkdtemp(prefix=f"append-{policy}-{writers}-", dir=workdir))
    store = provenance.SpanStore(directory, fsync=policy)
    store.append(dict(pool[0]))  # open the first segment outside the clock
    store.wait_durable(0)
    per_writer = total // writers
    barrier = threading.Barrier(writers + 1)
    durable = policy == "always"

    def writer(k: int) -> None:
        records = [dict(pool[(k * per_writer + i) % len(pool)]) for i in range(per_writer)]
        barrier.wait()
        for record in records:
            seq = store.append(record)
            if durable:
                store.wait_durable(seq)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    gc.collect()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    store.close()
    seconds = time.perf_counter() - began
    shutil.rmtree(directory)
    return AppendResult(policy, writers, per_writer * writers, seconds)


# --- the three questions, three ways ---


@dataclass(frozen=True)
class Questions:
    tool: str
    since_ns: int
    until_ns: int
    trace_id: str
    day_since_ns: int
    day_until_ns: int

    @property
    def span_filter(self) -> SpanFilter:
        return SpanFilter(tool=self.tool, status="error", since_ns=self.since_ns, until_ns=self.until_ns)


def questions_for(ledger: Ledger) -> Questions:
    return Questions(
        tool="github_pr_get",
        since_ns=ledger.end_ns - 10 * DAY_NS,
        until_ns=ledger.end_ns - 3 * DAY_NS,
        trace_id=ledger.trace_id,
        day_since_ns=ledger.start_ns + 15 * DAY_NS,
        day_until_ns=ledger.start_ns + 16 * DAY_NS - 1,
    )


@dataclass
class Answers:
    """What a method answered, reduced to what the three methods must agree on."""

    newest: list[str]
    trace: list[str]
    stats: dict[str, tuple[int, int]]


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.runs) * 1000


def _timed(fn: Callable[[], Any], runs: int) -> tuple[Timing, Any]:
    timing = Timing()
    result = None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        timing.runs.append(time.perf_counter() - began)
    return timing, result


def _flatten(roots: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for span in roots:
        yield span
        yield from _flatten(span["children"])


def indexed(directory: Path, q: Questions, runs: int) -> tuple[dict[str, Timing], Answers]:
    t1, page = _timed(lambda: query_spans(directory, q.span_filter, limit=20), runs)
    t2, roots = _timed(lambda: get_trace(directory, q.trace_id), runs)
    t3, stats = _timed(lambda: span_stats(directory, since_ns=q.day_since_ns, until_ns=q.day_until_ns), runs)
    answers = Answers(
        newest=[s["span_id"] for s in page.spans],
        trace=sorted(s["span_id"] for s in _flatten(roots)),
        stats={row["tool"]: (row["count"], row["errors"]) for row in stats["tools"]},
    )
    return {"newest": t1, "trace": t2, "stats": t3}, answers


def _percentile(values: list[float], pct: float) -> float:
    rank = max(1, -(-len(values) * pct // 100))
    return values[int(rank) - 1]


def scan_stats(spans: Iterator[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per tool: count, errors, p50/p95/p99 ms (nearest rank, as ``span_stats`` computes them)."""
    durations: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for span in spans:
        tool = span["attributes"].get("gen_ai.tool.name") or "?"
        durations.setdefault(tool, []).append((int(span["end_ns"]) - int(span["start_ns"])) / 1e6)
        errors[tool] = errors.get(tool, 0) + (span["status"]["code"] == "ERROR")
    out = {}
    for tool, values in durations.items():
        values.sort()
        out[tool] = {
            "count": len(values),
            "errors": errors[tool],
            "p50_ms": _percentile(values, 50),
            "p95_ms": _percentile(values, 95),
            "p99_ms": _percentile(values, 99),
        }
    return out


def scanned(directory: Path, q: Questions, runs: int) -> tuple[dict[str, Timing], Answers]:
    def newest() -> list[dict[str, Any]]:
        hits = [s for s in iter_spans(directory) if q.span_filter.matches(s)]
        hits.sort(key=lambda s: (int(s["start_ns"]), s["span_id"]), reverse=True)
        return hits[:20]

    trace_filter = SpanFilter(trace=q.trace_id)
    day_filter = SpanFilter(since_ns=q.day_since_ns, until_ns=q.day_until_ns)
    t1, page = _timed(newest, runs)
    t2, trace = _timed(lambda: [s for s in iter_spans(directory) if trace_filter.matches(s)], runs)
    t3, stats = _timed(lambda: scan_stats(s for s in iter_spans(directory) if day_filter.matches(s)), runs)
    answers = Answers(
        newest=[s["span_id"] for s in page],
        trace=sorted(s["span_id"] for s in trace),
        stats={tool: (int(row["count"]), int(row["errors"])) for tool, row in stats.items()},
    )
    return {"newest": t1, "trace": t2, "stats": t3}, answers


# Every top-level field is declared, so a row is the whole span and DuckDB skips schema inference.
_DUCKDB_COLUMNS = {
    "type": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "parent_span_id": "VARCHAR",
    "name": "VARCHAR",
    "kind": "VARCHAR",
    "start_ns": "VARCHAR",
    "end_ns": "VARCHAR",
    "status": "STRUCT(code VARCHAR, message VARCHAR)",
    "attributes": "JSON",
    "input": "JSON",
    "output": "JSON",
    "upstream": "JSON",
    "seq": "BIGINT",
    "prev": "VARCHAR",
    "v": "BIGINT",
}


def duckdb_version() -> str | None:
    try:
        return version("duckdb")
    except PackageNotFoundError:
        return None


def ducked(directory: Path, q: Questions, runs: int) -> tuple[dict[str, Timing], Answers]:
    import duckdb

    db = duckdb.connect()
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in _DUCKDB_COLUMNS.items()) + "}"
    source = f"read_json('{directory}/*.jsonl', format='newline_delimited', columns={columns})"
    tool_of = "json_extract_string(attributes, '$.\"gen_ai.tool.name\"')"
    newest_sql = (
        f"SELECT * FROM {source} WHERE type = 'span' AND {tool_of} = ? AND status.code = 'ERROR'"
        " AND CAST(start_ns AS HUGEINT) BETWEEN ? AND ?"
        " ORDER BY CAST(start_ns AS HUGEINT) DESC, span_id DESC LIMIT 20"
    )
    trace_sql = f"SELECT * FROM {source} WHERE type = 'span' AND trace_id = ? ORDER BY start_ns, span_id"
    stats_sql = (
        f"SELECT coalesce({tool_of}, '?') AS tool, count(*), count(*) FILTER (status.code = 'ERROR'),"
        " quantile_disc(d, [0.5, 0.95, 0.99])"
        f" FROM (SELECT *, (CAST(end_ns AS HUGEINT) - CAST(start_ns AS HUGEINT)) / 1e6 AS d FROM {source})"
        " WHERE type = 'span' AND CAST(start_ns AS HUGEINT) BETWEEN ? AND ? GROUP BY 1"
    )
    span_id_at = [desc[0] for desc in db.execute(trace_sql, [q.trace_id]).description].index("span_id")
    t1, page = _timed(lambda: db.execute(newest_sql, [q.tool, q.since_ns, q.until_ns]).fetchall(), runs)
    t2, trace = _timed(lambda: db.execute(trace_sql, [q.trace_id]).fetchall(), runs)
    t3, stats = _timed(lambda: db.execute(stats_sql, [q.day_since_ns, q.day_until_ns]).fetchall(), runs)
    db.close()
    answers = Answers(
        newest=[row[span_id_at] for row in page],
        trace=sorted(row[span_id_at] for row in trace),
        stats={row[0]: (int(row[1]), int(row[2])) for row in stats},
    )
    return {"newest": t1, "trace": t2, "stats": t3}, answers


@dataclass
class VerifyRun:
    workers: int
    spans: int
    ok: bool
    runs: list[float]

    @property
    def per_second(self) -> float:
        return self.spans / min(self.runs)


# In a fresh interpreter, as `mcp-ledger verify` runs: forked workers of a process holding a large
# heap (this one, after the scans) pay for copy-on-write pages, which is not what a user sees.
_VERIFY_CHILD = """
import json, sys, time
from pathlib import Path
from mcp_ledger import provenance
directory, workers, runs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ledger = provenance.Ledger(directory)
out = []
for _ in range(runs):
    began = time.perf_counter()
    report = ledger.verify(workers=workers)
    out.append([time.perf_counter() - began, report.spans, report.ok])
print(json.dumps(out))
"""


def bench_verify(directory: Path, workers: int, runs: int) -> VerifyRun:
    """``runs`` calls of ``verify(directory, workers=workers)`` in a fresh interpreter; the clock is inside it."""
    argv = [sys.executable, "-c", _VERIFY_CHILD, str(directory), str(workers), str(runs)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    result = VerifyRun(workers, 0, True, [])
    for seconds, spans, ok in json.loads(done.stdout):
        result.runs.append(seconds)
        result.spans, result.ok = spans, result.ok and ok
    return result


# --- cold start ---


def first_tools_list(argv: Sequence[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from process start to the ``tools/list`` answer (raw JSON-RPC over pipes), and the tool count."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO_ROOT
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:

        def send(message: dict[str, Any]) -> None:
            assert proc.stdin is not None
            proc.stdin.write(orjson.dumps(message) + b"\n")
            proc.stdin.flush()

        def answer(request_id: int) -> dict[str, Any]:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{' '.join(argv)} ended before answering request {request_id}")
                message: dict[str, Any] = orjson.loads(line)
                if message.get("id") == request_id:
                    if "result" not in message:
                        raise RuntimeError(f"{' '.join(argv)}: {message.get('error')}")
                    return message

        send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench-store", "version": "0"},
                },
            }
        )
        answer(1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = len(answer(2)["result"]["tools"])
        seconds = time.perf_counter() - began
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return seconds, tools


@dataclass
class ColdStart:
    ledger: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    ledger_tools: int = 0
    bare_tools: int = 0

    @property
    def ratio(self) -> float:
        return statistics.median(self.ledger) / statistics.median(self.bare)


def bench_cold_start(workdir: Path, pairs: int) -> ColdStart:
    """``pairs`` alternating launches of each (which goes first alternates), after one unmeasured warm-up each."""
    env = {**os.environ, "MCP_LEDGER_DIR": str(workdir / "cold-start-ledger"), "PYTHONDONTWRITEBYTECODE": ""}
    env.pop("PYTHONDONTWRITEBYTECODE")
    ledger_argv = [sys.executable, "-m", "mcp_ledger.server", "serve"]
    bare_argv = [sys.executable, "-m", "bench._bare_server"]
    result = ColdStart()
    first_tools_list(ledger_argv, env)
    first_tools_list(bare_argv, env)
    for pair in range(pairs):
        order = [(ledger_argv, result.ledger), (bare_argv, result.bare)]
        for argv, runs in order if pair % 2 == 0 else order[::-1]:
            seconds, tools = first_tools_list(argv, env)
            runs.append(seconds)
            if argv is ledger_argv:
                result.ledger_tools = tools
            else:
                result.bare_tools = tools
    return result


# --- the run ---


def duckdb_threads() -> int | None:
    if duckdb_version() is None:
        return None
    import duckdb

    with duckdb.connect() as db:
        row = db.execute("SELECT current_setting('threads')").fetchone()
    return int(row[0]) if row else None


def machine_info(workdir: Path) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    disk = subprocess.run(["df", "--output=source,fstype", str(workdir)], capture_output=True, text=True).stdout
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "workdir_device": " ".join(disk.split()[2:]) or None,
        "sqlite": sqlite3.sqlite_version,
        "mcp": version("mcp"),
        "orjson": version("orjson"),
        "duckdb": duckdb_version(),
        "duckdb_threads": duckdb_threads(),
        "loadavg_at_start": os.getloadavg(),  # other sessions share this machine: a busy one skews every row
    }


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _fmt_ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def run(args: argparse.Namespace) -> dict[str, Any]:
    total: int = args.spans
    workdir = Path(tempfile.mkdtemp(prefix="mcp-ledger-bench-store-", dir=args.tmpdir))
    results: dict[str, Any] = {"spans": total, "machine": machine_info(workdir)}
    rows: list[tuple[str, str, str, str]] = []
    try:
        # Append throughput first, on an idle page cache and disk.
        pool = pool_of_spans(min(20_000, args.append_spans))
        appends = []
        for policy, count in (
            ("never", args.append_spans),
            ("batch", args.append_spans),
            ("always", args.always_spans),
        ):
            for writers in (1, 16):
                result = bench_append(workdir, policy, writers, count, pool)  # type: ignore[arg-type]
                appends.append(result)
                print(f"append {policy} x{writers}: {_fmt_rate(result.per_second)}", file=sys.stderr)
        del pool
        results["append"] = [{**asdict(a), "per_second": round(a.per_second)} for a in appends]
        for a in appends:
            goal = APPEND_TARGETS.get(a.policy)
            rows.append(
                (
                    f"append, fsync {a.policy}, {a.writers} writer{'s' if a.writers > 1 else ''} ({a.spans:,} spans)",
                    _fmt_rate(a.per_second),
                    f"≥ {goal:,.0f}/s" if goal else "—",
                    _met(a.per_second >= goal) if goal else "",
                )
            )

        ledger_dir = workdir / "ledger"
        ledger = write_ledger(ledger_dir, total)
        print(f"ledger: {ledger.spans:,} spans, {ledger.bytes / 2**20:,.0f} MiB", file=sys.stderr)
        results["ledger"] = {
            **{k: v for k, v in asdict(ledger).items() if k != "directory"},
            "bytes_per_span": round(ledger.bytes / ledger.spans),
            "error_share": round(ledger.errors / ledger.spans, 4),
        }

        began = time.perf_counter()
        indexed_count = rebuild_index(ledger_dir)
        build_s = time.perf_counter() - began
        index_bytes = sum(p.stat().st_size for p in ledger_dir.glob("index.sqlite*"))
        print(f"index build: {build_s:.1f} s", file=sys.stderr)

        q = questions_for(ledger)
        methods: dict[str, tuple[dict[str, Timing], Answers]] = {}
        methods["index"] = indexed(ledger_dir, q, args.runs)
        print("indexed questions done", file=sys.stderr)
        methods["scan"] = scanned(ledger_dir, q, args.scan_runs)
        print("scan questions done", file=sys.stderr)
        if duckdb_version() is not None:
            methods["duckdb"] = ducked(ledger_dir, q, args.scan_runs)
            print("duckdb questions done", file=sys.stderr)
        else:
            print("DuckDB is not installed: `.venv/bin/pip install duckdb` for its column", file=sys.stderr)
        reference = methods["scan"][1]
        agree = {name: asdict(answers) == asdict(reference) for name, (_, answers) in methods.items()}

        verify_runs = [bench_verify(ledger_dir, workers, args.verify_runs) for workers in (1, 2)]
        for v in verify_runs:
            print(f"verify x{v.workers}: {v.per_second:,.0f}/s ok={v.ok}", file=sys.stderr)

        # Catch-up last, so every question above was asked of exactly ``total`` spans.
        store = provenance.SpanStore(ledger_dir, fsync="never")
        for trace in SpanFactory(CATCH_UP_SPANS, start_ns=ledger.end_ns, seed=11).traces():
            for span in trace:
                store.append(span)
        store.close()
        began = time.perf_counter()
        caught_up = open_index(ledger_dir).catch_up()
        catch_up_s = time.perf_counter() - began

        cold = bench_cold_start(workdir, args.cold_pairs)
        print(f"cold start ratio {cold.ratio:.2f}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results["index"] = {
        "build_seconds": build_s,
        "spans_indexed": indexed_count,
        "index_bytes": index_bytes,
        "catch_up_seconds": catch_up_s,
        "catch_up_spans": caught_up,
    }
    rows.append((f"index build (rebuild over {indexed_count:,} spans)", f"{build_s:.1f} s", "—", ""))
    rows.append((f"index catch-up ({caught_up:,} new spans from another writer)", _fmt_ms(catch_up_s * 1000), "—", ""))

    results["questions"] = {
        "tool": q.tool,
        "window_days": 7,
        "runs": {"index": args.runs, "scan": args.scan_runs, "duckdb": args.scan_runs},
        "answers_agree_with_scan": agree,
        "answers": {
            "newest": len(reference.newest),
            "trace": len(reference.trace),
            "stats_tools": len(reference.stats),
        },
        "methods": {
            name: {
                key: {"median_ms": t.median_ms, "min_ms": t.min_ms, "runs_ms": [r * 1000 for r in t.runs]}
                for key, t in timings.items()
            }
            for name, (timings, _) in methods.items()
        },
    }
    labels = {
        "newest": f"20 newest errors of {q.tool} in a 7-day window",
        "trace": f"one trace ({len(reference.trace)} spans)",
        "stats": f"stats over one day ({sum(c for c, _ in reference.stats.values()):,} spans)",
    }
    index_t = methods["index"][0]
    duck = methods.get("duckdb")
    for key, label in labels.items():
        idx = index_t[key].median_ms
        scan = methods["scan"][0][key].median_ms
        cells = [f"index {_fmt_ms(idx)}", f"scan {_fmt_ms(scan)} ({scan / idx:,.0f}x)"]
        if duck is not None:
            dk = duck[0][key].median_ms
            cells.append(f"DuckDB {_fmt_ms(dk)} ({dk / idx:,.0f}x)")
        else:
            cells.append("DuckDB not installed")
        if key == "newest":
            ok_ms = idx <= QUERY_TARGET_MS
            ok_x = duck is not None and duck[0][key].median_ms / idx >= QUERY_TARGET_SPEEDUP
            target = f"≤ {QUERY_TARGET_MS:.0f} ms, ≥ {QUERY_TARGET_SPEEDUP:.0f}x DuckDB"
            met = f"{_met(ok_ms)}; {_met(ok_x) if duck is not None else 'DuckDB missing'}"
        else:
            target, met = "—", ""
        rows.append((label, "; ".join(cells), target, met))

    results["verify"] = [{**asdict(v), "per_second": round(v.per_second)} for v in verify_runs]
    for v in verify_runs:
        how = "serial" if v.workers == 1 else f"{v.workers} processes"
        rows.append(
            (
                f"verify, {how} ({v.spans:,} spans, best of {len(v.runs)})",
                f"{_fmt_rate(v.per_second)} ({min(v.runs):.1f} s, {ledger.bytes / min(v.runs) / 2**20:,.0f} MiB/s)",
                f"≥ {VERIFY_TARGET:,.0f}/s",
                _met(v.per_second >= VERIFY_TARGET and v.ok),
            )
        )

    results["cold_start"] = {
        **asdict(cold),
        "ratio": cold.ratio,
        "transport": "raw JSON-RPC over pipes",
        "protocol_version": PROTOCOL_VERSION,
    }
    rows.append(
        (
            f"cold start to first tools/list ({cold.ledger_tools} tools vs bare {cold.bare_tools}, "
            f"median of {len(cold.ledger)})",
            f"{statistics.median(cold.ledger) * 1000:,.0f} ms vs {statistics.median(cold.bare) * 1000:,.0f} ms"
            f" = {cold.ratio:.2f}x",
            f"≤ {COLD_START_TARGET:.2f}x bare",
            _met(cold.ratio <= COLD_START_TARGET),
        )
    )
    results["table"] = rows
    return results


def render(results: dict[str, Any]) -> str:
    ledger = results["ledger"]
    m = results["machine"]
    lines = [
        f"Ledger: {ledger['spans']:,} spans in {ledger['chains']} chains / {ledger['segments']} segments, "
        f"{ledger['bytes'] / 2**20:,.0f} MiB ({ledger['bytes_per_span']} B/span, {ledger['error_share']:.1%} errors); "
        f"{m['cpus']} x {m['cpu']}, Python {m['python']}, SQLite {m['sqlite']}, DuckDB {m['duckdb'] or 'absent'}.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in results["table"]]
    agree = results["questions"]["answers_agree_with_scan"]
    lines += [
        "",
        "Answers equal to the full scan's: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in agree.items()),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the ledger (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 spans and fewer repetitions")
    parser.add_argument("--append-spans", type=int, default=200_000, help="spans per never/batch append run")
    parser.add_argument("--always-spans", type=int, default=20_000, help="spans per fsync-always append run")
    parser.add_argument("--runs", type=int, default=30, help="runs per indexed question (median)")
    parser.add_argument("--scan-runs", type=int, default=3, help="runs per scan and DuckDB question (median)")
    parser.add_argument("--verify-runs", type=int, default=2, help="runs per verify mode (best is kept)")
    parser.add_argument("--cold-pairs", type=int, default=7, help="alternating cold-start pairs")
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the temporary ledger goes")
    parser.add_argument("--no-save", action="store_true", help="print only; write nothing under bench/results")
    args = parser.parse_args(argv)
    if args.quick:
        args.spans = min(args.spans, 100_000)
        args.append_spans = min(args.append_spans, 50_000)
        args.always_spans = min(args.always_spans, 5_000)
        args.cold_pairs = min(args.cold_pairs, 3)
    began = time.perf_counter()
    results = run(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results["created"] = stamp
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["seconds"] = round(time.perf_counter() - began, 1)
    table = render(results)
    print(table)
    if not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=2) + "\n"
        (RESULTS_DIR / f"store-{stamp}.json").write_text(text)
        (RESULTS_DIR / "store-latest.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
