"""The two transports, with every inbound message screened by ``server._jsonrpc_guard`` first.

stdio replaces the SDK's ``stdio_server`` reading step (which turns a message it cannot parse into an
exception the server drops): lines are read as bytes, screened, and either handed to the server or
answered here, and a refused ``tools/call`` gets its span through
``ProvenanceMiddleware.record_rejected`` before the answer is written. As the SDK does, fd 0 and fd 1
point at the null device and stderr while serving, so stray output of handlers and child processes
cannot corrupt the wire. Streamable HTTP (stateful and stateless) gets an ASGI layer in front of the
SDK's app that does the same for the body of every POST to the MCP endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, JSONRPCError, JSONRPCRequest, JSONRPCResponse

from mcp_ledger.server._jsonrpc_guard import Ignored, Rejection, Repaired, error_reply, screen

if TYPE_CHECKING:
    from mcp_ledger.server.app import LedgerApp
    from mcp_ledger.server.auth import HttpAuth

__all__ = ["guarded_http_app", "http_app", "serve_stdio"]

logger = logging.getLogger("mcp_ledger.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _record(app: LedgerApp, rejection: Rejection, session_id: str | None = None) -> None:
    for call in rejection.calls:
        await app.middleware.record_rejected(
            request_id=call.request_id, params=call.params, code=call.code, message=call.message, session_id=session_id
        )


def _claim_stdio() -> tuple[BinaryIO, BinaryIO, Callable[[], None]]:
    """Private copies of fd 0 and 1 for the wire; fd 0 then reads the null device and fd 1 writes to stderr."""
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    def restore() -> None:
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)

    # closefd=False: a reader thread may still block on the descriptor after the transport ends.
    return os.fdopen(wire_in, "rb", closefd=False), os.fdopen(wire_out, "wb", closefd=False), restore


# A line longer than this is refused (and read past) on the asyncio pipe path; the SDK sets no limit.
_MAX_LINE = 64 * 1024 * 1024


class _Wire:
    """The two ends of the stdio wire: lines in, lines out."""

    async def lines(self) -> AsyncIterator[bytes]:
        raise NotImplementedError
        yield b""  # pragma: no cover

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Leave the descriptors as they were found."""


class _ThreadWire(_Wire):
    """Blocking file objects driven from worker threads (anyio): works on any descriptor and any backend,
    at the cost of a thread hand-off for every line read and written."""

    def __init__(self, wire_in: BinaryIO, wire_out: BinaryIO) -> None:
        self._in = anyio.wrap_file(wire_in)
        self._out = anyio.wrap_file(wire_out)

    async def lines(self) -> AsyncIterator[bytes]:
        async for line in self._in:
            yield line

    async def write(self, data: bytes) -> None:
        await self._out.write(data)
        await self._out.flush()


class _PipeWire(_Wire):
    """Pipes (or sockets) read and written by the asyncio event loop itself: no thread per line. The usual
    case, an MCP client that starts the server with pipes; about a third of the server's CPU time per
    call went to the thread hand-offs of :class:`_ThreadWire`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transports: tuple[asyncio.BaseTransport, asyncio.BaseTransport],
        fds: tuple[int, int],
    ) -> None:
        self._reader, self._writer, self._transports, self._fds = reader, writer, transports, fds

    @classmethod
    async def open(cls, wire_in: BinaryIO, wire_out: BinaryIO) -> _PipeWire | None:
        """None when the wire is not a pair of pipes or sockets of its own, or the loop is not asyncio's."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        fds = (wire_in.fileno(), wire_out.fileno())
        if not all(_is_pipe(fd) for fd in fds) or _shares_stderr(fds[1]):
            # A terminal or file, or stdout that is stderr's pipe too: non-blocking mode would leak to
            # other users of the same description (stderr's writers would see EAGAIN).
            return None
        reader = asyncio.StreamReader(limit=_MAX_LINE, loop=loop)
        try:
            incoming, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), wire_in)
            transport, protocol = await loop.connect_write_pipe(lambda: _WriteProtocol(loop), wire_out)
        except (OSError, ValueError, NotImplementedError):
            for fd in fds:
                os.set_blocking(fd, True)
            return None
        return cls(reader, asyncio.StreamWriter(transport, protocol, None, loop), (incoming, transport), fds)

    async def lines(self) -> AsyncIterator[bytes]:
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                if end.partial:
                    yield end.partial
                return
            except asyncio.LimitOverrunError:
                await self._skip_line()
                yield _TOO_LONG
                continue
            yield line

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as over:
                await self._reader.readexactly(over.consumed)
            except asyncio.IncompleteReadError:
                return

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def close(self) -> None:
        for transport in self._transports:  # the descriptors stay open: the files were opened closefd=False
            transport.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)


class _WriteProtocol(asyncio.streams.FlowControlMixin, asyncio.Protocol):
    """What ``asyncio.StreamWriter`` needs of a write pipe's protocol (drain's flow control)."""


# Not JSON: the guard answers it with -32700, as it would any line it cannot parse.
_TOO_LONG = b"\x00 message longer than 64 MiB\n"


def _is_pipe(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _shares_stderr(fd: int) -> bool:
    try:
        mine, theirs = os.fstat(fd), os.fstat(2)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


# How long requests still being served may take once the input has ended.
_FINISH_SECONDS = 10.0


class _InFlight:
    """Requests handed to the server and answers written, so the end of the input can wait for the answers."""

    def __init__(self) -> None:
        self.asked = 0
        self.answered = 0
        self._changed = anyio.Event()

    def answer(self) -> None:
        self.answered += 1
        self._changed.set()

    async def all_answered(self) -> None:
        while self.answered < self.asked:
            self._changed = anyio.Event()
            await self._changed.wait()


async def serve_stdio(app: LedgerApp) -> None:
    """Serve one client over stdin/stdout until stdin closes."""
    wire_in, wire_out, restore = _claim_stdio()
    wire: _Wire = await _PipeWire.open(wire_in, wire_out) or _ThreadWire(wire_in, wire_out)
    to_server: MemoryObjectSendStream[SessionMessage | Exception]
    from_client: MemoryObjectReceiveStream[SessionMessage | Exception]
    to_server, from_client = anyio.create_memory_object_stream(0)
    to_client: MemoryObjectSendStream[SessionMessage | bytes]
    outbox: MemoryObjectReceiveStream[SessionMessage | bytes]
    to_client, outbox = anyio.create_memory_object_stream(0)
    in_flight = _InFlight()

    async def read() -> None:
        async with to_server, to_client.clone() as answers:
            async for line in wire.lines():
                try:
                    screened = screen(line)
                except Exception:  # a bug here must cost one message, not the connection
                    logger.exception("stdio: could not screen a message")
                    screened = Rejection(error_reply(None, INTERNAL_ERROR, "Internal error: the message was not read"))
                if isinstance(screened, Rejection):
                    await _record(app, screened)
                    await answers.send(orjson.dumps(screened.reply))
                elif isinstance(screened, Ignored):
                    logger.debug("stdio: nothing to answer (%s)", screened.reason)
                else:
                    message = screened.message if isinstance(screened, Repaired) else screened
                    if isinstance(message, JSONRPCRequest):
                        in_flight.asked += 1
                    await to_server.send(SessionMessage(message))
            # The input ended (a client that hung up, or the end of a file of requests): what was asked is
            # answered before the server stops, for a while.
            with anyio.move_on_after(_FINISH_SECONDS):
                await in_flight.all_answered()

    async def write() -> None:
        async with outbox:
            async for item in outbox:
                if isinstance(item, SessionMessage):
                    answered = isinstance(item.message, JSONRPCResponse | JSONRPCError)
                    item = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
                    await wire.write(item + b"\n")
                    if answered:
                        in_flight.answer()
                        app.store.settle()  # while the client reads the answer
                else:
                    await wire.write(item + b"\n")

    lowlevel = _lowlevel_server(app)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            tasks.start_soon(write)
            async with to_client:
                await lowlevel.run(from_client, to_client, lowlevel.create_initialization_options())
    finally:
        wire.close()
        restore()


def _lowlevel_server(app: LedgerApp) -> Any:
    """The SDK's low-level server inside ``MCPServer`` (private in mcp 2.3; its public ``run_stdio_async``
    is what this module replaces). Pinned by tests/server/test_jsonrpc_guard.py."""
    return app.server._lowlevel_server


_MCP_PATH = "/mcp"
_MAX_BODY = 4 * 1024 * 1024  # the SDK's own default limit (DEFAULT_MAX_REQUEST_BODY_SIZE) applies after this


def http_app(app: LedgerApp, *, host: str, stateless: bool, auth: HttpAuth | None) -> ASGIApp:
    """What ``serve --transport http`` serves: authentication first (when configured: a stranger's request
    reaches nothing behind it), then the guard, then the SDK's streamable HTTP app."""
    inner = guarded_http_app(app, app.server.streamable_http_app(stateless_http=stateless, host=host))
    if auth is None:
        return inner
    from mcp_ledger.server.auth import require_auth

    return require_auth(auth, inner)


def guarded_http_app(app: LedgerApp, inner: ASGIApp) -> ASGIApp:
    """``inner`` (the SDK's streamable HTTP app) behind the guard: each POSTed JSON-RPC body is screened;
    a refused one is answered here with HTTP 400 and a JSON-RPC error, a repaired one passed on re-encoded."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != _MCP_PATH:
            await inner(scope, receive, send)
            return
        body, complete = await _read_body(receive, _MAX_BODY)
        if not complete:  # too big to screen: the SDK's limit answers it
            await inner(scope, _replay(body, receive, more=True), send)
            return
        screened = screen(body)
        if isinstance(screened, Rejection | Ignored):
            reply: Any = screened.reply if isinstance(screened, Rejection) else None
            if isinstance(screened, Rejection):
                await _record(app, screened, _header(scope, b"mcp-session-id"))
            else:  # HTTP answers every POST; a notification the server cannot take is refused as such
                reply = error_reply(None, INVALID_REQUEST, f"Invalid request: {screened.reason}")
            await _respond(send, 400, orjson.dumps(reply))
            return
        if isinstance(screened, Repaired):
            body = screened.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await inner(scope, _replay(body, receive), send)
        app.store.settle()  # the answer has gone out (the chain digest of its span, see SpanStore.settle)

    return guarded


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """A ``receive`` that first hands over the body already read, then the rest of the original stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
