"""mcp-ledger export --format otlp: a collector backfilled from the ledger's history, with the ledger's ids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mcp_ledger import provenance
from mcp_ledger.server import cli
from tests.conftest import GH, make_app
from tests.harness import connected, spans
from tests.otlp.conftest import HEADER_CANARY, Receiver
from tests.otlp.test_live import assert_as_in_ledger


async def record_calls(ledger_dir: Path) -> None:
    async with connected(make_app(ledger_dir)) as client:
        for i in range(5):
            await client.call_tool("fake_echo", {"text": f"call {i}", "extra": {"token": GH}})
        await client.call_tool("fake_fail", {"text": "no"})
        await client.call_tool("fake_crash", {"text": "boom"})
        await client.call_tool("prov_stats", {})


def export(ledger_dir: Path, *args: str) -> int:
    return cli.main(["export", "--format", "otlp", "--ledger-dir", str(ledger_dir), *args])


async def test_the_backfill_sends_the_filtered_spans_with_the_ledger_s_ids_and_attributes(
    ledger_dir: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    await record_calls(ledger_dir)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={HEADER_CANARY}")
    assert export(ledger_dir, "--endpoint", receiver.url, "--tool", "fake_echo", "--batch-size", "2") == 0
    echoes = spans(ledger_dir, "fake_echo")
    assert len(echoes) == 5 and receiver.handled == 3  # batches of 2, 2 and 1
    received = receiver.by_span_id()
    assert set(received) == {s["span_id"] for s in echoes}
    assert_as_in_ledger(received, echoes)
    for record in echoes:
        assert received[record["span_id"]].end_ns == int(record["end_ns"])
    assert {h["x-api-key"] for h in receiver.headers} == {HEADER_CANARY}
    assert GH.encode() not in b"".join(receiver.bodies)
    out, err = capfd.readouterr()
    assert "exported 5 spans in 3 batches to " + receiver.url + "/v1/traces" in out
    assert HEADER_CANARY not in out + err


async def test_status_group_and_time_filters_choose_what_is_sent(ledger_dir: Path, receiver: Receiver) -> None:
    await record_calls(ledger_dir)
    assert export(ledger_dir, "--endpoint", receiver.url, "--status", "error", "--group", "fake") == 0
    failed = [s for s in spans(ledger_dir) if s["status"]["code"] == "ERROR"]
    assert len(failed) == 2
    assert set(receiver.by_span_id()) == {s["span_id"] for s in failed}
    assert_as_in_ledger(receiver.by_span_id(), failed)
    before = receiver.handled
    assert export(ledger_dir, "--endpoint", receiver.url, "--until", "2000-01-01") == 0
    assert receiver.handled == before  # nothing matched, nothing sent
    assert export(ledger_dir, "--endpoint", receiver.url, "--since", "1h") == 0
    assert len(receiver.by_span_id()) == len(spans(ledger_dir)) == 8


async def test_a_receiver_that_is_down_fails_the_export_saying_so(
    ledger_dir: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    await record_calls(ledger_dir)
    assert export(ledger_dir, "--endpoint", f"http://127.0.0.1:{closed_port}") == 1
    out, err = capsys.readouterr()
    assert "exported 0 spans" in out
    assert "did not take batch 1" in err


def test_what_the_export_needs_is_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(tmp_path / "none", "--endpoint", "http://127.0.0.1:4318") == 2
    assert "no ledger directory" in capsys.readouterr().err
    tmp_path.joinpath("ledger").mkdir()
    assert export(tmp_path / "ledger") == 2
    assert "--format otlp needs --endpoint" in capsys.readouterr().err
    assert export(tmp_path / "ledger", "--endpoint", "ftp://collector") == 2
    assert "--endpoint: expected an http:// or https:// URL" in capsys.readouterr().err
    assert export(tmp_path / "ledger", "--endpoint", "http://c:4318", "--since", "whenever") == 2
    assert "since" in capsys.readouterr().err
    assert export(tmp_path / "ledger", "--endpoint", "http://c:4318", "--out", str(tmp_path)) == 2
    assert "--out is for file formats" in capsys.readouterr().err


async def test_json_reports_the_run_and_a_missing_extra_says_what_to_install(
    ledger_dir: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await record_calls(ledger_dir)
    [one] = spans(ledger_dir, "fake_fail")
    assert export(ledger_dir, "--endpoint", receiver.url, "--trace", one["trace_id"], "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["spans"], report["batches"], report["ok"]) == (1, 1, True)
    assert report["endpoint"] == f"{receiver.url}/v1/traces"
    assert set(receiver.by_span_id()) == {one["span_id"]}
    monkeypatch.setitem(sys.modules, "mcp_ledger.provenance._otlp", None)
    monkeypatch.delattr(provenance, "_otlp", raising=False)
    assert export(ledger_dir, "--endpoint", receiver.url) == 2
    assert "pip install 'mcp-ledger[otlp]'" in capsys.readouterr().err
