"""``annotate()``: how a tool adds upstream facts to the span of the call it is serving."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["annotate"]


class CallFacts:
    """Facts gathered during one call: the span's ``upstream`` and tool-set attributes."""

    __slots__ = ("exception_type", "untrusted_content", "upstream")

    def __init__(self) -> None:
        self.upstream: dict[str, Any] = {}
        self.untrusted_content = False
        self.exception_type: str | None = None

    def add(self, key: str, value: Any) -> None:
        if key not in self.upstream:
            self.upstream[key] = value
            return
        existing = self.upstream[key]
        if isinstance(existing, _Repeated):
            existing.append(value)
        else:
            self.upstream[key] = _Repeated([existing, value])


class _Repeated(list[Any]):
    """A key annotated more than once in one call (several upstream requests)."""


current_call: ContextVar[CallFacts | None] = ContextVar("mcp_ledger_call", default=None)


def annotate(**facts: Any) -> None:
    """Record upstream facts on the current call's span (request ids, object ids, digests, …).

    A key given twice in one call becomes a list. ``untrusted_content=True`` marks that the call
    returned content written by third parties (issue bodies, logs); ``exception_type`` names the
    exception that ended the call (the tool-group wrapper sets it). Outside a call this does nothing.
    Values are redacted before they are stored, like everything else in a span.
    """
    call = current_call.get()
    if call is None:
        return
    for key, value in facts.items():
        if key == "untrusted_content":
            call.untrusted_content = call.untrusted_content or bool(value)
        elif key == "exception_type":
            call.exception_type = str(value)
        elif value is not None:
            call.add(key, value)
