"""Redaction as tools use it: a text or a JSON-like payload with every secret replaced by ``REDACTED``.

The same rules guard every span; a tool uses them on what it shows an agent (error texts, labels,
environment listings) so that no secret reaches a result either.
"""

from mcp_ledger.provenance._redact import REDACTED, redact_payload, redact_text

__all__ = ["REDACTED", "redact_payload", "redact_text"]
