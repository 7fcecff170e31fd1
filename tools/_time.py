"""Time arguments of tools: what ``since`` / ``until`` accept everywhere in mcp-ledger.

ISO-8601 (a time without offset is UTC) or an age such as ``15m``, ``2h``, ``7d``: the grammar of
the ledger's own queries (``provenance.Ledger.parse_time``), so one text means one time in every tool.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools.group import InvalidArguments

__all__ = ["TIME_HELP", "time_arg", "time_ns"]

TIME_HELP = "ISO-8601 time (no offset = UTC) or an age such as 15m, 2h, 7d"


def time_arg(description: str = TIME_HELP) -> Any:
    """An optional, bounded time argument of a tool's input model."""
    return Field(default=None, description=description, max_length=64)


def time_ns(value: str, name: str) -> int:
    """Unix nanoseconds; :class:`InvalidArguments` naming the argument and the accepted forms otherwise."""
    try:
        return provenance.Ledger.parse_time(value, name=name)
    except provenance.QueryError as exc:
        raise InvalidArguments(str(exc)) from None
