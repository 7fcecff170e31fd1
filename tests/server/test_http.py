"""`mcp-ledger serve --transport http`: streamable HTTP, stateful and stateless, recorded like stdio."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_ledger import provenance
from tests.conftest import QUERY_TOKEN

HttpServer = tuple[str, Path, bool, "subprocess.Popen[bytes]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=[False, True], ids=["stateful", "stateless"])
def http_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpServer]:
    port = free_port()
    args = [sys.executable, "-m", "mcp_ledger.server", "serve", "--transport", "http", "--port", str(port)]
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


HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
CALL = '"method":"tools/call","params":{"name":"prov_stats","arguments":{}}'
DEEP = "[" * 300 + "]" * 300

# (body posted, expected error code, the id in the answer, the jsonrpc.request.id its span records or NO_SPAN)
NO_SPAN = "no span"
MALFORMED_BODIES: list[tuple[str, int, Any, str | None]] = [
    ("this is not json", -32700, None, NO_SPAN),
    ('{"jsonrpc":"1.0","id":31,' + CALL + "}", -32600, 31, "31"),
    ('{"jsonrpc":"2.0","id":32,"method":"tools/call","params":["prov_stats"]}', -32602, 32, "32"),
    ('[{"jsonrpc":"2.0","id":33,' + CALL + "}]", -32600, [33], "33"),
    ('{"jsonrpc":"2.0","id":1.5,' + CALL + "}", -32600, None, None),
    ('{"jsonrpc":"2.0","id":35,"method":"tools/call","params":{"name":"prov_stats","arguments":{"a":' + DEEP + "}}}",
     -32602, 35, "35"),
]  # fmt: skip


async def test_malformed_posts_get_one_answer_and_a_span_each_and_the_server_keeps_serving(
    http_server: HttpServer,
) -> None:
    url, ledger, _, _ = http_server
    async with httpx.AsyncClient(timeout=20) as http:
        for body, code, request_id, _ in MALFORMED_BODIES:
            response = await http.post(url, content=body.encode(), headers=HEADERS)
            assert response.status_code == 400
            answer = response.json()
            if isinstance(request_id, list):
                assert [a["id"] for a in answer] == request_id and {a["error"]["code"] for a in answer} == {code}
            else:
                assert answer["id"] == request_id and answer["error"]["code"] == code
        # A string cut inside an emoji (no client library sends one) reaches the tool with U+FFFD instead.
        cut = await _legacy_call(http, url, '{"name":"prov_query","arguments":{"tool":"cut \\ud83d"}}')
        assert cut["id"] == 9 and cut["result"]["isError"] is False
    async with Client(streamable_http_client(url)) as client:
        ok = await client.call_tool("prov_stats", {})
    assert ok.is_error is False
    spans = list(provenance.Ledger(ledger).scan())
    refused = [s for s in spans if s["attributes"].get("error.type") in ("-32600", "-32602")]
    expected = [(span_id, code) for _, code, _, span_id in MALFORMED_BODIES if span_id != NO_SPAN]
    assert [
        (s["attributes"].get("jsonrpc.request.id"), int(s["attributes"]["error.type"])) for s in refused
    ] == expected
    assert len(spans) == len(expected) + 2
    assert "cut \ufffd" in spans[-2]["input"]["preview"]
    assert provenance.Ledger(ledger).verify().ok


async def _legacy_call(http: httpx.AsyncClient, url: str, params: str) -> Any:
    """initialize, initialized, then one raw tools/call (id 9) on that session; its answer."""
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    response = await http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, headers=HEADERS
    )
    headers = {**HEADERS, "mcp-protocol-version": "2025-11-25"}
    if "mcp-session-id" in response.headers:
        headers["mcp-session-id"] = response.headers["mcp-session-id"]
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    body = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":' + params + "}"
    response = await http.post(url, content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return json.loads(data[-1] if data else response.text)


def _serve(args: list[str], ledger: Path, log: IO[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env={**os.environ, "MCP_LEDGER_DIR": str(ledger)}, stdout=subprocess.PIPE, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc


async def test_the_access_log_never_prints_a_credential_in_the_url(tmp_path: Path) -> None:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "mcp_ledger.server",
        "serve",
        "--transport",
        "http",
        "--port",
        str(port),
        "--log-level",
        "INFO",
    ]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as log:
        proc = _serve(args, tmp_path / "ledger", log, port)
        try:
            url = f"http://127.0.0.1:{port}/mcp?access_token={QUERY_TOKEN}"
            async with Client(streamable_http_client(url), mode="legacy") as client:
                assert not (await client.call_tool("prov_stats", {})).is_error
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    printed = stderr.read_text()
    assert "POST /mcp?access_token=[REDACTED:key-value]" in printed  # the access log is on, and redacted
    assert QUERY_TOKEN not in printed
