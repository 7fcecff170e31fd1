"""What a client chooses is bounded in the span, and a large payload is redacted off the event loop.

A client's name and version, an unknown tool's name and a request id are copied into every span of
the call or connection (finding 6: a 1 MB client name gave 1 MB per ledger line); a large argument
or error text is redacted in a worker thread, so one call does not hold up the others (finding 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import Implementation

from mcp_ledger.provenance import _span
from mcp_ledger.provenance._middleware import TRUNCATED_MARK
from tests.conftest import GH, HF, make_app
from tests.harness import ledger_bytes, result_text, spans

LIMIT = 256  # bytes of client-chosen text kept per attribute


def _assert_bounded(value: str, planted: str | None = None) -> None:
    assert value.endswith(TRUNCATED_MARK), value[:80]
    assert len(value.encode()) <= LIMIT + len(TRUNCATED_MARK.encode())
    if planted is not None:
        assert planted not in value


async def test_a_huge_client_name_version_and_tool_name_are_cut_and_marked(ledger_dir: Path, mode: str) -> None:
    # A secret right at the cut: it is redacted before the text is cut, so no piece of it survives.
    name = "n" * 239 + " " + GH + " " + "n" * 1_000_000
    info = Implementation(name=name, version="v" * 500_000)
    app = make_app(ledger_dir)
    try:
        async with Client(app.server, mode=mode, client_info=info) as client:
            await client.call_tool("fake_echo", {"text": "hi"})
            unknown = await client.call_tool("x" * 200 + "/" + HF + "/" + "y" * 1_000_000, {})
    finally:
        app.close()
    assert unknown.is_error
    echo, missing = spans(ledger_dir)
    for span in (echo, missing):
        attributes = span["attributes"]
        _assert_bounded(attributes["mcp.client.name"], GH[:8])
        _assert_bounded(attributes["mcp.client.version"])
    _assert_bounded(missing["attributes"]["gen_ai.tool.name"], HF[:8])
    assert missing["name"] == f"tools/call {missing['attributes']['gen_ai.tool.name']}"
    for line in ledger_bytes(ledger_dir).splitlines():
        assert len(line) < 8192, "a client's text is bounded in every line"


def test_a_huge_request_id_on_the_wire_is_cut_and_marked(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_ledger.server", "serve"],
        env={"MCP_LEDGER_DIR": str(ledger), "PATH": os.environ.get("PATH", "")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    request_id = "r" * 100 + "-" + GH + "-" + "r" * 300_000
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "prov_stats", "arguments": {}}},
    ]
    try:
        for message in messages:
            proc.stdin.write((json.dumps(message) + "\n").encode())
            proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert replies[1]["id"] == request_id  # the answer carries the id as sent; the span a bounded copy
    (span,) = spans(ledger)
    _assert_bounded(span["attributes"]["jsonrpc.request.id"], GH[:8])
    assert GH.encode() not in ledger_bytes(ledger)


@pytest.fixture
def prepare_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that redacted and digested each span's payloads."""
    threads: list[str] = []
    prepare = _span.SpanBuilder.prepare

    def recording(self: _span.SpanBuilder, *args: Any) -> None:
        threads.append(threading.current_thread().name)
        prepare(self, *args)

    monkeypatch.setattr(_span.SpanBuilder, "prepare", recording)
    return threads


async def test_a_large_payload_is_redacted_in_a_worker_thread(
    connect: Any, ledger_dir: Path, mode: str, prepare_threads: list[str]
) -> None:
    big = {"blob": "-eyJ" * 50_000, "token": "plain-looking"}  # 200 KB: the JWT trap of finding 2
    async with connect(mode) as (client, _):
        small = await client.call_tool("fake_echo", {"text": "hi"})
        large = await client.call_tool("fake_echo", {"text": "hi", "extra": big})
    assert not small.is_error and not large.is_error
    main = threading.main_thread().name
    assert prepare_threads[0] == main and prepare_threads[1] != main
    _, span = spans(ledger_dir)
    assert span["input"]["redactions"] == ["$.extra.token"] and span["input"]["size"] > 200_000


async def test_a_large_error_text_is_redacted_before_the_agent_reads_it(connect: Any, ledger_dir: Path) -> None:
    text = "x" * 99_000 + " " + GH
    async with connect() as (client, _):
        failed = await client.call_tool("fake_fail", {"text": text})
    assert failed.is_error and GH not in result_text(failed) and "[REDACTED:github-token]" in result_text(failed)
    assert GH.encode() not in ledger_bytes(ledger_dir)


async def test_the_redacted_paths_of_a_payload_are_bounded(connect: Any, ledger_dir: Path) -> None:
    extra = {f"password_{i}": "x" for i in range(1000)} | {"k" * 100_000 + "_token": "x"}
    async with connect() as (client, _):
        assert not (await client.call_tool("fake_echo", {"text": "hi", "extra": extra})).is_error
    (span,) = spans(ledger_dir)
    paths = span["input"]["redactions"]
    assert len(paths) == 65 and paths[-1] == "… and 937 more"
    assert all(len(path) <= 256 for path in paths)


@pytest.mark.parametrize("preview_bytes", [16, 255, 256, 1024])
@pytest.mark.parametrize("size", [0, 200, 254, 255, 256, 300])
def test_small_payloads_take_the_inline_digest_and_say_what_the_general_one_says(size: int, preview_bytes: int) -> None:
    # SpanBuilder.prepare writes the common case (small payloads, whole in their previews) inline; it must
    # agree with _described, the general form, on every side of its bounds.
    arguments = {"t": "é" * max(0, (size - 8) // 2)}
    output = {"content": "x" * max(0, size - 14)}
    builder = _span.SpanBuilder(0, "fake_echo", arguments, {})
    builder.payload_bytes({"structuredContent": output})
    assert builder.canonical is not None
    builder.prepare({"structuredContent": output}, preview_bytes)
    assert builder.digests is not None
    digest_in, digest_out, _ = builder.digests
    assert digest_in == _span._described(builder.canonical[0], [], preview_bytes)
    assert digest_out == _span._described(builder.canonical[1], [], preview_bytes)
