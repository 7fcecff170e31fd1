"""What the tests of every group share: connecting a client, reading results, finding spans, reading the
ledger's files, and tool annotations as a client reads them. Group fixtures (a fake upstream, an engine)
live in each group's ``conftest.py`` and build on these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from mcp import Client
from mcp_types import ToolAnnotations

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp

__all__ = [
    "MCP_DEFAULT_HINTS",
    "call_error",
    "call_ok",
    "connected",
    "effective_hints",
    "last_span",
    "ledger_bytes",
    "ledger_text",
    "only_span",
    "result_text",
    "spans",
]

Where = Path | LedgerApp  # a ledger directory, or the app whose ledger it is


def _directory(where: Where) -> Path:
    return where.ledger_dir if isinstance(where, LedgerApp) else where


@asynccontextmanager
async def connected(app: LedgerApp, mode: Literal["auto", "legacy"] | str = "auto") -> AsyncIterator[Client]:
    """An in-process MCP client on ``app`` in either protocol era; the app is closed afterwards."""
    try:
        async with Client(app.server, mode=mode) as client:
            yield client
    finally:
        app.close()


def result_text(result: Any) -> str:
    """The text blocks of a tool result, as an agent reads them."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call_ok(client: Client, tool: str, arguments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Call ``tool``; it must succeed with a structured result, which is returned."""
    result = await client.call_tool(tool, arguments, **kwargs)
    assert not result.is_error, result_text(result)
    assert isinstance(result.structured_content, dict)
    return dict(result.structured_content)


async def call_error(client: Client, tool: str, arguments: dict[str, Any], **kwargs: Any) -> str:
    """Call ``tool``; it must fail, and its error text (without the SDK's prefix) is returned."""
    result = await client.call_tool(tool, arguments, **kwargs)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return result_text(result).removeprefix(f"Error executing tool {tool}: ")


def spans(where: Where, tool: str | None = None) -> list[dict[str, Any]]:
    """Every span on disk (read from the segments, no index), or those of one tool."""
    found = provenance.Ledger(_directory(where)).scan()
    return [s for s in found if s.get("type") == "span" and (tool is None or s["name"] == f"tools/call {tool}")]


def only_span(where: Where, tool: str) -> dict[str, Any]:
    found = spans(where, tool)
    assert len(found) == 1, [s["name"] for s in spans(where)]
    return found[0]


def last_span(where: Where, tool: str) -> dict[str, Any]:
    found = spans(where, tool)
    assert found, f"no span for {tool}"
    return found[-1]


def ledger_bytes(where: Where) -> bytes:
    """Every file under the ledger directory (segments, index, checkpoints), to look for what must not be there."""
    directory = _directory(where)
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def ledger_text(where: Where) -> str:
    return ledger_bytes(where).decode(errors="replace")


# What a client assumes for a hint a tool leaves out (MCP specification, ToolAnnotations).
MCP_DEFAULT_HINTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def effective_hints(annotations: ToolAnnotations | None) -> dict[str, Any]:
    """A tool's hints as a client reads them: the listed ones over MCP's defaults."""
    listed = annotations.model_dump(by_alias=True, exclude_none=True) if annotations is not None else {}
    return {name: listed.get(name, default) for name, default in MCP_DEFAULT_HINTS.items()}
