"""A loopback OTLP/HTTP receiver that decodes what it is sent, and a clean OpenTelemetry state per test.

The receiver speaks OTLP/HTTP as a collector does: ``POST /v1/traces`` with an
``application/x-protobuf`` ``ExportTraceServiceRequest`` body, answered with an
``ExportTraceServiceResponse``. It can hold every request until released (a slow collector).
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mcp.shared import _otel as mcp_otel
from opentelemetry import trace as otel_trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.util._once import Once

from mcp_ledger.provenance import otlp

# Built at run time, plain text that no redaction rule knows: only never copying it keeps it out.
HEADER_CANARY = "otlp-header-canary-" + "4c1d9e7a0b"


@dataclass
class Received:
    """One decoded span as a collector sees it."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    scope: str
    resource: dict[str, Any]


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class Receiver:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    spans: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)  # set: requests wait until release
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    handled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_span_id(self) -> dict[str, Received]:
        with self.lock:
            return {span.span_id: span for span in self.spans}

    def tool_calls(self) -> list[Received]:
        with self.lock:
            return [span for span in self.spans if span.scope == "mcp-ledger"]


def _decode(body: bytes) -> list[Received]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    Received(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={kv.key: any_value(kv.value) for kv in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message,
                        scope=scope_spans.scope.name,
                        resource=resource,
                    )
                )
    return found


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.arrived.set()
            if receiver.hold.is_set():
                receiver.release.wait(30)
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(404 if self.path != "/v1/traces" else 415)
                return
            spans = _decode(body)
            with receiver.lock:
                receiver.bodies.append(body)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.spans.extend(spans)
                receiver.handled += 1
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (a collector that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reset_opentelemetry() -> None:
    """No global tracer provider, as in a fresh process (OpenTelemetry's own test utilities do the same);
    the MCP SDK's proxy tracer forgets the provider it bound to."""
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None
    sdk_tracer = getattr(mcp_otel, "_tracer", None)
    if isinstance(sdk_tracer, otel_trace.ProxyTracer):
        sdk_tracer._real_tracer = None


@pytest.fixture(autouse=True)
def fresh_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test installs its own provider and leaves none behind; the OTEL_* environment is the test's."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # a collector that is down costs seconds, not ten
    reset_opentelemetry()
    try:
        yield
    finally:
        for export in list(otlp._live.values()):
            export.close(timeout=0.5)
        reset_opentelemetry()
