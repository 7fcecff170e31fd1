"""Run a synchronous SDK call in a worker thread: progress goes back to the client, cancellation reaches it.

A blocking library (huggingface_hub, a local model) cannot be cancelled from the event loop. When
the call is cancelled (the client cancels, or the call's timeout fires) the call returns at once;
the thread is told through :attr:`WorkerCall.cancelled` (the function checks it between steps and
stops), the span records ``worker_thread: abandoned``, and a warning names the call — then another
when the thread finally ends. Nothing keeps running unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

__all__ = ["Abandoned", "WorkerCall", "abandoned_workers", "run_in_worker"]

logger = logging.getLogger("mcp_ledger.tools")

T = TypeVar("T")

_abandoned = 0
_abandoned_lock = threading.Lock()


def abandoned_workers() -> int:
    """Worker threads still running for calls that were cancelled."""
    return _abandoned


class Abandoned(Exception):
    """Raised in the worker thread by :meth:`WorkerCall.check` once the call was cancelled."""


class WorkerCall:
    """What the function in the worker thread sees of its call."""

    def __init__(self, ctx: Context | None, label: str) -> None:
        self.label = label
        self._ctx = ctx
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once nobody waits for the result any more: stop at the next safe point."""
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise :class:`Abandoned` when the call was cancelled (a convenient stop between steps)."""
        if self._cancelled.is_set():
            raise Abandoned(f"{self.label}: the call was cancelled")

    def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send an MCP progress notification (when the client asked for progress); never raises."""
        if self._ctx is None or self._cancelled.is_set():
            return
        import anyio.from_thread

        try:
            anyio.from_thread.run(self._ctx.report_progress, progress, total, message)
        except Exception:  # the loop is gone or the session closed: progress is best-effort
            logger.debug("%s: a progress notification was not sent", self.label, exc_info=True)

    def _abandon(self) -> None:
        self._cancelled.set()


async def run_in_worker(fn: Callable[[WorkerCall], T], *, label: str, ctx: Context | None = None) -> T:
    """``fn(call)`` in a worker thread; the event loop stays free and the call can be cancelled.

    ``label`` names the work in logs (never put arguments with secrets in it)."""
    global _abandoned
    call = WorkerCall(ctx, label)
    finished: float | None = None
    abandoned_at: float | None = None

    def run() -> T:
        nonlocal finished
        try:
            return fn(call)
        finally:
            with _abandoned_lock:
                finished = time.monotonic()
                if abandoned_at is not None:
                    _note_finished(label, finished - abandoned_at)

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        from mcp_ledger.provenance import annotate

        call._abandon()
        with _abandoned_lock:
            if finished is None:
                _abandoned += 1
                abandoned_at = time.monotonic()
        if abandoned_at is not None:
            annotate(worker_thread="abandoned")
            logger.warning("%s: cancelled; its worker thread was told to stop and is left to finish", label)
        raise


def _note_finished(label: str, seconds: float) -> None:
    """Called with the lock held."""
    global _abandoned
    _abandoned -= 1
    logger.warning("%s: the abandoned worker thread ended %.1f s after its call was cancelled", label, seconds)
