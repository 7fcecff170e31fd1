"""Provenance for MCP tool calls: spans, redaction, the hash-chained store, queries and verification.

Tool groups import only :func:`annotate`. The server uses the rest.
"""

from provenance._annotate import annotate
from provenance._index import LedgerIndex, open_index, rebuild_index
from provenance._middleware import SPAN_ID_META_KEY, ProvenanceMiddleware, ToolFacts
from provenance._query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    QueryError,
    SpanFilter,
    SpanPage,
    get_span,
    get_trace,
    iter_spans,
    parse_limit,
    parse_time,
    query_spans,
    span_stats,
    tail_spans,
)
from provenance._redact import REDACTED, redact_env_values, redact_payload, redact_text
from provenance._segments import default_ledger_dir, list_chains, recover_torn_tails
from provenance._span import summarize_span
from provenance._store import FsyncPolicy, RecordError, SpanStore
from provenance._verify import ChainFailure, ChainReport, VerifyReport, verify

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REDACTED",
    "SPAN_ID_META_KEY",
    "ChainFailure",
    "ChainReport",
    "FsyncPolicy",
    "LedgerIndex",
    "ProvenanceMiddleware",
    "QueryError",
    "RecordError",
    "SpanFilter",
    "SpanPage",
    "SpanStore",
    "ToolFacts",
    "VerifyReport",
    "annotate",
    "default_ledger_dir",
    "get_span",
    "get_trace",
    "iter_spans",
    "list_chains",
    "open_index",
    "parse_limit",
    "parse_time",
    "query_spans",
    "rebuild_index",
    "recover_torn_tails",
    "redact_env_values",
    "redact_payload",
    "redact_text",
    "span_stats",
    "summarize_span",
    "tail_spans",
    "verify",
]
