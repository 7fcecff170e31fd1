"""Provenance for MCP tool calls: spans, redaction, the hash-chained store, queries and verification.

Tool groups import :func:`annotate`. The server records with :class:`SpanStore` and
:class:`ProvenanceMiddleware` and reads with :class:`Ledger`, the one reader of a ledger directory
(query, span, trace, stats, tail, verify, signed checkpoints, inclusion proofs) behind the CLI, the MCP
resources and the prov tools. A :class:`CheckpointWriter` signs the store's chain with a key from
:mod:`provenance.keys`; :func:`verify_proof` checks an inclusion proof offline. Tools redact what they
show with :mod:`provenance.redaction`.
"""

from provenance import keys, redaction
from provenance._annotate import annotate
from provenance._checkpoint import CheckpointWriter
from provenance._middleware import SPAN_ID_META_KEY, ProvenanceMiddleware, ToolFacts
from provenance._proof import ProofError, verify_proof
from provenance._query import QueryError
from provenance._reader import Ledger
from provenance._segments import default_ledger_dir
from provenance._store import RecordError, SpanStore

__all__ = [
    "SPAN_ID_META_KEY",
    "CheckpointWriter",
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
