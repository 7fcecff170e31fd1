"""One JSON-RPC answer for every message a client sends, however it is malformed.

The SDK's transports parse a message with one call (``jsonrpc_message_adapter.validate_json``); when
that fails, stdio hands the server a bare exception that it only logs at DEBUG, so the request
vanishes: no answer, no span, the client waits for its own timeout. That happens to a line that is
not JSON, to valid JSON that is not a JSON-RPC 2.0 message (``"jsonrpc": "1.0"``, a batch,
``params`` that is a list, an ``id`` that is an object), to a message nested deeper than the
parser's limit, and to a string holding a lone UTF-16 surrogate (what ``JSON.stringify`` emits for
a string cut inside an emoji). Over HTTP the SDK answers most of these, but with -32602 for every
shape, the parser's text (with the rejected input) as the message, and no span.

``screen`` runs the SDK's own parse first (the common case costs nothing extra) and only diagnoses a
message that fails it:

- not JSON: -32700, ``id`` null; a blank line is not a message and is skipped;
- not a JSON-RPC 2.0 request: -32600 (``jsonrpc`` not "2.0", ``id`` not a string or integer,
  ``method`` not a string, not an object); a batch: one -32600 per element owed an answer (MCP has
  no batches since 2025-06-18), or a single -32600 when none is;
- ``params`` not an object, a message nested deeper than ``MAX_DEPTH`` levels (the SDK parser's
  limit, counting the message object itself, so about 198 levels inside ``arguments``), a number of
  more than 4300 digits: -32602 with the request's id;
- a lone surrogate is replaced by U+FFFD, as the transport already does with bytes that are not
  UTF-8, and the message is served: the caller's text arrives as one character less precise rather
  than refused for something its own JSON encoder did.

Notifications (no ``id``) are never answered, as JSON-RPC requires: a malformed one is dropped with a
DEBUG log line. Each rejected ``tools/call`` is returned as a ``RejectedCall`` for the caller to
record as a span. Upstream (modelcontextprotocol/python-sdk): the stdio reader should answer parse
and envelope errors itself instead of passing an exception the server drops, and the legacy HTTP
transport should answer -32600 (not -32602) for envelope errors without quoting the input.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    JSONRPCMessage,
    JSONRPCNotification,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

__all__ = ["MAX_DEPTH", "Ignored", "RejectedCall", "Rejection", "Repaired", "error_reply", "screen"]

logger = logging.getLogger("mcp_ledger.server")

# pydantic-core's JSON parser (jiter) refuses deeper input; pinned by tests/server/test_jsonrpc_guard.py.
MAX_DEPTH = 201
_MAX_DIGITS = 4300  # Python's int() limit for decimal strings (sys.get_int_max_str_digits), and jiter's
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


@dataclass(frozen=True)
class RejectedCall:
    """A ``tools/call`` answered with an error before the server saw it: it still gets its span."""

    request_id: str | int | None
    params: Any
    code: int
    message: str


@dataclass(frozen=True)
class Rejection:
    """The answer to send (an error object, or a list of them for a batch) and the calls to record."""

    reply: dict[str, Any] | list[dict[str, Any]]
    calls: list[RejectedCall] = field(default_factory=list)


@dataclass(frozen=True)
class Repaired:
    """A message the SDK's parser refused that the guard could serve (lone surrogates replaced)."""

    message: JSONRPCMessage


@dataclass(frozen=True)
class Ignored:
    """Nothing to answer: a blank line, a malformed notification or a malformed response from the client."""

    reason: str


class _HugeNumber:
    """Stands in for an integer literal beyond _MAX_DIGITS (parsing it would raise)."""


_HUGE = _HugeNumber()


class _Refused(Exception):
    """Why a message is refused: its JSON-RPC error code and a message that names no input value."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


def screen(raw: bytes | str) -> JSONRPCMessage | Repaired | Rejection | Ignored:
    """The message to serve as sent or repaired, or what to answer instead (see the module docstring)."""
    try:
        message = jsonrpc_message_adapter.validate_json(raw, by_name=False)
    except ValidationError:
        return _diagnose(raw)
    # The SDK reads an object whose id is not a string or integer as a notification (the model ignores it).
    if isinstance(message, JSONRPCNotification) and _mentions_id(raw):
        return _diagnose(raw)
    return message


def _mentions_id(raw: bytes | str) -> bool:
    return b'"id"' in raw if isinstance(raw, bytes) else '"id"' in raw


def error_reply(request_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _diagnose(raw: bytes | str) -> Repaired | Rejection | Ignored:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if not text.strip():
        return Ignored("blank line")
    depth, shallow = _skim(text)
    if depth > MAX_DEPTH:
        try:  # only to learn the id and the method: the deep parts are cut to null
            value = json.loads(shallow, parse_int=_int)
        except (ValueError, RecursionError):
            return _parse_error()
        message = f"Invalid params: the message is nested deeper than {MAX_DEPTH} levels; flatten the arguments"
        value = _repaired(value, [])
        params = value.get("params") if isinstance(value, dict) else None
        named = {k: v for k, v in params.items() if k != "arguments"} if isinstance(params, dict) else None
        return _refuse(value, _Refused(INVALID_PARAMS, message), params=named)  # the cut arguments are not recorded
    try:
        value = json.loads(text, parse_int=_int)
    except (ValueError, RecursionError):
        return _parse_error()
    if isinstance(value, list):
        return _batch(value)
    return _single(value)


def _parse_error() -> Rejection:
    return Rejection(error_reply(None, PARSE_ERROR, "Parse error: the message is not valid JSON"))


def _single(value: Any) -> Repaired | Rejection | Ignored:
    huge: list[bool] = []
    value = _repaired(value, huge)
    try:
        _check_envelope(value)
        if huge:
            raise _Refused(INVALID_PARAMS, f"Invalid params: a number has more than {_MAX_DIGITS} digits")
    except _Refused as refusal:
        return _refuse(value, refusal)
    try:
        return Repaired(jsonrpc_message_adapter.validate_python(value, by_name=False))
    except ValidationError:
        return _refuse(value, _Refused(INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 request"))


def _check_envelope(value: Any) -> None:
    """Raise what is wrong with a message, in the order a client can fix it."""
    if not isinstance(value, dict):
        raise _Refused(INVALID_REQUEST, "Invalid request: a JSON-RPC message is a JSON object")
    if value.get("jsonrpc") != "2.0":
        raise _Refused(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')
    if "id" in value and not _valid_id(value["id"]):
        raise _Refused(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')
    if "method" in value and not isinstance(value["method"], str):
        raise _Refused(INVALID_REQUEST, 'Invalid request: "method" must be a string')
    if "method" not in value and not ("result" in value or "error" in value):
        raise _Refused(INVALID_REQUEST, 'Invalid request: "method" is missing')
    if value.get("params") is not None and not isinstance(value["params"], dict):
        raise _Refused(INVALID_PARAMS, 'Invalid params: "params" must be an object')


def _refuse(value: Any, refusal: _Refused, **override: Any) -> Rejection | Ignored:
    """Answer a refused message with its id when it has a usable one; notifications and responses get none."""
    if not isinstance(value, dict):
        return Rejection(error_reply(None, refusal.code, refusal.message))
    if "method" not in value and ("result" in value or "error" in value):
        logger.debug("dropped a malformed response from the client: %s", refusal.message)
        return Ignored("malformed response")
    if "id" not in value and value.get("jsonrpc") == "2.0" and isinstance(value.get("method"), str):
        logger.debug("dropped a malformed notification: %s", refusal.message)
        return Ignored("malformed notification")
    request_id = value.get("id") if _valid_id(value.get("id")) else None
    calls = []
    if value.get("method") == "tools/call":
        params = override["params"] if "params" in override else value.get("params")
        calls.append(RejectedCall(request_id, params, refusal.code, refusal.message))
    return Rejection(error_reply(request_id, refusal.code, refusal.message), calls)


def _batch(values: list[Any]) -> Rejection:
    message = "Invalid request: batches are not supported (MCP has none since 2025-06-18); send one message at a time"
    replies: list[dict[str, Any]] = []
    calls: list[RejectedCall] = []
    for value in _repaired(values, []):
        outcome = _refuse(value, _Refused(INVALID_REQUEST, message))
        if isinstance(outcome, Rejection):
            assert isinstance(outcome.reply, dict)
            replies.append(outcome.reply)
            calls.extend(outcome.calls)
    if not replies:  # an empty batch, or one of notifications only: still told once
        return Rejection(error_reply(None, INVALID_REQUEST, message))
    return Rejection(replies, calls)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _int(digits: str) -> int | _HugeNumber:
    return int(digits) if len(digits.lstrip("-")) <= _MAX_DIGITS else _HUGE


def _repaired(value: Any, huge: list[bool]) -> Any:
    """Lone surrogates replaced by U+FFFD, a number beyond _MAX_DIGITS by null (noted in ``huge``).

    Recursive: the depth is at most MAX_DEPTH (or 9 for a skimmed message)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_repaired(k, huge): _repaired(v, huge) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v, huge) for v in value]
    if value is _HUGE:
        huge.append(True)
        return None
    return value


def _skim(text: str) -> tuple[int, str]:
    """The deepest nesting in ``text``, and ``text`` with every container deeper than 8 levels cut to null.

    Iterative and linear, for input far deeper than a recursive parser survives; strings are skipped
    whole (an unterminated one ends the scan)."""
    depth = deepest = 0
    cut_from: int | None = None
    pieces: list[str] = []
    kept = 0
    for token in _TOKEN.finditer(text):
        char = token.group()[0]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth == 9 and cut_from is None:
                cut_from = token.start()
        else:
            if depth == 9 and cut_from is not None:
                pieces.append(text[kept:cut_from])
                pieces.append("null")
                kept, cut_from = token.end(), None
            depth -= 1
    pieces.append(text[kept:])
    return deepest, "".join(pieces)
