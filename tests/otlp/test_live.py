"""serve --otlp-endpoint: every tool call reaches an OTLP/HTTP receiver as the ledger recorded it, and export
never changes or holds a call."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp_types import RequestParamsMeta
from opentelemetry import trace as otel_trace
from pydantic import BaseModel

from mcp_ledger import provenance
from mcp_ledger.provenance import otlp
from mcp_ledger.server import cli
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings, SettingsError
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import ToolGroup, tool
from tests.conftest import ALL_SECRETS, GH, PASSWORD, QUERY_TOKEN, fake_group, make_app
from tests.harness import call_ok, connected, ledger_text, result_text, spans
from tests.otlp.conftest import HEADER_CANARY, Receiver

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_META = cast(RequestParamsMeta, {"traceparent": TRACEPARENT})  # the TypedDict's extra keys are PEP 728's
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2


def without_none(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


def assert_as_in_ledger(received: dict[str, Any], ledger_spans: list[dict[str, Any]]) -> None:
    """Every ledger span was received with the same ids, name, times, status and attributes."""
    for record in ledger_spans:
        span = received[record["span_id"]]
        assert (span.trace_id, span.parent_span_id) == (record["trace_id"], record["parent_span_id"])
        assert span.name == record["name"] and span.kind == SPAN_KIND_SERVER
        assert span.start_ns == int(record["start_ns"])
        assert span.end_ns == int(record["end_ns"])  # the ledger's end, not the end of its write
        assert span.attributes == without_none(record["attributes"])
        if record["status"]["code"] == "ERROR":
            assert (span.status_code, span.status_message) == (STATUS_ERROR, record["status"]["message"])
        else:
            assert span.status_code == 0  # UNSET, as the live span says


async def test_every_call_reaches_the_receiver_with_the_ledger_s_ids_attributes_and_no_secret(
    ledger_dir: Path, mode: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={HEADER_CANARY},x-team=ops")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agents-ci")
    app = make_app(ledger_dir, otlp_endpoint=receiver.url, log_level="DEBUG")
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    async with connected(app, mode) as client:
        ok = await client.call_tool(
            "fake_echo",
            {"text": f"token {GH}", "extra": {"password": PASSWORD}},
            meta=TRACE_META,
        )
        failed = await client.call_tool("fake_fail", {"text": f"token {GH}"})
        crashed = await client.call_tool("fake_crash", {"text": f"password={PASSWORD}"})
        stats = await call_ok(client, "prov_stats", {})
        assert app.otlp_export is not None and app.otlp_export.flush()
    assert not ok.is_error and failed.is_error and crashed.is_error
    ledger_spans = spans(ledger_dir)
    assert len(ledger_spans) == 4
    received = receiver.by_span_id()
    assert_as_in_ledger(received, ledger_spans)
    assert {s.span_id for s in receiver.tool_calls()} == {r["span_id"] for r in ledger_spans}
    echo = received[ok.meta[provenance.SPAN_ID_META_KEY]]  # type: ignore[index]
    if mode == "auto":
        assert (echo.trace_id, echo.parent_span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert echo.resource["service.name"] == "agents-ci"
    # The exporter sent the headers; they went nowhere else.
    assert {h.get("x-api-key") for h in receiver.headers} == {HEADER_CANARY}
    captured = capfd.readouterr()
    assert "DEBUG" in captured.err  # the canary below was looked for in a DEBUG log
    places = {
        "ledger": ledger_text(ledger_dir),
        "results": result_text(ok) + result_text(failed) + result_text(crashed) + repr(stats),
        "stderr": captured.err + captured.out,
    }
    for where, text in places.items():
        assert HEADER_CANARY not in text, f"the exporter's header reached the {where}"
    sent = b"".join(receiver.bodies)
    assert HEADER_CANARY.encode() not in sent
    for secret in ALL_SECRETS:
        assert secret.encode() not in sent
    assert stats["otlp_export"]["failed"] == 0 and stats["otlp_export"]["dropped"] == 0


class _Nothing(BaseModel):
    pass


@tool(read_only=True, open_world=False)
async def traced_fetch(args: _Nothing, backend: None, ctx: Context) -> _Nothing:
    """Stand in for an instrumented HTTP client: a span of its own, with a URL that carries a token."""
    tracer = otel_trace.get_tracer("opentelemetry.instrumentation.httpx")
    with tracer.start_as_current_span("GET", kind=otel_trace.SpanKind.CLIENT) as span:
        span.set_attribute("url.full", f"https://api.example.test/items?access_token={QUERY_TOKEN}")
        span.set_attribute("http.request.header.authorization", [f"Bearer {GH}"])

    def in_a_worker_thread() -> None:
        with otel_trace.get_tracer("opentelemetry.instrumentation.requests").start_as_current_span("POST"):
            pass

    await anyio.to_thread.run_sync(in_a_worker_thread)
    return _Nothing()


async def test_the_tool_s_instrumented_requests_nest_under_the_call_redacted(
    tmp_path: Path, receiver: Receiver
) -> None:
    group: ToolGroup[None] = ToolGroup("traced", "A tool whose HTTP client is instrumented")
    group.add(traced_fetch)
    app = create_app(ServerSettings(ledger_dir=tmp_path, otlp_endpoint=receiver.url), groups=[group])
    async with connected(app) as client:
        await call_ok(client, "traced_fetch", {})
    [ledger] = spans(tmp_path)
    children = [s for s in receiver.spans if s.parent_span_id == ledger["span_id"]]
    assert sorted(s.name for s in children) == ["GET", "POST"]
    assert {s.trace_id for s in children} == {ledger["trace_id"]}
    [get] = [s for s in children if s.name == "GET"]
    assert get.attributes["url.full"].startswith("https://api.example.test/items?access_token=")
    sent = b"".join(receiver.bodies)
    assert QUERY_TOKEN.encode() not in sent and GH.encode() not in sent


async def test_a_receiver_that_is_down_changes_no_result_and_the_loss_is_counted(
    ledger_dir: Path, closed_port: int, tmp_path: Path
) -> None:
    arguments = {"text": "same either way", "count": 3}
    async with connected(make_app(tmp_path / "plain")) as client:
        plain = await client.call_tool("fake_echo", arguments)
    app = make_app(ledger_dir, otlp_endpoint=f"http://127.0.0.1:{closed_port}")
    async with connected(app) as client:
        results = [await client.call_tool("fake_echo", arguments) for _ in range(5)]
        assert app.otlp_export is not None
        app.otlp_export.flush(timeout=10)
        stats = await call_ok(client, "prov_stats", {})
    for result in results:
        assert not result.is_error
        assert result.structured_content == plain.structured_content
        assert result_text(result) == result_text(plain)
    export = stats["otlp_export"]
    assert export["exported"] == 0 and export["failed"] >= 5  # the five calls, and any SDK span of the session
    [server] = export["servers"]
    assert server["endpoint"] == f"http://127.0.0.1:{closed_port}/v1/traces"
    assert server["closed"] is False
    # After the server stopped, its status file says what it lost; the CLI shows it.
    after = otlp.export_status(ledger_dir)
    assert after is not None and after["servers"][0]["closed"] is True
    assert after["failed"] + after["dropped"] >= 6  # the prov_stats call too
    assert after["exported"] == 0


async def test_a_slow_receiver_holds_no_call_and_a_full_queue_drops_counted(
    ledger_dir: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")  # every span is sent at once
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    receiver.hold.set()
    app = make_app(ledger_dir, otlp_endpoint=receiver.url)
    async with connected(app) as client:
        await call_ok(client, "fake_echo", {"text": "first"})
        # The exporter's thread is now inside a request the receiver does not answer.
        assert await anyio.to_thread.run_sync(receiver.arrived.wait, 10)
        results = [await client.call_tool("fake_echo", {"text": f"call {i}"}) for i in range(12)]
        # Every call returned while the receiver still held the first request.
        assert receiver.handled == 0 and not receiver.release.is_set()
        stats = await call_ok(client, "prov_stats", {})
        assert receiver.handled == 0
        receiver.release.set()
    assert [r.structured_content["text"] for r in results] == [f"call {i}" for i in range(12)]
    export = stats["otlp_export"]
    assert export["dropped"] >= 12 - 4
    assert export["pending"] <= 4 + 1
    assert len(spans(ledger_dir)) == 14  # the ledger has every call, whatever the export lost
    after = otlp.export_status(ledger_dir)
    assert after is not None and after["dropped"] >= export["dropped"]
    assert after["pending"] == 0


async def test_without_the_otlp_extra_the_flag_stops_the_start_with_what_to_install(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if the extra were not installed: importing the module that needs the SDK fails.
    monkeypatch.setitem(sys.modules, "mcp_ledger.provenance._otlp", None)
    monkeypatch.delattr(provenance, "_otlp", raising=False)
    with pytest.raises(SettingsError, match=r"pip install 'mcp-ledger\[otlp\]'"):
        create_app(
            ServerSettings(ledger_dir=tmp_path, otlp_endpoint=receiver.url), groups=[prov.register(), fake_group()]
        )
    assert cli.main(["serve", "--ledger-dir", str(tmp_path), "--otlp-endpoint", receiver.url]) == 2
    assert "pip install 'mcp-ledger[otlp]'" in capsys.readouterr().err
    # An OTEL_* variable alone may be meant for other programs: the server starts, without export.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    app = create_app(ServerSettings(ledger_dir=tmp_path), groups=[prov.register(), fake_group()])
    assert app.otlp_export is None
    app.close()


def test_a_bad_endpoint_is_refused_with_what_to_give(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--ledger-dir", str(tmp_path), "--otlp-endpoint", "collector:4318"]) == 2
    assert "http:// or https:// URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, None),
        ("http://127.0.0.1:4318", {}, ("http://127.0.0.1:4318/v1/traces", "--otlp-endpoint")),
        ("http://c:4318/base/", {}, ("http://c:4318/base/v1/traces", "--otlp-endpoint")),
        ("https://c/v1/traces", {}, ("https://c/v1/traces", "--otlp-endpoint")),
        (
            "http://flag:4318",
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
            ("http://flag:4318/v1/traces", "--otlp-endpoint"),
        ),
        (
            None,
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
            ("http://t/custom", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ),
        (
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318/"},
            ("http://b:4318/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ),
    ],
)
def test_the_endpoint_follows_the_specification_s_precedence(
    flag: str | None, environ: dict[str, str], expected: tuple[str, str] | None
) -> None:
    assert otlp.traces_endpoint(flag, environ) == expected


def test_the_endpoint_is_shown_without_credentials() -> None:
    shown = otlp.display_endpoint(f"https://user:{PASSWORD}@collector:4318/v1/traces?api_key={QUERY_TOKEN}")
    assert shown == "https://collector:4318/v1/traces"


async def test_the_environment_twin_alone_exports(
    ledger_dir: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}/v1/traces")
    app = make_app(ledger_dir)
    async with connected(app) as client:
        await call_ok(client, "fake_echo", {})
    [record] = spans(ledger_dir)
    assert record["span_id"] in receiver.by_span_id()


async def test_client_spans_of_the_session_do_not_break_the_export(ledger_dir: Path, receiver: Receiver) -> None:
    """The in-process client's own spans (the legacy era's) go through the same provider: they are exported too."""
    app = make_app(ledger_dir, otlp_endpoint=receiver.url)
    async with Client(app.server, mode="legacy") as client:
        await client.call_tool("fake_echo", {})
    app.close()
    [record] = spans(ledger_dir)
    assert record["span_id"] in receiver.by_span_id()


async def test_a_tracer_provider_installed_before_is_joined_not_replaced(ledger_dir: Path, receiver: Receiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    theirs = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    otel_trace.set_tracer_provider(provider)  # as opentelemetry-instrument does before the server starts
    app = make_app(ledger_dir, otlp_endpoint=receiver.url)
    assert otel_trace.get_tracer_provider() is provider
    async with connected(app) as client:
        await call_ok(client, "fake_echo", {})
    [record] = spans(ledger_dir)
    assert record["span_id"] in receiver.by_span_id()
    assert record["span_id"] in {f"{s.context.span_id:016x}" for s in theirs.get_finished_spans() if s.context}


def test_an_exporter_that_cannot_start_stops_the_start_in_one_line(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The exporter loads a credential provider this variable names; there is none of that name.
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "no-such-provider")
    assert cli.main(["serve", "--ledger-dir", str(tmp_path), "--otlp-endpoint", receiver.url]) == 2
    err = capsys.readouterr().err
    assert "mcp-ledger serve: --otlp-endpoint: the OTLP exporter cannot start:" in err
    assert "Traceback" not in err


def test_a_server_killed_while_exporting_shows_as_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = otlp.StatusFile(tmp_path, "c-killed", "http://127.0.0.1:4318/v1/traces")
    status.base["pid"] = int(ended.stdout)  # a process of this host that no longer runs
    status.write({"exported": 7, "dropped": 1, "failed": 2, "pending": 3})
    [server] = otlp.export_status(tmp_path)["servers"]  # type: ignore[index]
    assert (server["state"], server["exported"], server["pending"]) == ("gone", 7, 3)
    assert cli.main(["stats", "--ledger-dir", str(tmp_path)]) == 0
    assert "c-killed  http://127.0.0.1:4318/v1/traces  gone" in capsys.readouterr().out
