"""Provenance for MCP tool calls: spans, redaction, the hash-chained store, queries and verification.

Tool groups import :func:`annotate`. The server records with :class:`SpanStore` and
:class:`ProvenanceMiddleware` and reads with :class:`Ledger`, the one reader of a ledger directory
(query, span, trace, stats, tail, verify, signed checkpoints, inclusion proofs, export) behind the CLI, the MCP
resources and the prov tools. A :class:`CheckpointWriter` signs the store's chain with a key from
:mod:`provenance.keys`; :func:`verify_proof` checks an inclusion proof offline. Tools redact what they
show with :mod:`provenance.redaction`.
"""

from mcp_ledger.provenance import keys, redaction
from mcp_ledger.provenance._annotate import annotate
from mcp_ledger.provenance._checkpoint import CheckpointWriter
from mcp_ledger.provenance._export import ExportError
from mcp_ledger.provenance._middleware import SPAN_ID_META_KEY, ProvenanceMiddleware, ToolFacts
from mcp_ledger.provenance._proof import ProofError, verify_proof
from mcp_ledger.provenance._query import QueryError
from mcp_ledger.provenance._reader import Ledger
from mcp_ledger.provenance._segments import default_ledger_dir
from mcp_ledger.provenance._store import RecordError, SpanStore

__all__ = [
    "SPAN_ID_META_KEY",
    "CheckpointWriter",
    "ExportError",
    "Ledger",
    "ProofError",
    "ProvenanceMiddleware",
    "QueryError",
    "RecordError",
    "SpanStore",
    "ToolFacts",
    "annotate",
    "default_ledger_dir",
    "keys",
    "redaction",
    "verify_proof",
]
