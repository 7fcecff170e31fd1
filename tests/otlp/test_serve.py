"""`mcp-ledger serve --otlp-endpoint URL` as a stdio subprocess, as an MCP client launches it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_ledger import provenance
from mcp_ledger.provenance import otlp
from mcp_ledger.server import cli
from tests.conftest import GH
from tests.harness import ledger_text, result_text, spans
from tests.otlp.conftest import HEADER_CANARY, Receiver
from tests.otlp.test_live import assert_as_in_ledger
from tests.server.test_http import free_port
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


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-workers"])
def http_server(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> Iterator[tuple[str, subprocess.Popen[bytes], int]]:
    """`serve --transport http [--workers 2]` whose export is named by MCP_LEDGER_OTLP_ENDPOINT, the flag's twin;
    spans leave only when a batch is full or the server stops."""
    port = free_port()
    env = {
        **os.environ,
        "MCP_LEDGER_DIR": str(tmp_path / "ledger"),
        "MCP_LEDGER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
    }
    args = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http", "--port", str(port)]
    args += ["--workers", request.param, "--stateless"] if request.param != "1" else []
    with (tmp_path / "stderr.txt").open("w") as log:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/mcp", proc, int(request.param)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def test_an_http_server_exports_every_call_named_by_the_environment_twin(
    tmp_path: Path, receiver: Receiver, http_server: tuple[str, subprocess.Popen[bytes], int]
) -> None:
    url, proc, workers = http_server
    async with Client(streamable_http_client(url)) as client:
        for _ in range(6):
            assert not (await client.call_tool("prov_stats", {})).is_error
    proc.terminate()  # a graceful shutdown: the server sends what is queued before it exits
    await anyio.to_thread.run_sync(proc.wait, 20)
    recorded = spans(tmp_path / "ledger")
    assert len(recorded) == 6
    assert_as_in_ledger(receiver.by_span_id(), recorded)
    assert {s.attributes["network.transport"] for s in receiver.tool_calls()} == {"tcp"}
    # Each worker exported on its own, and said so when it stopped.
    status = otlp.export_status(tmp_path / "ledger")
    assert status is not None
    # Every span is accounted for. (Stopping waits at most 3 s for the last batch: on a starved machine one
    # the receiver took may still count as failed, its answer cut off.)
    assert status["exported"] + status["failed"] + status["dropped"] >= 6 and status["pending"] == 0, status
    assert len(status["servers"]) == workers
    assert all(server["closed"] for server in status["servers"])
