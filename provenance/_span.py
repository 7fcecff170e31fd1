"""The span's schema: its attribute keys, how a record is built, summarised and indexed.

Every module that writes or reads a span names its keys from here. A record is built once, by
:meth:`SpanBuilder.record`, and stamped once, by the store (``v``, ``seq``, ``prev``). The keys are
OpenTelemetry's where one exists (semantic conventions for MCP and GenAI), so spans export to any
OTLP backend unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

import orjson
from orjson import OPT_SORT_KEYS, dumps

from mcp_ledger.provenance._annotate import CallFacts
from mcp_ledger.provenance._compat import SMALL_HASH_BYTES, small_sha256
from mcp_ledger.provenance._redact import (
    MAYBE_SECRET,
    canonical_json,
    redact_canonical,
    redact_payload,
    redact_text,
)

__all__ = [
    "CALL_RAN_UNRECORDED",
    "SpanBuilder",
    "index_row",
    "mark_unrecorded",
    "summarize_span",
]

# Attribute keys.
METHOD = "mcp.method.name"
OPERATION = "gen_ai.operation.name"
TOOL = "gen_ai.tool.name"
PROTOCOL_VERSION = "mcp.protocol.version"
REQUEST_ID = "jsonrpc.request.id"
SESSION = "mcp.session.id"
CLIENT_NAME = "mcp.client.name"
CLIENT_VERSION = "mcp.client.version"
TRANSPORT = "network.transport"
ERROR_TYPE = "error.type"
EXCEPTION_TYPE = "exception.type"
CONNECTION = "mcp-ledger.connection.id"
GROUP = "mcp-ledger.tool.group"
READ_ONLY = "mcp-ledger.tool.read_only"
DESTRUCTIVE = "mcp-ledger.tool.destructive"
UNTRUSTED_CONTENT = "mcp-ledger.untrusted_content"
ENDUSER_ID = "enduser.id"  # who called (the server's auth layer says who): the index's principal

# ``error.type`` values besides a JSON-RPC code and an exception's name.
TOOL_ERROR = "tool_error"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
RECORD_FAILED = "record_failed"

CALL_RAN_UNRECORDED = "the call ran but could not be recorded"
_MESSAGE_CHARS = 500
_MESSAGE_SCAN = 16 * 1024  # redacted before it is cut (a cut secret may not look like one), from this much


# A payload of many secrets, or of long key names, must not make a long line: the paths are bounded too.
_REDACTION_PATHS = 64
_PATH_CHARS = 256


def _digest(payload: Any, preview_bytes: int, canonical: bytes | None = None) -> dict[str, Any]:
    """Digest and bounded preview of the redacted payload; the digest covers the redacted form."""
    if canonical is not None and MAYBE_SECRET.search(canonical.lower()) is None:
        return _described(canonical, [], preview_bytes)  # nothing to redact (see ``redact_canonical``)
    canonical, paths = redact_canonical(payload, "$", canonical)
    if paths and (len(paths) > _REDACTION_PATHS or max(map(len, paths)) > _PATH_CHARS):
        paths = _bounded_paths(paths)
    return _described(canonical, paths, preview_bytes)


def _described(canonical: bytes, redactions: list[str], preview_bytes: int) -> dict[str, Any]:
    """A span's ``input`` / ``output``: the redacted canonical form's digest, size and bounded preview."""
    size = len(canonical)
    truncated = size > preview_bytes
    preview = canonical[:preview_bytes].decode("utf-8", errors="ignore") if truncated else canonical.decode()
    return {
        "sha256": (small_sha256 if size < SMALL_HASH_BYTES else sha256)(canonical).hexdigest(),
        "size": size,
        "preview": preview,
        "truncated": truncated,
        "redactions": redactions,
    }


def _bounded_paths(paths: list[str]) -> list[str]:
    """The first paths, each cut to a bounded length (marked ``…``), and how many more there were."""
    kept = [path if len(path) <= _PATH_CHARS else path[: _PATH_CHARS - 1] + "…" for path in paths[:_REDACTION_PATHS]]
    if len(paths) > _REDACTION_PATHS:
        kept.append(f"… and {len(paths) - _REDACTION_PATHS} more")
    return kept


class SpanBuilder:
    """One ``tools/call`` span being built: what is known when it opens, how it ended, then its record.

    The middleware fills it in (ids, attributes, arguments) and says how the call ended with
    :meth:`fail`; :meth:`record` makes the one dict that the store stamps and writes.
    """

    __slots__ = (
        "arguments",
        "attributes",
        "canonical",
        "digests",
        "error_type",
        "facts",
        "message",
        "parent_span_id",
        "span_id",
        "start_ns",
        "tool",
        "trace_id",
    )

    def __init__(self, start_ns: int, tool: str | None, arguments: Any, attributes: dict[str, Any]) -> None:
        self.start_ns = start_ns
        self.tool = tool
        self.arguments = arguments
        self.attributes = attributes
        self.facts = CallFacts()
        self.error_type: str | None = None
        self.message: str | None = None
        self.trace_id = ""
        self.span_id = ""
        self.parent_span_id: str | None = None
        self.canonical: tuple[bytes, bytes] | None = None
        self.digests: tuple[dict[str, Any], dict[str, Any], Any] | None = None

    @property
    def name(self) -> str:
        return f"tools/call {self.tool}" if self.tool else "tools/call"

    def fail(self, error_type: str, message: str | None) -> None:
        """The call ended as an error of ``error_type``; the message is redacted and bounded here."""
        self.error_type = error_type
        self.message = redact_text(message[:_MESSAGE_SCAN])[0][:_MESSAGE_CHARS] if message else None

    def payload_bytes(self, result: dict[str, Any] | None) -> int:
        """Serialise the input and output once (their digests reuse it) and return their size; 0 if they
        cannot be serialised (:meth:`record` then says why)."""
        arguments = self.arguments if self.arguments is not None else {}
        output = _output_of(result)
        try:
            try:  # canonical_json's fast path, inline (a key that is not a string takes its path)
                canonical = (dumps(arguments, option=OPT_SORT_KEYS), dumps(output, option=OPT_SORT_KEYS))
            except TypeError:
                canonical = (canonical_json(arguments), canonical_json(output))
        except Exception:
            return 0
        self.canonical = canonical
        return len(canonical[0]) + len(canonical[1])

    def prepare(self, result: dict[str, Any] | None, preview_bytes: int) -> None:
        """Redact and digest the input, output and upstream facts: all of a span's redaction work, which
        the middleware may hand to a worker thread for a large payload before :meth:`record`."""
        canonical = self.canonical
        # One look at both (the common case: neither may hold a secret); the newline between them keeps a
        # match from spanning the two. A match sends each to its own look.
        if canonical is not None and MAYBE_SECRET.search(b"\n".join(canonical).lower()) is None:
            canonical_in, canonical_out = canonical
            if max(len(canonical_in), len(canonical_out)) < SMALL_HASH_BYTES <= preview_bytes:
                # What _described makes, in one comprehension for the most common span (small payloads,
                # whole in their previews), instead of two calls to it: about 0.5 % of a no-op call in-process.
                digest_in, digest_out = [
                    {
                        "sha256": small_sha256(payload).hexdigest(),
                        "size": len(payload),
                        "preview": payload.decode(),
                        "truncated": False,
                        "redactions": [],
                    }
                    for payload in canonical
                ]
            else:
                digest_in = _described(canonical_in, [], preview_bytes)
                digest_out = _described(canonical_out, [], preview_bytes)
        else:
            given: tuple[bytes, bytes] | tuple[None, None] = canonical or (None, None)
            digest_in = _digest(_input_of(self.arguments), preview_bytes, given[0])
            digest_out = _digest(_output_of(result), preview_bytes, given[1])
        self.digests = (
            digest_in,
            digest_out,
            redact_payload(self.facts.upstream, "$")[0] if self.facts.upstream else {},
        )

    def record(self, result: dict[str, Any] | None, end_ns: int, preview_bytes: int) -> dict[str, Any]:
        """The span as the ledger stores it (the store adds ``v``, ``seq`` and ``prev``)."""
        attributes = self.attributes
        if self.error_type is not None:
            attributes[ERROR_TYPE] = self.error_type
        if self.facts.untrusted_content:
            attributes[UNTRUSTED_CONTENT] = True
        if self.facts.exception_type is not None:
            attributes[EXCEPTION_TYPE] = self.facts.exception_type
        if self.digests is None:
            self.prepare(result, preview_bytes)
        assert self.digests is not None
        digest_in, digest_out, upstream = self.digests
        return {
            "type": "span",
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": f"tools/call {self.tool}" if self.tool else "tools/call",
            "kind": "SERVER",
            "start_ns": str(self.start_ns),
            "end_ns": str(end_ns),
            "status": {"code": "ERROR" if self.error_type else "OK", "message": self.message},
            "attributes": attributes,
            "input": digest_in,
            "output": digest_out,
            "upstream": upstream,
        }


def _input_of(arguments: Any) -> Any:
    return arguments if arguments is not None else {}


def _output_of(result: dict[str, Any] | None) -> Any:
    """What the agent reads: the structured result, else the content blocks."""
    if result is None:
        return None
    output = result.get("structuredContent")
    return result.get("content") if output is None else output


def mark_unrecorded(record: dict[str, Any]) -> None:
    """What a held span says once it is written: its call was answered with an error because it was not recorded.

    A call refused outright already says so, with its own reason.
    """
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or attributes.get(ERROR_TYPE) == RECORD_FAILED:
        return
    record["status"] = {"code": "ERROR", "message": CALL_RAN_UNRECORDED}
    attributes[ERROR_TYPE] = RECORD_FAILED


def is_error(record: dict[str, Any]) -> bool:
    return (record.get("status") or {}).get("code") == "ERROR"


def index_row(seg_id: int, offset: int, line: bytes) -> tuple[Any, ...] | None:
    """The index's row for one ledger line: where it is and what questions filter on; None if not a span."""
    if b'"type":"span"' not in line:
        return None
    try:
        record = orjson.loads(line)
        attrs = record["attributes"]
        return (
            seg_id,
            offset,
            len(line),
            record["span_id"],
            record["trace_id"],
            attrs.get(TOOL),
            attrs.get(GROUP),
            1 if record["status"]["code"] == "ERROR" else 0,
            attrs.get(SESSION),
            attrs.get(CONNECTION),
            int(record["start_ns"]),
            int(record["end_ns"]),
            attrs.get(ENDUSER_ID),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None  # not a span, or damaged (e.g. attributes not an object): verify reports it; the index skips it


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC) + timedelta(microseconds=(ns % 1_000_000_000) // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarize_span(span: dict[str, Any]) -> dict[str, Any]:
    """A compact view of a span for listings: who, what, when, how it ended, what it touched."""
    attrs = span.get("attributes") or {}
    status = span.get("status") or {}
    start, end = int(span.get("start_ns", 0)), int(span.get("end_ns", 0))
    summary: dict[str, Any] = {
        "span_id": span.get("span_id"),
        "trace_id": span.get("trace_id"),
        "parent_span_id": span.get("parent_span_id"),
        "tool": attrs.get(TOOL),
        "group": attrs.get(GROUP),
        "status": status.get("code"),
        "start": _iso(start),
        "start_ns": str(start),
        "duration_ms": round((end - start) / 1e6, 3),
        "connection": attrs.get(CONNECTION),
        "client": attrs.get(CLIENT_NAME),
    }
    if ENDUSER_ID in attrs:
        summary["principal"] = attrs[ENDUSER_ID]
    if ERROR_TYPE in attrs:
        summary["error_type"] = attrs[ERROR_TYPE]
        summary["message"] = status.get("message")
    inp = span.get("input") or {}
    summary["input"] = inp.get("preview")
    if span.get("upstream"):
        summary["upstream"] = span["upstream"]
    return summary
