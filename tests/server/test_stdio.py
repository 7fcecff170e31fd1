"""The real thing: `mcp-ledger serve` as a stdio subprocess, as an MCP client launches it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import orjson
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance
from mcp_ledger.provenance._segments import list_chains
from tests.conftest import ALL_SECRETS, GH, JWT, PASSWORD
from tests.harness import result_text


def server_params(
    ledger_dir: Path, *args: str, prefix: Sequence[str] = (), env: dict[str, str] | None = None
) -> StdioServerParameters:
    command = [*prefix, sys.executable, "-m", "mcp_ledger.server", "serve", *args]
    # Clients pass only a minimal environment: give the ledger directory explicitly.
    return StdioServerParameters(
        command=command[0],
        args=command[1:],
        env={"MCP_LEDGER_DIR": str(ledger_dir), "PATH": os.environ.get("PATH", ""), **(env or {})},
    )


@asynccontextmanager
async def stdio_session(params: StdioServerParameters, errlog: TextIO | None = None) -> AsyncIterator[Client]:
    transport = stdio_client(params, errlog=errlog) if errlog is not None else stdio_client(params)
    async with Client(transport) as client:
        yield client


async def test_a_stdio_session_records_every_call_with_pipe_transport_and_one_connection(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    errlog = tmp_path / "stderr.txt"
    with errlog.open("w") as err:
        async with stdio_session(server_params(ledger), err) as client:
            listed = await client.list_tools()
            ok = await client.call_tool("prov_stats", {})
            bad = await client.call_tool("prov_query", {"since": "whenever", "tool": GH})
            unknown = await client.call_tool(f"tool_{GH}", {"password": PASSWORD, "jwt": JWT})
    assert {t.name for t in listed.tools} >= {"prov_query", "prov_span", "prov_trace", "prov_stats", "prov_verify"}
    assert not ok.is_error and bad.is_error and unknown.is_error
    spans = list(provenance.Ledger(ledger).scan())
    assert len(spans) == 3
    assert {s["attributes"]["network.transport"] for s in spans} == {"pipe"}
    assert len({s["attributes"]["mcp-ledger.connection.id"] for s in spans}) == 1
    assert ok.meta is not None
    assert ok.meta[provenance.SPAN_ID_META_KEY] in {s["span_id"] for s in spans}
    blobs = {
        "ledger": b"".join(p.read_bytes() for p in ledger.iterdir()).decode(),
        "stderr": errlog.read_text(),
        "errors": result_text(bad) + result_text(unknown),
    }
    for where, blob in blobs.items():
        for secret in ALL_SECRETS:
            assert secret not in blob, f"{where} leaks a secret"
    assert provenance.Ledger(ledger).verify().ok


async def test_two_server_processes_write_one_directory_without_interleaving(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"

    async def session(calls: int) -> None:
        async with stdio_session(server_params(ledger, "--segment-mb", "0.004")) as client:
            for _ in range(calls):
                await client.call_tool("prov_stats", {})

    async with anyio.create_task_group() as tg:
        tg.start_soon(session, 25)
        tg.start_soon(session, 25)
    report = provenance.Ledger(ledger).verify()
    assert report.ok and len(report.chains) == 2 and report.spans == 50
    # Interleaved writes would break a chain's seq/prev links; also check each file names its own chain.
    for chain, segments in list_chains(ledger).items():
        for segment in segments:
            header = orjson.loads(segment.path.read_bytes().splitlines()[0])
            assert header["chain"] == chain and header["segment"] == segment.index
    assert all(len(segments) > 1 for segments in list_chains(ledger).values())  # rotation happened


def _writer_pid(ledger: Path) -> int:
    for path in ledger.glob("*.jsonl"):
        header = orjson.loads(path.read_bytes().splitlines()[0])
        return int(header["writer"]["pid"])
    raise AssertionError("no segment yet")


async def test_a_failed_write_refuses_calls_until_the_ledger_is_writable_again(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    # RLIMIT_FSIZE makes write() fail with EFBIG once the segment reaches 6000 bytes (root ignores permissions).
    params = server_params(ledger, prefix=["prlimit", "--fsize=6000:unlimited", "--"])
    async with stdio_session(params) as client:
        results = []
        for _ in range(12):
            results.append(await client.call_tool("prov_stats", {}))
            if results[-1].is_error:
                break
        assert results[-1].is_error
        assert "ran but could not be recorded" in result_text(results[-1])
        assert "File too large" in result_text(results[-1])
        recorded_before = len(list(provenance.Ledger(ledger).scan()))
        refused = await client.call_tool("prov_stats", {})
        assert refused.is_error and result_text(refused).startswith("refused:")
        assert len(list(provenance.Ledger(ledger).scan())) == recorded_before
        # Lift the limit on the running server: the next call succeeds and the held spans land.
        subprocess.run(["prlimit", f"--pid={_writer_pid(ledger)}", "--fsize=unlimited:unlimited"], check=True)
        healed = await client.call_tool("prov_stats", {})
        assert not healed.is_error
    spans = list(provenance.Ledger(ledger).scan())
    assert len(spans) == len(results) + 2  # nothing acknowledged or refused is lost
    assert [s["attributes"].get("error.type") for s in spans[-3:]] == ["record_failed", "record_failed", None]
    assert provenance.Ledger(ledger).verify().ok


async def test_allow_mode_runs_calls_unrecorded_with_a_warning(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    errlog = tmp_path / "stderr.txt"
    params = server_params(ledger, "--on-record-failure", "allow", prefix=["prlimit", "--fsize=4000", "--"])
    with errlog.open("w") as err:
        async with stdio_session(params, err) as client:
            results = [await client.call_tool("prov_stats", {}) for _ in range(8)]
    assert not any(r.is_error for r in results)
    assert "calls now run unrecorded" in errlog.read_text()
    assert provenance.Ledger(ledger).verify().ok


async def test_environment_twins_configure_a_stdio_server(tmp_path: Path) -> None:
    params = server_params(tmp_path / "ledger", env={"MCP_LEDGER_TOOLS": "", "MCP_LEDGER_EXCLUDE_TOOLS": "prov_trace"})
    async with stdio_session(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "prov_trace" not in names and "prov_query" in names


def test_unknown_toolset_is_a_clear_startup_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_ledger.server", "serve", "--toolsets", "dockr", "--ledger-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--toolsets: unknown dockr; known:" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_shows_the_recorded_spans_and_that_they_verify(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_ledger.server", "demo", "--ledger-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "prov_query" in proc.stdout and "ERROR" in proc.stdout
    assert "verified: 1 chain(s)" in proc.stdout


def _raw_server(ledger: Path) -> subprocess.Popen[bytes]:
    """``mcp-ledger serve`` spoken to as raw JSON lines (to send what no client library would)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mcp_ledger.server", "serve"],
        env={"MCP_LEDGER_DIR": str(ledger), "PATH": os.environ.get("PATH", "")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _exchange(proc: subprocess.Popen[bytes], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Initialize, send ``calls`` (ids 10, 11, …), return the replies to initialize and to each call."""
    assert proc.stdin is not None and proc.stdout is not None
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        *({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": p} for i, p in enumerate(calls)),
    ]
    for message in messages:
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()
    return [json.loads(proc.stdout.readline()) for _ in range(1 + len(calls))]


def test_sigterm_ends_the_server_cleanly_with_its_spans_on_disk(tmp_path: Path) -> None:
    import signal
    import time

    ledger = tmp_path / "ledger"
    proc = _raw_server(ledger)
    replies = _exchange(proc, [{"name": "prov_stats", "arguments": {}}])
    assert replies[1]["id"] == 10 and "_meta" in replies[1]["result"]
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    report = provenance.Ledger(ledger).verify()
    assert report.ok and report.spans == 1 and not report.chains[0].live


def test_malformed_tool_calls_on_the_wire_get_an_error_and_a_span_each(tmp_path: Path) -> None:
    # The provenance middleware is first in the chain, before the SDK validates anything: what a
    # client puts in params reaches it as sent.
    ledger = tmp_path / "ledger"
    malformed: list[dict[str, Any]] = [{"name": ["prov_stats"]}, {"name": "prov_stats", "arguments": "x"}, {"name": 7}]
    proc = _raw_server(ledger)
    try:
        replies = _exchange(proc, malformed)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
    for reply in replies[1:]:
        assert "error" in reply or reply["result"].get("isError") is True, reply
    spans = list(provenance.Ledger(ledger).scan())
    assert len(spans) == len(malformed)
    assert all(span["status"]["code"] == "ERROR" for span in spans)
    assert provenance.Ledger(ledger).verify().ok
