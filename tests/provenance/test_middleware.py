"""Every tools/call outcome leaves exactly one span with the DESIGN.md fields, in both protocol eras."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from opentelemetry import trace as otel_trace

from mcp_ledger import provenance
from tests.harness import result_text, spans

SPAN_FIELDS = {
    "v",
    "type",
    "seq",
    "prev",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "attributes",
    "input",
    "output",
    "upstream",
}
DIGEST_FIELDS = {"sha256", "size", "preview", "truncated", "redactions"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def assert_span_shape(span: dict[str, Any], tool: str) -> None:
    assert set(span) == SPAN_FIELDS
    assert span["type"] == "span" and span["kind"] == "SERVER" and span["v"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", span["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"])
    assert span["name"] == f"tools/call {tool}"
    assert int(span["end_ns"]) >= int(span["start_ns"]) > 0
    assert set(span["input"]) == DIGEST_FIELDS and set(span["output"]) == DIGEST_FIELDS
    attrs = span["attributes"]
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == tool
    assert attrs["mcp.protocol.version"]
    assert attrs["mcp-ledger.connection.id"]
    assert attrs["mcp.client.name"] == "mcp"
    assert ("error.type" in attrs) == (span["status"]["code"] == "ERROR")


def only_span(ledger_dir: Path) -> dict[str, Any]:
    found = spans(ledger_dir)
    assert len(found) == 1, found
    return found[0]


async def test_success_records_one_ok_span_with_trace_parent_and_span_id_in_meta(
    connect: Any, ledger_dir: Path, mode: str
) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("fake_echo", {"text": "hi", "count": 2}, meta={"traceparent": TRACEPARENT})
    assert not result.is_error
    span = only_span(ledger_dir)
    assert_span_shape(span, "fake_echo")
    assert result.meta[provenance.SPAN_ID_META_KEY] == span["span_id"]
    assert span["status"] == {"code": "OK", "message": None}
    assert span["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert span["parent_span_id"] == "b7ad6b7169203331"
    assert span["upstream"] == {"request_id": ["req-1", "req-2"], "object": "echo"}
    assert span["input"]["preview"] == '{"count":2,"text":"hi"}'
    assert '"text":"hi"' in span["output"]["preview"]
    attrs = span["attributes"]
    assert attrs["mcp-ledger.tool.group"] == "fake"
    assert attrs["mcp-ledger.tool.read_only"] is True
    assert attrs["mcp-ledger.tool.destructive"] is False
    assert attrs["jsonrpc.request.id"]
    assert attrs["mcp.protocol.version"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")


async def test_tool_error_result_is_an_error_span(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("fake_fail", {"text": "nope"})
    assert result.is_error and "upstream said no: nope" in result_text(result)
    span = only_span(ledger_dir)
    assert_span_shape(span, "fake_fail")
    assert span["attributes"]["error.type"] == "tool_error"
    assert "upstream said no" in span["status"]["message"]
    assert result.meta[provenance.SPAN_ID_META_KEY] == span["span_id"]


async def test_without_any_deadline_a_tool_error_is_still_an_error_span(connect: Any, ledger_dir: Path) -> None:
    """A middleware built with ``call_timeout=None`` (library use; the server always sets one) takes the path
    without the deadline sweep: the tool's error result is recorded as such all the same."""
    async with connect() as (client, app):
        app.middleware.call_timeout = None
        result = await client.call_tool("fake_fail", {"text": "nope"})
    assert result.is_error and "upstream said no: nope" in result_text(result)
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "tool_error"
    assert "upstream said no" in span["status"]["message"]


async def test_invalid_arguments_give_a_short_message_naming_the_field(
    connect: Any, ledger_dir: Path, mode: str
) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("fake_echo", {"count": "many-many", "bogus": 1})
    text = result_text(result)
    assert result.is_error
    assert "count:" in text and "bogus: unknown argument" in text
    assert "many-many" not in text and "input_value" not in text and "http" not in text
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "tool_error"
    assert span["attributes"]["exception.type"] == "InvalidArguments"


async def test_unknown_tool_is_recorded(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("no_such_tool", {"a": 1})
    assert result.is_error and "Unknown tool" in result_text(result)
    span = only_span(ledger_dir)
    assert_span_shape(span, "no_such_tool")
    assert span["attributes"]["error.type"] == "tool_error"
    assert "mcp-ledger.tool.group" not in span["attributes"]


async def test_without_an_opentelemetry_provider_the_ids_are_the_ledger_s_own(connect: Any, ledger_dir: Path) -> None:
    # The default (tests/provenance/test_otel.py covers an installed provider).
    assert isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider)
    async with connect() as (client, _):
        await client.call_tool("fake_echo", {"text": "hi"}, meta={"traceparent": TRACEPARENT})
    span = only_span(ledger_dir)
    assert (span["trace_id"], span["parent_span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


async def test_a_call_the_sdk_rejects_for_its_request_state_is_recorded(connect: Any, ledger_dir: Path) -> None:
    # The SDK's request-state boundary answers -32602 before any tool runs; the call still gets its span.
    async with connect("auto") as (client, _):
        with pytest.raises(MCPError, match="requestState"):
            await client.call_tool("fake_echo", {"text": "hi"}, request_state="forged")
    span = only_span(ledger_dir)
    assert_span_shape(span, "fake_echo")
    assert span["attributes"]["error.type"] == "-32602"


async def test_an_integer_beyond_64_bits_still_gets_its_span(connect: Any, ledger_dir: Path, mode: str) -> None:
    # JSON allows any integer; orjson stops at 64 bits. The span must be written all the same.
    async with connect(mode) as (client, _):
        result = await client.call_tool("no_such_tool", {"n": 2**80})
    assert result.is_error
    span = only_span(ledger_dir)
    assert_span_shape(span, "no_such_tool")
    assert span["input"]["preview"] == '{"n":1208925819614629174706176}'


async def test_unexpected_exception_keeps_its_text_on_the_server(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        result = await client.call_tool("fake_crash", {"text": "internal detail"})
    assert result.is_error and "internal detail" not in result_text(result)
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "tool_error"
    assert span["attributes"]["exception.type"] == "RuntimeError"


async def test_protocol_error_is_recorded_with_its_code(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        with pytest.raises(MCPError):
            await client.call_tool("fake_protocol", {})
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "-32602"
    assert span["status"]["code"] == "ERROR"


async def test_timeout_stops_the_call_and_records_a_timeout_span(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode, call_timeout=0.2) as (client, _):
        with anyio.fail_after(10):
            result = await client.call_tool("fake_sleep", {"seconds": 30})
    assert result.is_error and "--call-timeout" in result_text(result)
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "timeout"
    assert (int(span["end_ns"]) - int(span["start_ns"])) / 1e9 < 5


async def test_cancellation_by_the_client_is_recorded(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        with anyio.move_on_after(0.3):
            await client.call_tool("fake_sleep", {"seconds": 30})
        with anyio.fail_after(10):
            while not spans(ledger_dir):
                await anyio.sleep(0.02)
    span = only_span(ledger_dir)
    assert span["attributes"]["error.type"] == "cancelled"
    assert span["status"]["code"] == "ERROR"


async def test_malformed_traceparent_starts_a_new_trace(connect: Any, ledger_dir: Path) -> None:
    async with connect() as (client, _):
        await client.call_tool("fake_echo", {}, meta={"traceparent": "00-zz-yy-01"})
    span = only_span(ledger_dir)
    assert span["parent_span_id"] is None and re.fullmatch(r"[0-9a-f]{32}", span["trace_id"])


async def test_prov_tools_are_recorded_too(connect: Any, ledger_dir: Path, mode: str) -> None:
    async with connect(mode) as (client, _):
        await client.call_tool("fake_echo", {})
        result = await client.call_tool("prov_query", {"tool": "fake_echo"})
    assert [s["tool"] for s in result.structured_content["spans"]] == ["fake_echo"]
    tools = sorted(s["attributes"]["gen_ai.tool.name"] for s in spans(ledger_dir))
    assert tools == ["fake_echo", "prov_query"]


async def test_connection_id_is_stable_within_a_legacy_connection(connect: Any, ledger_dir: Path) -> None:
    async with connect("legacy") as (client, _):
        await client.call_tool("fake_echo", {})
        await client.call_tool("fake_echo", {})
    ids = {s["attributes"]["mcp-ledger.connection.id"] for s in spans(ledger_dir)}
    assert len(ids) == 1


async def test_output_preview_is_bounded_and_marked_truncated(connect: Any, ledger_dir: Path) -> None:
    async with connect(preview_bytes=64) as (client, _):
        await client.call_tool("fake_echo", {"text": "x" * 5000})
    span = only_span(ledger_dir)
    assert span["input"]["truncated"] and len(span["input"]["preview"]) <= 64
    assert span["output"]["truncated"] and span["output"]["size"] > 5000


async def test_many_concurrent_calls_each_get_exactly_one_span(connect: Any, ledger_dir: Path) -> None:
    async with connect() as (client, _), anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(client.call_tool, "fake_echo", {"text": str(i)})
    found = spans(ledger_dir)
    assert sorted(s["input"]["preview"] for s in found) == sorted(f'{{"text":"{i}"}}' for i in range(40))
    assert provenance.Ledger(ledger_dir).verify().ok


def test_forked_processes_draw_different_ids() -> None:
    import os

    from mcp_ledger.provenance._middleware import _draw_ids, _id_pool, new_connection_id

    _draw_ids()  # the parent has span ids drawn ahead, which a child must not take
    assert _id_pool
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids and leave at once (as a span draws them)
        span_id, trace_id = _id_pool.pop() if _id_pool else _draw_ids()
        os.write(write_end, f"{span_id} {trace_id} {new_connection_id()}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_span, child_trace, child_connection = os.read(read_end, 200).decode().split()
    assert (child_span, child_trace) != _id_pool.pop()
    assert child_connection.rsplit("-", 1)[0] != new_connection_id().rsplit("-", 1)[0]


async def test_no_call_is_left_behind_in_the_timeout_bookkeeping(connect: Any) -> None:
    async with connect() as (client, app):
        await client.call_tool("fake_echo", {})
        await client.call_tool("fake_fail", {})
        with pytest.raises(MCPError):
            await client.call_tool("fake_protocol", {})
        with anyio.move_on_after(0.2):
            await client.call_tool("fake_sleep", {"seconds": 5})
        assert app.middleware._deadlines.calls == {}
        assert app.middleware._deadlines.fired == set()
