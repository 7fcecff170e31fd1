"""With an OpenTelemetry tracer provider installed, a tool call's ledger span is its OpenTelemetry span.

The provenance middleware stands in for the SDK's OpenTelemetry middleware: one span per call,
the same ids in the ledger and in the exported trace, redacted attributes only, and the tool's own
work (an HTTP client's span, say) nested under it. Other methods keep the SDK's spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.shared import _otel as mcp_otel
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once
from pydantic import BaseModel

from mcp_ledger import provenance
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.group import ToolGroup, tool
from tests.conftest import GH
from tests.harness import result_text, spans

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _reset_global_provider() -> None:
    # OpenTelemetry sets its global provider once per process; its own test utilities reset it the same way.
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None


@pytest.fixture(scope="module")
def installed() -> Iterator[InMemorySpanExporter]:
    """One provider for the module: a proxy tracer binds to the first provider it sees, for good.

    Afterwards no provider is installed again, and the SDK's proxy tracer (which its client and
    server spans use) is unbound, so later tests run as without OpenTelemetry.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    otel_trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        _reset_global_provider()
        sdk_tracer = getattr(mcp_otel, "_tracer", None)
        if isinstance(sdk_tracer, otel_trace.ProxyTracer):
            sdk_tracer._real_tracer = None


@pytest.fixture
def exporter(installed: InMemorySpanExporter) -> InMemorySpanExporter:
    installed.clear()
    return installed


def tool_call_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The server's spans for tools/call (the legacy client's own spans are named "MCP send …")."""
    return [s for s in exporter.get_finished_spans() if s.name.startswith("tools/call")]


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    context = span.get_span_context()
    assert context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", parent


async def test_one_span_with_the_same_ids_in_the_ledger_and_the_trace(
    connect: Any, ledger_dir: Path, mode: str, exporter: InMemorySpanExporter
) -> None:
    async with connect(mode) as (client, _):
        await client.list_tools()
        result = await client.call_tool("fake_echo", {"text": "hi"}, meta={"traceparent": TRACEPARENT})
    assert not result.is_error
    [ledger] = spans(ledger_dir)
    [otel] = tool_call_spans(exporter)
    assert hex_ids(otel) == (ledger["trace_id"], ledger["span_id"], ledger["parent_span_id"])
    if mode == "auto":
        assert ledger["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert ledger["parent_span_id"] == "b7ad6b7169203331"
    else:
        # The legacy client opens a CLIENT span of its own and sends that as the traceparent instead.
        [sent] = [s for s in exporter.get_finished_spans() if s.name == "MCP send tools/call fake_echo"]
        assert hex_ids(sent)[:2] == (ledger["trace_id"], ledger["parent_span_id"])
    assert result.meta[provenance.SPAN_ID_META_KEY] == ledger["span_id"]
    assert otel.name == ledger["name"] == "tools/call fake_echo"
    assert otel.kind == otel_trace.SpanKind.SERVER
    assert dict(otel.attributes or {}) == ledger["attributes"]
    assert otel.start_time == int(ledger["start_ns"])
    assert otel.status.status_code == StatusCode.UNSET
    # Other methods keep the SDK's own span.
    assert "tools/list" in {s.name for s in exporter.get_finished_spans()}


async def test_failures_carry_the_redacted_message_and_no_exception_text(
    connect: Any, ledger_dir: Path, exporter: InMemorySpanExporter
) -> None:
    async with connect() as (client, _):
        failed = await client.call_tool("fake_fail", {"text": f"token {GH}"})
        crashed = await client.call_tool("fake_crash", {"text": f"token {GH}"})
    assert failed.is_error and crashed.is_error and GH not in result_text(failed) + result_text(crashed)
    ledger = {s["name"]: s for s in spans(ledger_dir)}
    for otel in tool_call_spans(exporter):
        record = ledger[otel.name]
        assert otel.status.status_code == StatusCode.ERROR
        assert otel.status.description == record["status"]["message"]
        assert dict(otel.attributes or {}) == record["attributes"]
        assert not otel.events  # no exception event: its text may hold what the span must not
        assert GH not in repr((otel.status.description, otel.attributes, otel.events))
    assert len(tool_call_spans(exporter)) == 2


class _Nothing(BaseModel):
    pass


@tool(read_only=True, open_world=False)
async def traced_work_run(args: _Nothing, backend: None, ctx: Context) -> _Nothing:
    """Stand in for instrumented work a tool does (an HTTP request, say)."""
    with otel_trace.get_tracer("upstream-client").start_as_current_span("GET upstream"):
        pass
    return _Nothing()


async def test_the_tool_s_own_spans_nest_under_the_ledger_span(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    group: ToolGroup[None] = ToolGroup("traced", "A tool that makes a span of its own")
    group.add(traced_work_run)
    app = create_app(ServerSettings(ledger_dir=tmp_path), groups=[group])
    try:
        async with Client(app.server) as client:
            await client.call_tool("traced_work_run", {})
    finally:
        app.close()
    [ledger] = spans(tmp_path)
    [child] = [s for s in exporter.get_finished_spans() if s.name == "GET upstream"]
    trace_id, _, parent = hex_ids(child)
    assert (trace_id, parent) == (ledger["trace_id"], ledger["span_id"])
