"""`mcp-ledger serve --transport http`: streamable HTTP, stateful and stateless, recorded like stdio."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import provenance

HttpServer = tuple[str, Path, bool, "subprocess.Popen[bytes]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=[False, True], ids=["stateful", "stateless"])
def http_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpServer]:
    port = free_port()
    args = [sys.executable, "-m", "server", "serve", "--transport", "http", "--port", str(port)]
    if request.param:
        args.append("--stateless")
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        args, env={**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger")}, stdout=subprocess.PIPE, stderr=log
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp", tmp_path / "ledger", request.param, proc
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_calls_are_recorded_with_tcp_transport(http_server: HttpServer, mode: str) -> None:
    url, ledger, stateless, proc = http_server
    async with Client(streamable_http_client(url), mode=mode) as client:
        ok = await client.call_tool("prov_stats", {})
        bad = await client.call_tool("prov_span", {"span_id": "nothex"})
    assert not ok.is_error and bad.is_error
    spans = list(provenance.Ledger(ledger).scan())
    assert len(spans) == 2
    assert {s["attributes"]["network.transport"] for s in spans} == {"tcp"}
    if mode == "legacy" and not stateless:
        (session,) = {s["attributes"].get("mcp.session.id") for s in spans}
        assert session
    proc.terminate()
    proc.wait(timeout=20)
    assert proc.stdout is not None and proc.stdout.read() == b""  # nothing but the protocol, and HTTP has none
    assert provenance.Ledger(ledger).verify().ok
