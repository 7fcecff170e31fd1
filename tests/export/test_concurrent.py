"""Exporting a ledger while a server process writes to it: every row is a whole span as written, and each
chain is exported up to some line with nothing missing before it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from mcp_ledger.provenance._export import export_spans
from mcp_ledger.provenance._query import SpanFilter

REPO = Path(__file__).parents[2]

WRITER = """
import random, sys, time
from pathlib import Path
from mcp_ledger import provenance
from tests.export.conftest import varied_span

directory, stop = Path(sys.argv[1]), Path(sys.argv[2])
rng = random.Random(5)
store = provenance.SpanStore(directory, fsync="never", segment_bytes=48 * 1024)  # rotates every ~30 spans
i = 0
while not stop.exists():
    store.append(varied_span(i % 240, rng, None))
    i += 1
    if i == 300:
        print("ready", flush=True)
    if i % 10 == 0:
        time.sleep(0.002)  # a busy server: a few thousand calls a second
store.close()
print(i, flush=True)
"""


def test_export_during_writes_holds_only_whole_spans_and_a_prefix_of_each_chain(tmp_path: Path) -> None:
    ledger, stop = tmp_path / "ledger", tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(ledger), str(stop)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        exports = []
        for n in range(4):
            out = tmp_path / f"lake-{n}"
            # An odd read chunk smaller than a line: lines are cut across reads everywhere.
            report = export_spans(ledger, out, SpanFilter(), fmt="parquet", chunk=997, batch_rows=64)
            exports.append((out, report.spans))
            time.sleep(0.05)
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=60)[0].strip())
    assert writer.returncode == 0
    assert exports[0][1] >= 300 and exports[-1][1] > exports[0][1] and written > exports[-1][1]
    segments = {p.name: p.read_bytes() for p in ledger.glob("*.jsonl")}
    for out, spans in exports:
        rows = pq.read_table(out).to_pylist()
        assert len(rows) == spans
        by_chain: dict[str, set[int]] = defaultdict(set)
        for row in rows:
            data = segments[row["segment"]]
            line = data[row["line_offset"] : data.index(b"\n", row["line_offset"])]
            assert "sha256:" + hashlib.sha256(line).hexdigest() == row["line_sha256"]
            record = orjson.loads(line)
            assert (record["span_id"], record["seq"], record["prev"]) == (row["span_id"], row["seq"], row["prev"])
            by_chain[row["chain"]].add(row["seq"])
        for chain, seqs in by_chain.items():
            in_ledger = {
                orjson.loads(line)["seq"]
                for name, data in segments.items()
                if name.startswith(chain + ".")
                for line in data.splitlines()
                if b'"type":"span"' in line
            }
            assert seqs == {seq for seq in in_ledger if seq <= max(seqs)}
