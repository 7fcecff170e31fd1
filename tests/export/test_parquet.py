"""`mcp-ledger export --format parquet`: DuckDB reads the day partitions with the documented schema and
gets the answers `mcp-ledger query` gives for the same filters."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from mcp_ledger.provenance._export import MANIFEST, PARQUET_COLUMNS, _arrow_schema
from tests.export.conftest import run

README = (Path(__file__).parents[2] / "README.md").read_text()
COLUMNS_TABLE = README.split("### Parquet columns", 1)[1].split("\n#", 1)[0]

FILTERS = [
    [],
    ["--tool", "github_pr_get"],
    ["--group", "docker"],
    ["--status", "error"],
    ["--status", "ok", "--group", "github"],
    ["--since", "2026-11-21T06:00:00Z", "--until", "2026-11-22T12:30:00Z"],
    ["--since", "2026-11-22", "--tool", "prov_query", "--status", "error"],
    ["--principal", "alice", "--session", "c-1"],
]


def query_all(capsys: pytest.CaptureFixture[str], ledger: Path, filters: list[str]) -> list[dict[str, Any]]:
    """Every span `mcp-ledger query --json` lists for ``filters``, page by page."""
    spans: list[dict[str, Any]] = []
    cursor: list[str] = []
    while True:
        code, out, err = run(
            capsys, "query", "--ledger-dir", str(ledger), "--limit", "200", "--json", *filters, *cursor
        )
        assert code == 0, err
        page = orjson.loads(out)
        spans += page["spans"]
        if not page["next_cursor"]:
            return spans
        cursor = ["--cursor", page["next_cursor"]]


def lake(out: Path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    db.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)")
    return db


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: " ".join(f) or "all")
def test_duckdb_reads_the_same_spans_as_query_for_the_same_filters(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], filters: list[str]
) -> None:
    out = tmp_path / "lake"
    code, stdout, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(out), *filters)
    assert code == 0, err
    assert re.match(r"exported \d+ of 240 spans", stdout)
    expected = query_all(capsys, ledger, filters)
    assert expected or filters, "the ledger holds spans"
    db = lake(out) if expected else None
    if db is None:
        assert not list(out.glob("**/*.parquet"))
        return
    rows = db.execute(
        "SELECT span_id, trace_id, parent_span_id, tool, tool_group, status, duration_ms, start_ns,"
        " strftime(start_time, '%Y-%m-%dT%H:%M:%S.%g') || 'Z', enduser_id, connection_id, day FROM spans"
    ).fetchall()
    by_id = {row[0]: row for row in rows}
    assert len(by_id) == len(rows) == len(expected)
    for span in expected:
        row = by_id[span["span_id"]]
        assert row[1:6] == (span["trace_id"], span["parent_span_id"], span["tool"], span["group"], span["status"])
        assert round(row[6], 3) == span["duration_ms"]
        assert str(row[7]) == span["start_ns"] and row[8] == span["start"]
        assert (row[9], row[10]) == (span.get("principal"), span["connection"])
        assert row[11].isoformat() == span["start"][:10]  # the partition is the start's UTC day
    counted = Counter((span["tool"], span["status"]) for span in expected)
    grouped = db.execute("SELECT tool, status, count(*) FROM spans GROUP BY ALL").fetchall()
    assert {(tool, status): n for tool, status, n in grouped} == counted


def test_the_parquet_schema_is_the_documented_one(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lake"
    assert run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(out))[0] == 0
    described = lake(out).execute("DESCRIBE spans").fetchall()
    assert [(name, kind) for name, kind, *_ in described] == [
        *((c.name, c.duckdb) for c in PARQUET_COLUMNS),
        ("day", "DATE"),
    ]
    files = sorted(out.glob("day=*/part-*.parquet"))
    assert files
    for schema in map(pq.read_schema, files):
        assert schema.equals(_arrow_schema()) and schema.metadata[b"mcp-ledger.export.schema"] == b"1"
    documented = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| `([^`]+)` \|", COLUMNS_TABLE, flags=re.M)
    assert documented == [(c.name, c.arrow, c.duckdb) for c in PARQUET_COLUMNS]


def test_every_field_of_a_span_is_in_its_row(ledger: Path, tmp_path: Path) -> None:
    from mcp_ledger import provenance

    out = tmp_path / "lake"
    provenance.Ledger(ledger).export(out)
    records = {span["span_id"]: span for span in provenance.Ledger(ledger).scan()}
    table = pq.read_table(out, partitioning="hive").to_pylist()
    assert len(table) == len(records) == 240
    for row in table:
        span = records[row["span_id"]]
        attrs = dict(span["attributes"])
        assert row["seq"] == span["seq"] and row["prev"] == span["prev"] and row["v"] == span["v"]
        assert (row["start_ns"], row["end_ns"]) == (int(span["start_ns"]), int(span["end_ns"]))
        assert row["start_time"].timestamp() == int(span["start_ns"]) // 1000 / 1e6
        assert row["status_message"] == span["status"]["message"]
        assert row["input_redactions"] == span["input"]["redactions"]
        assert row["input_preview"] == span["input"]["preview"] and row["output_sha256"] == span["output"]["sha256"]
        assert orjson.loads(row["upstream"]) == span["upstream"] if span["upstream"] else row["upstream"] is None
        # Well-known attributes have their columns; the rest is one JSON object; nothing is lost or coerced.
        assert row["untrusted_content"] == attrs.get("mcp-ledger.untrusted_content")
        assert row["error_type"] == attrs.get("error.type") and row["request_id"] == attrs["jsonrpc.request.id"]
        other = orjson.loads(row["other_attributes"]) if row["other_attributes"] else {}
        if attrs["mcp-ledger.tool.read_only"] == "yes":
            assert row["read_only"] is None and other["mcp-ledger.tool.read_only"] == "yes"
        else:
            assert row["read_only"] is attrs["mcp-ledger.tool.read_only"]
        assert {k: v for k, v in attrs.items() if k in other} == other
        assert ("mcp-ledger.custom.note" in other) == ("mcp-ledger.custom.note" in attrs)


def test_batches_are_row_groups_and_each_day_a_partition(ledger: Path, tmp_path: Path) -> None:
    from mcp_ledger.provenance._export import export_spans
    from mcp_ledger.provenance._query import SpanFilter

    out = tmp_path / "lake"
    report = export_spans(ledger, out, SpanFilter(), fmt="parquet", batch_rows=16)
    days = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert days == ["day=2026-11-20", "day=2026-11-21", "day=2026-11-22", "day=2026-11-23"]
    groups = [
        pq.ParquetFile(f).metadata.row_group(i).num_rows
        for f in out.glob("day=*/*.parquet")
        for i in range(pq.ParquetFile(f).metadata.num_row_groups)
    ]
    assert max(groups) == 16 and sum(groups) == report.spans == 240
    manifest = orjson.loads((out / MANIFEST).read_bytes())
    assert manifest["spans"] == 240 and manifest["schema_version"] == 1
    assert sorted(f["path"] for f in manifest["files"]) == sorted(
        p.relative_to(out).as_posix() for p in out.glob("day=*/*.parquet")
    )
    assert sum(f["spans"] for f in manifest["files"]) == 240
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file is left


async def test_every_attribute_a_real_session_records_has_its_own_column(
    connect: Any, ledger_dir: Path, tmp_path: Path
) -> None:
    from mcp_ledger import provenance

    async with connect() as (client, _):
        await client.call_tool("fake_echo", {"text": "hi"})
        await client.call_tool("fake_fail", {"text": "no"})
    out = tmp_path / "lake"
    provenance.Ledger(ledger_dir).export(out)
    rows = pq.read_table(out).to_pylist()
    assert [row["tool"] for row in rows] == ["fake_echo", "fake_fail"]
    assert all(row["other_attributes"] is None for row in rows)
    assert rows[0]["upstream"] == '{"object":"echo","request_id":["req-1","req-2"]}'
    assert rows[1]["error_type"] == "tool_error" and rows[1]["status"] == "ERROR"
    assert all(row["client_name"] == "mcp" and row["connection_id"] and row["read_only"] is True for row in rows)


def test_a_damaged_span_line_is_skipped_and_counted_as_the_index_skips_it(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segment = sorted(ledger.glob("*.jsonl"))[-1]
    with segment.open("ab") as f:
        f.write(b'{"type":"span","span_id":"00000000000000aa","start_ns":"soon"}\n')
    out = tmp_path / "lake"
    code, stdout, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(out), "--json")
    assert code == 0, err
    manifest = orjson.loads(stdout)
    assert (manifest["spans"], manifest["scanned"], manifest["skipped"]) == (240, 240, 1)
    assert manifest == orjson.loads((out / MANIFEST).read_bytes())
    assert len(query_all(capsys, ledger, [])) == 240
