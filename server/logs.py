"""Logging to stderr only, through a formatter that redacts secrets from every line it writes.

The SDK logs tracebacks of failed tools (``logger.exception``), and a traceback may quote an
exception message that carries a credential: the whole formatted text, traceback included, is
redacted. ``MCPServer()`` installs its own handler through ``logging.basicConfig``; ours replace it.
"""

from __future__ import annotations

import logging
import sys

from mcp_ledger.provenance.redaction import redact_text

__all__ = ["RedactingFormatter", "configure_logging"]


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))[0]

    def formatException(self, ei: object) -> str:  # noqa: N802 - logging's name
        return redact_text(super().formatException(ei))[0]  # type: ignore[arg-type]


def configure_logging(level: str = "WARNING") -> None:
    """One stderr handler on the root logger, redacting; every other handler gets the formatter too."""
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            for other in logger.handlers:
                other.setFormatter(formatter)
    logging.captureWarnings(True)
