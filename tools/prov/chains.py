"""The ledger's integrity: verify every hash chain."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools.group import ToolArgs, ToolFailure, ToolModel, tool
from mcp_ledger.tools.prov._backend import Ledger


class VerifyArgs(ToolArgs):
    public_key: str | None = Field(
        default=None,
        description="Also check the signed checkpoints (each chain's tail) with this key, as `mcp-ledger key show` "
        "prints it",
        pattern=r"^ed25519:[A-Za-z0-9+/]{43}=$",
    )


class Verification(ToolModel):
    ok: bool = Field(description="True when every chain is intact")
    chains: int
    spans: int
    lines: int
    failures: list[dict[str, Any]] = Field(description="Per broken chain: file, line and what failed")
    torn_files: list[str] = Field(description="Torn tails of crashed writers that were set aside")
    checkpoints: dict[str, Any] | None = Field(
        default=None,
        description="With public_key: checkpoints checked, chains covered, chains without any, and what failed",
    )


@tool(read_only=True, idempotent=True, open_world=False)
async def prov_verify(args: VerifyArgs, ledger: Ledger, ctx: Context) -> Verification:
    """Check that the ledger is intact: every line parses, seq has no gaps, every hash link matches; with
    public_key also that no chain was cut, deleted or rewritten behind its signed checkpoints."""
    result: dict[str, Any] = {}
    if args.public_key:
        try:
            key = provenance.keys.parse_public_key(args.public_key)
        except provenance.keys.CheckpointKeyError as exc:
            raise ToolFailure(str(exc)) from None
        # Checkpoints first: every line they name is then already on disk when the chains are read.
        signed = await ledger.read(lambda reader: reader.check_checkpoints([key]))
        result["checkpoints"] = signed.as_dict()
    report = await ledger.read(lambda reader: reader.verify())
    result = {**report.as_dict(), **result}
    result["ok"] = report.ok and result.get("checkpoints", {}).get("ok", True)
    return Verification(**result)
