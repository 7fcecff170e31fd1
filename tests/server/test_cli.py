"""The CLI a person uses on the ledger: query, stats, tail, index, verify; and the client entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_ledger import provenance
from mcp_ledger.server.cli import main
from tests.provenance.test_store import synthetic_span


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    store = provenance.SpanStore(tmp_path, fsync="never")
    for i in range(30):
        store.append(
            synthetic_span(
                i, tool="docker_container_logs" if i % 3 else "github_run_get", status="ERROR" if i % 5 == 0 else "OK"
            )
        )
    store.close()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_table_json_and_paging(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "query", "--ledger-dir", str(ledger), "--status", "error", "--limit", "4")
    assert code == 0 and out.splitlines()[0].startswith("START (UTC)") and "more: --cursor" in out
    code, out, _ = run(capsys, "query", "--ledger-dir", str(ledger), "--status", "error", "--limit", "4", "--json")
    page = orjson.loads(out)
    assert len(page["spans"]) == 4 and all(s["status"] == "ERROR" for s in page["spans"])
    code, out, _ = run(
        capsys,
        "query",
        "--ledger-dir",
        str(ledger),
        "--status",
        "error",
        "--limit",
        "4",
        "--json",
        "--cursor",
        page["next_cursor"],
    )
    assert len(orjson.loads(out)["spans"]) == 2 and orjson.loads(out)["next_cursor"] is None


def test_bad_query_arguments_are_exit_2_with_a_message(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "query", "--ledger-dir", str(ledger), "--since", "whenever")
    assert code == 2 and out == "" and "since: expected an ISO-8601 time" in err


def test_stats_tail_and_index(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stats", "--ledger-dir", str(ledger), "--json")
    stats: dict[str, Any] = orjson.loads(out)
    assert (
        code == 0
        and stats["count"] == 30
        and {t["tool"] for t in stats["tools"]}
        == {
            "docker_container_logs",
            "github_run_get",
        }
    )
    code, out, _ = run(capsys, "tail", "--ledger-dir", str(ledger), "-n", "3", "--json")
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = run(capsys, "index", "--ledger-dir", str(ledger), "--rebuild")
    assert code == 0 and "rebuilt the index: 30 spans" in out


def test_mcp_json_is_a_ready_to_paste_stdio_entry() -> None:
    entry = json.loads((Path(__file__).parents[2] / "mcp.json").read_text())["mcpServers"]["mcp-ledger"]
    assert entry["command"] == "mcp-ledger" and entry["args"] == ["serve"]
    assert all(key.startswith("MCP_LEDGER_") for key in entry["env"])


def test_query_table_names_what_each_call_touched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    span = synthetic_span(0, tool="k8s_workload_restart")
    span["upstream"] = {
        "k8s.cluster.name": "prod",
        "k8s.namespace.name": "shop",
        "k8s.object.uid": "0b7f3c1e-aaaa-bbbb-cccc-1234567890ab",
        "k8s.object.resource_version": ["41", "57"],
        "k8s.object.uids": [],
        "k8s.audit_id": "line\nbreak",
    }
    store = provenance.SpanStore(tmp_path, fsync="never")
    store.append(span)
    store.close()
    code, out, _ = run(capsys, "query", "--ledger-dir", str(tmp_path), "--group", "k8s")
    header, row = out.splitlines()[:3:2]
    assert code == 0 and header.split()[-1] == "OBJECTS"
    for shown in ("cluster.name=prod", "namespace.name=shop", "object.uid=0b7f3c1e-aaaa-bbbb-cccc-1234567890ab"):
        assert shown in row
    assert "object.resource_version=41(+1)" in row and "uids=" not in row and "audit_id=line break" in row
