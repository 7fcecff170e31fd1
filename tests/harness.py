"""What tests of every group share: reading results, spans and tool annotations as a client would."""

from __future__ import annotations

from typing import Any

from mcp_types import ToolAnnotations

__all__ = ["MCP_DEFAULT_HINTS", "effective_hints"]

# What a client assumes for a hint a tool leaves out (MCP specification, ToolAnnotations).
MCP_DEFAULT_HINTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def effective_hints(annotations: ToolAnnotations | None) -> dict[str, Any]:
    """A tool's hints as a client reads them: the listed ones over MCP's defaults."""
    listed = annotations.model_dump(by_alias=True, exclude_none=True) if annotations is not None else {}
    return {name: listed.get(name, default) for name, default in MCP_DEFAULT_HINTS.items()}
