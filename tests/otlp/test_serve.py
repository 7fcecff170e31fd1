"""`mcp-ledger serve --otlp-endpoint URL` as a stdio subprocess, as an MCP client launches it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_ledger import provenance
from mcp_ledger.server import cli
from tests.conftest import GH
from tests.harness import ledger_text, result_text, spans
from tests.otlp.conftest import HEADER_CANARY, Receiver
from tests.otlp.test_live import assert_as_in_ledger
from tests.server.test_stdio import server_params, stdio_session


async def test_a_stdio_server_sends_every_call_and_stats_shows_the_counts(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger"
    errlog = tmp_path / "stderr.txt"
    params = server_params(
        ledger,
        "--otlp-endpoint",
        receiver.url,
        "--toolsets",
        "prov",
        "--log-level",
        "DEBUG",
        env={"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{HEADER_CANARY}", "OTEL_SERVICE_NAME": "ci-agent"},
    )
    with errlog.open("w") as err:
        async with stdio_session(params, err) as client:
            results = [await client.call_tool("prov_stats", {}) for _ in range(3)]
            results.append(await client.call_tool("prov_query", {"tool": GH}))
            results.append(await client.call_tool("prov_span", {"span_id": "0" * 16}))
    recorded = spans(ledger)
    assert len(recorded) == 5
    received = receiver.by_span_id()
    assert {s.span_id for s in receiver.tool_calls()} == {r["span_id"] for r in recorded}
    assert_as_in_ledger(received, recorded)
    assert {s.resource["service.name"] for s in receiver.tool_calls()} == {"ci-agent"}
    assert {h["authorization"] for h in receiver.headers} == {f"Bearer {HEADER_CANARY}"}
    stderr = errlog.read_text()
    assert "DEBUG" in stderr
    for where, text in {
        "stderr": stderr,
        "ledger": ledger_text(ledger),
        "results": "".join(result_text(r) + repr(r.structured_content) for r in results),
    }.items():
        assert HEADER_CANARY not in text, f"the exporter's header reached the {where}"
    assert GH.encode() not in b"".join(receiver.bodies)
    assert provenance.Ledger(ledger).verify().ok  # the status files beside the segments are no part of a chain

    assert cli.main(["stats", "--ledger-dir", str(ledger), "--json"]) == 0
    export = json.loads(capsys.readouterr().out)["otlp_export"]
    assert (export["exported"], export["dropped"], export["failed"], export["pending"]) == (
        len(receiver.spans),
        0,
        0,
        0,
    )
    [server] = export["servers"]
    assert server["closed"] is True and server["endpoint"] == f"{receiver.url}/v1/traces"
    assert cli.main(["stats", "--ledger-dir", str(ledger)]) == 0
    table = capsys.readouterr().out
    assert "OTLP export, per server since it started (0 spans not exported)" in table
    assert f"{receiver.url}/v1/traces  stopped" in table
    # The live server's prov_stats saw its own export as it ran.
    assert results[2].structured_content["otlp_export"]["servers"][0]["closed"] is False
