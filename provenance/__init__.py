"""Provenance for MCP tool calls: spans, redaction, the hash-chained store, queries and verification.

Tool groups import :func:`annotate`. The server records with :class:`SpanStore` and
:class:`ProvenanceMiddleware` and reads with :class:`Ledger`, the one reader of a ledger directory
(query, span, trace, stats, tail, verify) behind the CLI, the MCP resources and the prov tools.
"""

from provenance._annotate import annotate
from provenance._middleware import SPAN_ID_META_KEY, ProvenanceMiddleware, ToolFacts
from provenance._query import QueryError
from provenance._reader import Ledger
from provenance._redact import REDACTED, redact_payload, redact_text
from provenance._segments import default_ledger_dir
from provenance._store import RecordError, SpanStore

__all__ = [
    "REDACTED",
    "SPAN_ID_META_KEY",
    "Ledger",
    "ProvenanceMiddleware",
    "QueryError",
    "RecordError",
    "SpanStore",
    "ToolFacts",
    "annotate",
    "default_ledger_dir",
    "redact_payload",
    "redact_text",
]
