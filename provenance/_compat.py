"""Every private name of the MCP SDK, OpenTelemetry and asyncio that provenance relies on, in one place.

Each is an assumption about another project's internals, made because the public way costs too much
on every call or does not exist yet (mcp 2.3 calls its middleware hook provisional). Every one is
pinned by a test in ``tests/provenance/test_compat.py`` that names the assumption, so an upgrade
that breaks one fails there rather than in a served call.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server._otel import OpenTelemetryMiddleware as SDKTracingMiddleware  # not exported by mcp 2.3
from opentelemetry import trace as otel_trace

if TYPE_CHECKING:
    from mcp.server.connection import Connection

__all__ = [
    "SDKTracingMiddleware",
    "current_asyncio_task",
    "no_tracer_provider",
    "otel_parent",
    "session_connection",
    "small_sha256",
]


def session_connection(session: Any) -> Connection | None:
    """The per-client ``Connection`` behind a ``ServerSession`` (the middleware's context has no public way to it).

    Its ``state`` holds what every call of one connection shares; None when a session has none.
    """
    return getattr(session, "_connection", None)


# get_tracer_provider() looks the environment up on every call while no provider is set (0.5 µs a call);
# the variable it looks for is one a process is started with.
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_NOT_KNOWN = object()


def no_tracer_provider() -> bool:
    """True when no OpenTelemetry tracer provider is installed (the default).

    The API keeps the installed provider in the module global ``_TRACER_PROVIDER``, read here directly;
    when that name is gone this answers False and the caller asks the public API instead.
    """
    return getattr(otel_trace, "_TRACER_PROVIDER", _NOT_KNOWN) is None and not _PROVIDER_FROM_ENV


def otel_parent(span: otel_trace.Span) -> otel_trace.SpanContext | None:
    """The parent of a span the SDK started: its ``Span`` has ``parent``; the API's does not promise it."""
    parent = getattr(span, "parent", None)
    return parent if isinstance(parent, otel_trace.SpanContext) else None


def _asyncio_current_task() -> asyncio.Task[Any] | None:
    """The current asyncio task, or None on another event loop (trio) or outside one."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


# On Python 3.11, ``asyncio.current_task()`` (through ``get_running_loop``) makes a ``getpid`` system
# call to notice a fork; inside a busy server that one call cost about 4 µs, a quarter of what the
# whole span costs. The running loop of each thread is remembered instead, and asyncio's own table of
# each loop's current task (``asyncio.tasks._current_tasks``) is read directly; a loop's thread is its
# private ``_thread_id``. A remembered loop that is not running has no entry there, and one that now
# runs in another thread fails the thread check, so the slow path runs again; a forked child forgets
# them all. (3.12 dropped the system call.)
_loop_of_thread: dict[int, asyncio.AbstractEventLoop] = {}
_CURRENT_TASKS: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = getattr(
    asyncio.tasks, "_current_tasks", None
)


def _asyncio_task_311() -> asyncio.Task[Any] | None:
    assert _CURRENT_TASKS is not None
    thread = threading.get_ident()
    loop = _loop_of_thread.get(thread)
    task = _CURRENT_TASKS.get(loop) if loop is not None and getattr(loop, "_thread_id", None) == thread else None
    if task is None:
        task = _asyncio_current_task()
        if task is not None:
            _loop_of_thread[thread] = task.get_loop()
    return task


current_asyncio_task = _asyncio_current_task
if sys.version_info < (3, 12) and isinstance(_CURRENT_TASKS, dict):
    current_asyncio_task = _asyncio_task_311
    os.register_at_fork(after_in_child=_loop_of_thread.clear)


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before), the one hashlib falls back to."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


# hashlib's SHA-256 is OpenSSL's: the fastest per byte, but each call goes through OpenSSL's generic digest
# layer (a context allocated, the provider's implementation looked up, initialised, freed), which in a
# server whose caches are cold when a request arrives costs several µs before the first byte. CPython's
# own implementation is a few small functions: for a span's small payloads (most tool arguments) it is
# the cheaper one; per byte it is about five times slower, hence the bound.
small_sha256 = _builtin_sha256()
SMALL_HASH_BYTES = 256
