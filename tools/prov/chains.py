"""The ledger's integrity: verify every hash chain."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from pydantic import Field

from tools.group import ToolArgs, ToolModel, tool
from tools.prov._backend import Ledger


class VerifyArgs(ToolArgs):
    pass


class Verification(ToolModel):
    ok: bool = Field(description="True when every chain is intact")
    chains: int
    spans: int
    lines: int
    failures: list[dict[str, Any]] = Field(description="Per broken chain: file, line and what failed")
    torn_files: list[str] = Field(description="Torn tails of crashed writers that were set aside")


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_verify(args: VerifyArgs, ledger: Ledger, ctx: Context) -> Verification:
    """Check that the ledger is intact: every line parses, seq has no gaps, every hash link matches."""
    report = await ledger.read(lambda reader: reader.verify())
    return Verification(**report.as_dict())
