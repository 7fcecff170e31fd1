"""ProvenanceMiddleware: exactly one span per ``tools/call``, whatever happens.

It sits on the SDK's ``ServerMiddleware`` hook, first in the chain, where the SDK puts its own
OpenTelemetry middleware, and stands in for it: other methods are handed to the SDK's middleware
unchanged, while a ``tools/call`` gets one span that is both the ledger's record and, when an
OpenTelemetry tracer provider is installed, the OpenTelemetry span (same ids, same redacted
attributes). Two spans per call would disagree on their ids, and the SDK's span costs about 13 µs
per call even when nothing exports it. Being first also means a call the SDK's request-state
boundary rejects is recorded too.

It reads top to bottom like the SDK's: open the span, ``call_next``, map each way a call can end to
a status, and record in ``finally`` — cancellation is a ``BaseException``, and a span must be
written even then. The line is written before the result goes back, and the result's ``_meta``
names the span.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent
from opentelemetry import context as otel_context
from opentelemetry import propagate as otel_propagate
from opentelemetry import trace as otel_trace
from pydantic import ValidationError

from mcp_ledger.provenance._annotate import current_call
from mcp_ledger.provenance._compat import (
    SDKTracingMiddleware,
    current_asyncio_task,
    no_tracer_provider,
    otel_parent,
    session_connection,
)
from mcp_ledger.provenance._redact import redact_text
from mcp_ledger.provenance._span import (
    CALL_RAN_UNRECORDED,
    CANCELLED,
    CLIENT_NAME,
    CLIENT_VERSION,
    CONNECTION,
    DESTRUCTIVE,
    ERROR_TYPE,
    GROUP,
    METHOD,
    OPERATION,
    PROTOCOL_VERSION,
    READ_ONLY,
    RECORD_FAILED,
    REQUEST_ID,
    SESSION,
    TIMEOUT,
    TOOL,
    TOOL_ERROR,
    TRANSPORT,
    SpanBuilder,
)
from mcp_ledger.provenance._store import RecordError, SpanStore

__all__ = ["SPAN_ID_META_KEY", "ProvenanceMiddleware", "ToolFacts"]

logger = logging.getLogger("mcp_ledger.provenance")

SPAN_ID_META_KEY = "mcp-ledger/span_id"
CONNECTION_ATTRIBUTES_KEY = "mcp-ledger.connection.attributes"  # what all of a connection's calls share
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True)
class ToolFacts:
    """What the span records about a tool besides its name (given by the server at start-up)."""

    group: str
    read_only: bool
    destructive: bool
    timeout: float | None = None  # the tool's own; None: the server's --call-timeout


_ids = random.Random()
_connection_prefix = ""
_connection_counter = itertools.count(1)
# (span id, trace id) pairs drawn ahead in one batch: a call takes one with a list pop instead of drawing
# and formatting 192 bits itself. ``list.pop`` is atomic, so threads never share a pair.
_ID_BATCH = 128
_id_pool: list[tuple[str, str]] = []


def _seed() -> None:
    """Fresh randomness per process: forked workers (uvicorn --workers) must not repeat each other's ids."""
    global _connection_prefix
    _ids.seed(secrets.randbits(128))
    _id_pool.clear()  # drawn by the parent: a forked worker would repeat them
    _connection_prefix = f"c-{os.getpid():x}{secrets.token_hex(3)}-"


def _draw_ids() -> tuple[str, str]:
    """A fresh (span id, trace id) pair, refilling the pool when it is empty."""
    text = f"{_ids.getrandbits(192 * _ID_BATCH):0{48 * _ID_BATCH}x}"
    _id_pool.extend([(text[i : i + 16], text[i + 16 : i + 48]) for i in range(48, len(text), 48)])
    return text[:16], text[16:48]


_seed()
os.register_at_fork(after_in_child=_seed)


def new_connection_id() -> str:
    """Unique per process without a syscall: a random per-process prefix and a counter."""
    return f"{_connection_prefix}{next(_connection_counter):x}"


def _error_result(text: str) -> dict[str, Any]:
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


class _OpenCall(SpanBuilder):
    """One ``tools/call`` span being built, and its OpenTelemetry twin while one is being exported."""

    __slots__ = ("otel", "otel_token")

    def __init__(
        self, ctx: ServerRequestContext[Any, Any], middleware: ProvenanceMiddleware, tracer: otel_trace.Tracer | None
    ) -> None:
        start_ns = time.time_ns()
        params = ctx.params or {}
        raw_name = params.get("name")
        # A tool name is caller input like any other; it must not carry a secret into the ledger (the names
        # of the tools served are known to be clean).
        if not isinstance(raw_name, str):
            tool = None
        elif raw_name in middleware.tools:
            tool = raw_name
        else:
            tool = _client_text(raw_name)
        SpanBuilder.__init__(self, start_ns, tool, params.get("arguments"), middleware.call_attributes(ctx, tool))
        self.otel: otel_trace.Span | None = None
        self.otel_token: object = None
        meta = ctx.meta
        if tracer is None or not self._start_otel(tracer, meta):
            # Ids need to be unique, not secret: a PRNG seeded from the OS (as OpenTelemetry SDKs do) costs
            # no syscall on the hot path.
            try:
                self.span_id, trace_id = _id_pool.pop()
            except IndexError:
                self.span_id, trace_id = _draw_ids()
            traceparent = meta.get("traceparent") if meta else None
            if traceparent is None:
                self.trace_id = trace_id
            else:
                self.trace_id, self.parent_span_id = _trace_parent(traceparent, trace_id)

    def _start_otel(self, tracer: otel_trace.Tracer, meta: Mapping[str, Any] | None) -> bool:
        """Open the OpenTelemetry span for this call and take its ids; False when it has none (no-op tracer)."""
        otel = tracer.start_span(
            self.name,
            context=_otel_parent(meta),
            kind=otel_trace.SpanKind.SERVER,
            attributes=self.attributes,
            start_time=self.start_ns,
            record_exception=False,  # an exception's text may hold a secret; the span says what it may
            set_status_on_exception=False,
        )
        self.otel = otel
        self.otel_token = otel_context.attach(otel_trace.set_span_in_context(otel))
        context = otel.get_span_context()
        if not context.is_valid:
            return False
        self.span_id = f"{context.span_id:016x}"
        self.trace_id = f"{context.trace_id:032x}"
        parent = otel_parent(otel)
        self.parent_span_id = f"{parent.span_id:016x}" if parent is not None and parent.is_valid else None
        return True

    def end_otel(self, record: dict[str, Any] | None) -> None:
        """End the OpenTelemetry span saying what the ledger's record says (attributes and status)."""
        otel, self.otel = self.otel, None
        if otel is None:
            return
        try:
            if record is None:  # the record could not be built; the span says how the call ended
                otel.set_attributes(self.attributes)
                if self.error_type is not None:
                    otel.set_attribute(ERROR_TYPE, self.error_type)
                    otel.set_status(otel_trace.StatusCode.ERROR, self.message)
                otel.end()
                return
            # Only what changed since the span started (the error type, a session added later, ...): each
            # attribute set on an SDK span takes its lock and validates the value.
            started = getattr(otel, "attributes", None) or {}
            changed = {key: value for key, value in record["attributes"].items() if started.get(key) != value}
            if changed:
                otel.set_attributes(changed)
            status = record["status"]
            if status["code"] == "ERROR":
                otel.set_status(otel_trace.StatusCode.ERROR, status["message"])
            otel.end(end_time=int(record["end_ns"]))  # the ledger's end, not the end of its write
        finally:
            otel_context.detach(self.otel_token)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _RejectedCall:
    """The part of a request context a span reads, for a call refused before the SDK parsed it."""

    params: dict[str, Any]
    request_id: str | int | None
    session: None = None
    protocol_version: None = None

    @property
    def meta(self) -> Mapping[str, Any] | None:
        meta = self.params.get("_meta")
        return meta if isinstance(meta, dict) else None


def _trace_parent(traceparent: Any, new_trace_id: str) -> tuple[str, str | None]:
    """The caller's trace id and parent span id from a W3C ``traceparent``, or a new trace."""
    if isinstance(traceparent, str):
        match = _TRACEPARENT_RE.match(traceparent.strip())
        if match and match[1] != "0" * 32 and match[2] != "0" * 16:
            return match[1], match[2]
    return new_trace_id, None


def _otel_parent(meta: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The caller's trace context from ``_meta`` (W3C ``traceparent``), or None to use the ambient one."""
    if not meta or "traceparent" not in meta:
        return None
    try:
        context = otel_propagate.extract(meta)
    except (TypeError, ValueError):
        return None
    return context if otel_trace.get_current_span(context).get_span_context().is_valid else None


_tracers: dict[tuple[int, str], otel_trace.Tracer] = {}


def _tracer(version: str) -> otel_trace.Tracer | None:
    """The tracer of the installed OpenTelemetry provider, or None when there is none."""
    if no_tracer_provider():
        return None
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, otel_trace.ProxyTracerProvider):
        return None
    key = (id(provider), version)
    tracer = _tracers.get(key)
    if tracer is None:
        _tracers.clear()  # a new provider replaces the old one
        tracer = _tracers[key] = provider.get_tracer("mcp-ledger", version)
    return tracer


# Redaction is linear in the payload but not free (up to tens of ms per MB of adversarial text): above this
# size the span's redaction and digests are computed in a worker thread instead of on the event loop.
_OFF_LOOP_BYTES = 64 * 1024

# Text a client chose (its name and version, an unknown tool's name, a request id) goes into every
# span of the call or connection: bounded, or a 1 MB client name would write 1 MB per line.
_CLIENT_TEXT_BYTES = 256
_CLIENT_TEXT_SCAN = 16 * _CLIENT_TEXT_BYTES
TRUNCATED_MARK = "…[truncated]"


def _client_text(text: str) -> str:
    """Client-supplied text as an attribute: redacted, then cut to 256 bytes and marked if longer."""
    return _bounded_client_text(text[: _CLIENT_TEXT_SCAN + 1])


@functools.lru_cache(maxsize=256)
def _bounded_client_text(text: str) -> str:
    # Redacted before it is cut (a cut secret may no longer look like one); what lies past the scanned
    # prefix is cut off anyway.
    redacted = redact_text(text)[0]
    encoded = redacted.encode()
    if len(encoded) <= _CLIENT_TEXT_BYTES and len(text) <= _CLIENT_TEXT_SCAN:
        return redacted
    return encoded[:_CLIENT_TEXT_BYTES].decode(errors="ignore") + TRUNCATED_MARK


def _as_dict(result: HandlerResult) -> dict[str, Any] | None:
    """The wire dict; the SDK builds a fresh one per call, so it is used (and given _meta) in place."""
    if result is None or isinstance(result, dict):
        return result
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


def _first_text(result: dict[str, Any]) -> str | None:
    for block in result.get("content") or ():
        if isinstance(block, dict) and block.get("type") == "text":
            return str(block.get("text", ""))
    return None


async def _redact_error_text(result: dict[str, Any]) -> None:
    """An error text may quote what an upstream said; it must not carry a secret to the agent.

    A long one is redacted in a worker thread, like a large payload (see ``_OFF_LOOP_BYTES``).
    """
    content = result.get("content")
    if not isinstance(content, list):
        return
    if sum(len(str(block.get("text", ""))) for block in content if isinstance(block, dict)) > _OFF_LOOP_BYTES:
        await anyio.to_thread.run_sync(_redact_error_blocks, content)
    else:
        _redact_error_blocks(content)


def _redact_error_blocks(content: list[Any]) -> None:
    for i, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "text":
            text, kinds = redact_text(str(block.get("text", "")))
            if kinds:
                content[i] = {**block, "text": text}


class _Deadlines:
    """Per-call timeouts on asyncio without a timer per call: one sweep cancels overdue calls.

    A cancel scope or ``asyncio.timeout`` per call costs several microseconds on the hot path; a dict
    insert does not. Calls end within one sweep period (at most 1 s) after their deadline.
    """

    def __init__(self) -> None:
        self.calls: dict[asyncio.Task[Any], float] = {}
        self.fired: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._period = 1.0

    def start(self, task: asyncio.Task[Any], timeout: float) -> None:
        self.calls[task] = time.monotonic() + timeout  # asyncio's loop clock, without the method call
        loop = task.get_loop()
        if loop is not self._loop:
            self._loop, self._timer = loop, None
        if self._timer is not None and timeout >= 4.0 and self._period == 1.0:
            return  # the common case: a sweep every second is already due
        period = min(1.0, max(0.01, timeout / 4))
        if self._timer is None:
            self._period = period
            self._timer = loop.call_later(self._period, self._sweep)
        elif period < self._period:  # a tool's own shorter timeout: later sweeps come sooner
            self._period = period

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """Forget the call; True when its deadline fired (the task's cancellation is then withdrawn)."""
        del self.calls[task]
        if task not in self.fired:
            return False
        self.fired.discard(task)
        task.uncancel()
        return True

    def _sweep(self) -> None:
        assert self._loop is not None
        now = time.monotonic()
        for task, at in list(self.calls.items()):
            if at <= now and task not in self.fired:
                self.fired.add(task)
                task.cancel("mcp-ledger: --call-timeout")
        self._timer = self._loop.call_later(self._period, self._sweep) if self.calls else None


class ProvenanceMiddleware(ServerMiddleware[Any]):
    """Record every ``tools/call`` as a span in the ledger (see the module docstring)."""

    def __init__(
        self,
        store: SpanStore,
        *,
        tools: Mapping[str, ToolFacts],
        transport: str | None = None,
        call_timeout: float | None = 120.0,
        preview_bytes: int = 1024,
        process_connection_id: str | None = None,
        server_version: str = "",
        tracing: ServerMiddleware[Any] | None = None,
        principal: Mapping[str, Any] | None = None,
        caller: Callable[[], Mapping[str, Any] | None] | None = None,
    ) -> None:
        """``tracing`` is the SDK's OpenTelemetry middleware this one replaces in the chain (see :meth:`install`).

        Who called: ``principal`` holds attributes every span of this server carries (a stdio server's OS
        user); ``caller`` returns the current request's (an authenticated HTTP caller), or None.

        What a failed write means for the call (refuse or allow) is the store's ``on_failure``.
        """
        self.store = store
        self.tools = tools
        self.transport = transport
        self.call_timeout = call_timeout
        self._own_timeouts: dict[str | None, float | None] = {
            name: facts.timeout for name, facts in tools.items() if facts.timeout is not None
        }
        self.preview_bytes = preview_bytes
        self.process_connection_id = process_connection_id
        self.server_version = server_version
        self.tracing = tracing
        self.principal = dict(principal) if principal else None
        self.caller = caller
        self._warned_unrecorded = False
        self._deadlines = _Deadlines()
        self._shared_attributes: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        self._client_attributes: dict[tuple[Any, ...], dict[str, Any]] = {}

    def install(self, chain: list[ServerMiddleware[Any]]) -> None:
        """Put this middleware first in a server's chain (``MCPServer.middleware``), in place of the SDK's tracing.

        It hands every other method to the SDK's OpenTelemetry middleware and makes the one span of a
        ``tools/call`` itself. Outermost, it also records calls that the SDK's request-state boundary
        rejects before any later middleware would see them.
        """
        for i, existing in enumerate(chain):
            if isinstance(existing, SDKTracingMiddleware):
                self.tracing = chain.pop(i)
                break
        chain.insert(0, self)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            if self.tracing is not None:
                return await self.tracing(ctx, call_next)
            return await call_next(ctx)
        span = _OpenCall(ctx, self, None if no_tracer_provider() else _tracer(self.server_version))
        token = current_call.set(span.facts)
        result: dict[str, Any] | None = None
        refusal: str | None = None
        try:
            refusal = self._refusal() if self.store.failure is not None else None
            if refusal is not None:
                result = _error_result(refusal)
                span.fail(RECORD_FAILED, refusal)
            else:
                timeout = self.call_timeout
                if self._own_timeouts:
                    timeout = self._own_timeouts.get(span.tool, timeout)
                task = current_asyncio_task() if timeout is not None else None
                if task is None or timeout is None:
                    result = await self._call_without_sweep(ctx, call_next, span, timeout)
                else:
                    # The common path, inline (a coroutine less per call): a deadline in the shared sweep.
                    self._deadlines.start(task, timeout)
                    try:
                        raw = await call_next(ctx)
                    except asyncio.CancelledError:
                        if not self._deadlines.stop(task):
                            raise
                        raw = self._timed_out(span, timeout)
                    except BaseException:
                        self._deadlines.stop(task)
                        raise
                    else:
                        if self._deadlines.stop(task):  # the tool swallowed the cancellation; the time was up
                            raw = self._timed_out(span, timeout)
                    result = raw if raw is None or isinstance(raw, dict) else _as_dict(raw)
                if result is not None and result.get("isError") is True and span.error_type is None:
                    await _redact_error_text(result)  # the tool's own error (a timeout's text is ours)
                    span.fail(TOOL_ERROR, _first_text(result))
        except MCPError as exc:
            span.fail(str(exc.error.code), exc.error.message)
            raise
        except ValidationError:
            # As the SDK answers it: pydantic's messages quote client input.
            span.fail(str(INVALID_PARAMS), "Invalid request parameters")
            raise
        except anyio.get_cancelled_exc_class():
            span.fail(CANCELLED, "the client cancelled the call")
            raise
        except Exception as exc:
            span.fail(type(exc).__qualname__, "internal error")
            raise
        finally:
            current_call.reset(token)
            try:
                if span.payload_bytes(result) > _OFF_LOOP_BYTES:
                    await self._prepare_off_loop(span, result)
            finally:
                seq = self._record(span, result)
        recorded = seq is not None
        if seq is not None and self.store.fsync_policy == "always":
            recorded = await self._wait_durable(seq)
        if result is None:
            return result
        if not recorded and refusal is None and self.store.on_failure == "refuse":
            result = _error_result(
                f"{CALL_RAN_UNRECORDED} in the ledger ({self.store.failure}); "
                "further calls are refused until the ledger is writable again"
            )
        meta = result.get("_meta")
        result["_meta"] = {**meta, SPAN_ID_META_KEY: span.span_id} if meta else {SPAN_ID_META_KEY: span.span_id}
        return result

    async def _call_without_sweep(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, span: _OpenCall, limit: float | None
    ) -> dict[str, Any] | None:
        """A call without a deadline, or outside an asyncio task (trio): a cancel scope of its own."""
        if limit is None:
            return _as_dict(await call_next(ctx))
        with anyio.move_on_after(limit) as scope:
            result = _as_dict(await call_next(ctx))
        return self._timed_out(span, limit) if scope.cancelled_caught else result

    async def record_rejected(
        self, *, request_id: str | int | None, params: Any, code: int, message: str, session_id: str | None = None
    ) -> str:
        """Record the one span of a ``tools/call`` the transport answered with a JSON-RPC error before the
        server saw it (a malformed envelope: see ``server._jsonrpc_guard``); returns its span id."""
        ctx = _RejectedCall(params if isinstance(params, dict) else {"arguments": params}, request_id)
        span = _OpenCall(ctx, self, _tracer(self.server_version))  # type: ignore[arg-type]  # reads only these fields
        if session_id:
            span.attributes["mcp.session.id"] = session_id[:256]
        span.fail(str(code), message)
        seq = self._record(span, None)
        if seq is not None and self.store.fsync_policy == "always":
            await self._wait_durable(seq)
        return span.span_id

    def _timed_out(self, span: _OpenCall, timeout: float) -> dict[str, Any]:
        source = "the tool's own timeout" if span.tool in self._own_timeouts else "--call-timeout"
        message = f"the call did not finish within {timeout:g} s ({source}) and was stopped"
        span.fail(TIMEOUT, message)
        return _error_result(message)

    def _refusal(self) -> str | None:
        if not self.store.failed or self.store.on_failure != "refuse":
            return None
        if self.store.recover():
            return None
        return (
            f"refused: the ledger cannot record calls ({self.store.failure}); no call runs until it is writable again"
        )

    async def _prepare_off_loop(self, span: _OpenCall, result: dict[str, Any] | None) -> None:
        """Redact and digest a large payload in a worker thread, so that one call never stalls the others.

        Shielded: the span must be written even when the call is being cancelled. Should the thread fail,
        :meth:`_record` does the work again on the loop and reports what fails there.
        """
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(span.prepare, result, self.preview_bytes)
        except Exception:
            span.digests = None

    async def _wait_durable(self, seq: int) -> bool:
        """fsync "always": the result waits until its span is on disk (shared fsync, worker thread)."""
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.store.wait_durable, seq)
        except RecordError:
            return self.store.on_failure == "allow"
        return True

    def _record(self, span: _OpenCall, result: dict[str, Any] | None) -> int | None:
        """Write the span, end its OpenTelemetry twin, and return its seq; never raises (None: not written).

        A record the store cannot write it holds, and decides what it says (see ``SpanStore.on_failure``);
        the OpenTelemetry span says the same.
        """
        record: dict[str, Any] | None = None
        seq: int | None = None
        try:
            if self.store.failure is not None and self.store.on_failure == "allow":
                self.store.recover()
            record = span.record(result, time.time_ns(), self.preview_bytes)
            seq = self.store.append(record)
        except RecordError:
            if self.store.on_failure == "allow" and not self._warned_unrecorded:
                self._warned_unrecorded = True
                logger.warning("ledger write failed; calls now run unrecorded (--on-record-failure allow)")
        except Exception:
            logger.exception("could not build the span for a tools/call")
        else:
            self._warned_unrecorded = False
        if span.otel is not None:
            span.end_otel(record)
        return seq

    def call_attributes(self, ctx: ServerRequestContext[Any, Any], tool: str | None) -> dict[str, Any]:
        shared_by_tool = self._shared_attributes.get((tool, ctx.protocol_version))
        if shared_by_tool is None:
            shared_by_tool = self._tool_attributes(tool, ctx.protocol_version)
        connection = session_connection(ctx.session)
        if connection is None:
            attributes = shared_by_tool.copy()
            attributes[CONNECTION] = self.process_connection_id or new_connection_id()
        else:
            state = connection.state
            of_connection = state.get(CONNECTION_ATTRIBUTES_KEY)
            if of_connection is None:  # a new connection (in the 2026 era: every request)
                of_connection = state[CONNECTION_ATTRIBUTES_KEY] = self._of_connection(connection)
            client, connection_id = of_connection
            attributes = {**shared_by_tool, **client}
            if connection_id is not None:  # else the client's attributes hold the process's
                attributes[CONNECTION] = connection_id
        if self.caller is not None:
            who = self.caller()
            if who:
                attributes.update(who)
        request_id = ctx.request_id
        if request_id is not None:
            attributes[REQUEST_ID] = str(request_id) if isinstance(request_id, int) else _client_text(str(request_id))
        return attributes

    def _of_connection(self, connection: Any) -> tuple[dict[str, Any], str | None]:
        """What a connection's calls share: its client's attributes and its own id (None: the process's, which
        the client's attributes hold)."""
        client = self._client_attributes_of(connection)
        if self.process_connection_id is not None:
            return client, None
        if connection.session_id:
            return client, f"s-{connection.session_id}"
        return client, new_connection_id()

    def _client_attributes_of(self, connection: Any) -> dict[str, Any]:
        """The session and client a connection's calls share, kept per client identity (bounded): the 2026
        protocol era builds a connection per request from its envelope, so its state would not keep them.
        A process that serves one client (stdio) has one connection id, which is kept here too."""
        info = connection.client_params.client_info if connection.client_params else None
        key: tuple[Any, ...] = (connection.session_id,)
        if info is not None:  # as much of each as _client_text reads: a key of bounded size
            key = (connection.session_id, info.name[: _CLIENT_TEXT_SCAN + 1], info.version[: _CLIENT_TEXT_SCAN + 1])
        shared = self._client_attributes.get(key)
        if shared is None:
            shared = {}
            if connection.session_id:
                shared[SESSION] = connection.session_id
            if info is not None:
                shared[CLIENT_NAME] = _client_text(info.name)
                shared[CLIENT_VERSION] = _client_text(info.version)
            if self.process_connection_id is not None:
                shared[CONNECTION] = self.process_connection_id
            if len(self._client_attributes) >= 1024:
                self._client_attributes.clear()
            self._client_attributes[key] = shared
        return shared

    def _tool_attributes(self, tool: str | None, protocol_version: str | None) -> dict[str, Any]:
        """The attributes every call of a tool shares (kept per served tool; a caller's unknown name is not)."""
        key = (tool, protocol_version)
        attributes: dict[str, Any] = {
            METHOD: "tools/call",
            OPERATION: "execute_tool",
            PROTOCOL_VERSION: protocol_version,
        }
        if tool is not None:
            attributes[TOOL] = tool
        facts = self.tools.get(tool) if tool is not None else None
        if facts is not None:
            attributes[GROUP] = facts.group
            attributes[READ_ONLY] = facts.read_only
            attributes[DESTRUCTIVE] = facts.destructive
        if self.transport is not None:
            attributes[TRANSPORT] = self.transport
        if self.principal:
            attributes.update(self.principal)
        if facts is not None and len(self._shared_attributes) < 4096:
            self._shared_attributes[key] = attributes
        return attributes

    @staticmethod
    def new_process_connection_id() -> str:
        """One id for a process that serves exactly one client (stdio)."""
        return f"c-{os.getpid():x}-{secrets.token_hex(4)}"
