"""Each private name of the SDK, OpenTelemetry or asyncio that ``provenance._compat`` relies on, pinned.

When an upgrade of mcp, opentelemetry or Python breaks one of these assumptions, the test that
names it fails here, not a served call.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

from mcp_ledger.provenance._compat import (
    SDKTracingMiddleware,
    current_asyncio_task,
    no_tracer_provider,
    otel_parent,
    session_connection,
)
from tests.conftest import make_app


def test_the_sdk_puts_its_opentelemetry_middleware_in_every_server_s_chain() -> None:
    # ProvenanceMiddleware.install replaces it and hands it every method but tools/call.
    server: MCPServer[Any] = MCPServer("pin")
    assert sum(isinstance(m, SDKTracingMiddleware) for m in server.middleware) == 1


def test_install_takes_the_sdk_s_tracing_out_of_the_chain_and_goes_first(tmp_path: Path) -> None:
    app = make_app(tmp_path / "ledger")
    try:
        chain = app.server.middleware
        assert chain[0] is app.middleware
        assert isinstance(app.middleware.tracing, SDKTracingMiddleware)
        assert not any(isinstance(m, SDKTracingMiddleware) for m in chain)
    finally:
        app.close()


class _Capture(ServerMiddleware[Any]):
    def __init__(self) -> None:
        self.connections: list[Any] = []

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call":
            self.connections.append(session_connection(ctx.session))
        return await call_next(ctx)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_server_session_keeps_its_connection_with_state_session_id_and_client_info(mode: str) -> None:
    # The middleware keeps what every call of a connection shares in the connection's state.
    server: MCPServer[Any] = MCPServer("pin")

    @server.tool()
    def ping() -> str:
        return "pong"

    capture = _Capture()
    server.middleware.append(capture)
    async with Client(server, mode=mode) as client:
        await client.call_tool("ping", {})
        await client.call_tool("ping", {})
    first, second = capture.connections
    assert first is not None
    assert isinstance(first.state, dict)
    assert hasattr(first, "session_id")
    assert first.client_params is not None and first.client_params.client_info.name == "mcp"
    if mode == "legacy":  # one connection for the session: its state carries over between calls
        assert second is first


def _reset_global_provider() -> None:
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None


def test_opentelemetry_keeps_the_installed_provider_in_a_module_global() -> None:
    assert hasattr(otel_trace, "_TRACER_PROVIDER")
    assert no_tracer_provider()
    assert isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider)
    _reset_global_provider()
    otel_trace.set_tracer_provider(TracerProvider())
    try:
        assert not no_tracer_provider()
        assert otel_trace._TRACER_PROVIDER is otel_trace.get_tracer_provider()
    finally:
        _reset_global_provider()
    assert no_tracer_provider()


def test_an_sdk_span_knows_its_parent() -> None:
    tracer = TracerProvider().get_tracer("pin")
    parent = tracer.start_span("parent")
    child = tracer.start_span("child", context=otel_trace.set_span_in_context(parent))
    assert otel_parent(child) == parent.get_span_context()
    assert otel_parent(parent) is None
    assert otel_parent(otel_trace.NonRecordingSpan(parent.get_span_context())) is None  # the API's span: no parent


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the fast path is for 3.11 only")
def test_asyncio_keeps_each_running_loop_s_current_task_and_thread() -> None:
    tasks = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    assert isinstance(tasks, dict)

    async def check() -> None:
        loop = asyncio.get_running_loop()
        assert tasks[loop] is asyncio.current_task()
        assert loop._thread_id == threading.get_ident()  # type: ignore[attr-defined]

    asyncio.run(check())


def test_the_current_task_is_found_across_loops_and_threads() -> None:
    # The timeout bookkeeping cancels the task it finds; on 3.11 it finds it without asyncio's own
    # lookup. It must be the right task every time.
    async def check_concurrent_tasks() -> None:
        async def one() -> None:
            for _ in range(3):
                assert current_asyncio_task() is asyncio.current_task()
                await asyncio.sleep(0)

        await asyncio.gather(*(one() for _ in range(5)))

    assert current_asyncio_task() is None  # no loop running
    for _ in range(3):  # a new loop each time, in the same thread
        asyncio.run(check_concurrent_tasks())
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            for _ in range(20):
                asyncio.run(check_concurrent_tasks())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_small_payload_sha256_is_cpython_s_own_and_agrees_with_hashlib() -> None:
    # _span digests payloads under SMALL_HASH_BYTES with CPython's own SHA-256 (its short code path is the
    # cheaper one in a cold server); it must be that implementation, and give hashlib's digests.
    import hashlib

    from mcp_ledger.provenance._compat import SMALL_HASH_BYTES, small_sha256

    assert small_sha256 is not hashlib.sha256
    assert small_sha256.__module__ in {"_sha2", "_sha256"}
    for size in (0, 1, 55, 56, 63, 64, 65, SMALL_HASH_BYTES - 1, SMALL_HASH_BYTES, 5000):
        data = bytes(range(256)) * (size // 256 + 1)
        assert small_sha256(data[:size]).hexdigest() == hashlib.sha256(data[:size]).hexdigest()
