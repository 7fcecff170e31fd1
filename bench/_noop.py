"""The benchmark's server: one no-op tool, built by the real app factory with or without provenance.

The tool does nothing on purpose, so a round trip measures the transport, the SDK and — when it is
on — the provenance middleware, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from mcp_ledger.provenance._compat import SDKTracingMiddleware
from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import prov
from mcp_ledger.tools.group import ToolGroup, tool

__all__ = ["NOOP_ARGUMENTS", "NoopArgs", "NoopResult", "build_app", "register", "without_sdk_tracing"]

FsyncPolicy = Literal["batch", "never"]

# A small argument, so the span's redaction pass and digest have a string to look at.
NOOP_ARGUMENTS = {"text": "ping"}


class NoopArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", description="Echoed back unchanged", max_length=256)


class NoopResult(BaseModel):
    text: str = Field(description="The text that was sent")


@tool(read_only=True, idempotent=True, open_world=False)
async def bench_noop(args: NoopArgs, backend: None, ctx: Context) -> NoopResult:
    """Return the text unchanged; exists to measure per-call overhead."""
    return NoopResult(text=args.text)


def register() -> ToolGroup[None]:
    group: ToolGroup[None] = ToolGroup("bench", "A no-op tool for the provenance overhead benchmark")
    group.add(bench_noop)
    return group


def build_app(
    ledger_dir: Path,
    *,
    provenance_enabled: bool,
    fsync: FsyncPolicy = "batch",
    network_transport: str | None = None,
    process_connection_id: str | None = None,
) -> LedgerApp:
    """The same server either way; only the middleware differs (the prov tools are there too, as in use)."""
    settings = ServerSettings(ledger_dir=ledger_dir, fsync=fsync)
    return create_app(
        settings,
        groups=[register(), prov.register()],
        network_transport=network_transport,
        process_connection_id=process_connection_id,
        provenance_enabled=provenance_enabled,
    )


def without_sdk_tracing(app: LedgerApp) -> LedgerApp:
    """Drop the SDK's OpenTelemetry middleware from a server built without provenance.

    With provenance on, the ledger's middleware takes that middleware's place for ``tools/call``
    (see ``provenance._middleware``); a baseline without it shows what the ledger costs gross.
    """
    chain = app.server.middleware
    chain[:] = [m for m in chain if not isinstance(m, SDKTracingMiddleware)]
    return app
