"""prov: the agent's view of the ledger — query spans, read a span or a trace, stats, errors, verify.

All read-only. These tools read the ledger directory this server writes to (every writer's chains,
not just this process's) through ``provenance.Ledger``, the reader the CLI and the resources use too.
Calls to them are recorded like any other call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_ledger.tools.group import ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.prov._backend import Ledger

__all__ = ["register"]


def register() -> ToolGroup[Ledger]:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from mcp_ledger.tools.prov import _backend, chains, errors, spans

    group = ToolGroup("prov", "The ledger of recorded tool calls: query, inspect, verify", connect=_backend.connect)
    for module in (spans, errors, chains):
        group.add_module(module)
    return group
