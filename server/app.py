"""The app factory: an ``MCPServer`` with the gated tools, the provenance resources and the
provenance middleware on the SDK's ``ServerMiddleware`` hook."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server import MCPServer

import provenance
from server import VERSION, resources
from server.gating import select_tools
from server.logs import configure_logging
from server.settings import ServerSettings
from tools import load_groups
from tools._group import GroupEnvironment, GroupRuntime, GroupSettings, ToolGroup, build_tool

__all__ = ["VERSION", "LedgerApp", "create_app"]

logger = logging.getLogger("mcp_ledger.server")


INSTRUCTIONS = (
    "Tools for operational work; every tool call is recorded as a provenance span in a hash-chained "
    "ledger. A result's _meta['mcp-ledger/span_id'] names its span; prov_query, prov_span, prov_trace, "
    "prov_stats and prov_verify read the ledger back."
)


@dataclass
class LedgerApp:
    """The server and what it owns; close() flushes and closes the ledger."""

    server: MCPServer[Any]
    store: provenance.SpanStore
    ledger_dir: Path
    middleware: provenance.ProvenanceMiddleware
    runtimes: list[GroupRuntime[Any]] = field(default_factory=list)

    def close(self) -> None:
        self.store.close()


def create_app(
    settings: ServerSettings | None = None,
    group_settings: Mapping[str, GroupSettings] | None = None,
    *,
    groups: list[ToolGroup] | None = None,
    network_transport: str | None = None,
    process_connection_id: str | None = None,
    provenance_enabled: bool = True,
) -> LedgerApp:
    """Build the server. ``provenance_enabled=False`` exists for the overhead benchmark only."""
    settings = settings or ServerSettings()
    groups = load_groups() if groups is None else groups
    ledger_dir = settings.ledger_dir.expanduser() if settings.ledger_dir else provenance.default_ledger_dir()
    selected = select_tools(
        groups,
        toolsets=settings.toolsets,
        tools=settings.tools,
        exclude_tools=settings.exclude_tools,
        read_only=settings.read_only,
        allow_destructive=settings.allow_destructive,
    )
    runtimes: dict[str, GroupRuntime[Any]] = {}
    for group in groups:
        chosen = (group_settings or {}).get(group.name) or group.settings()
        runtimes[group.name] = GroupRuntime(group, GroupEnvironment(settings=chosen, ledger_dir=ledger_dir))

    store = provenance.SpanStore(
        ledger_dir,
        fsync=settings.fsync,
        fsync_interval=settings.fsync_interval_ms / 1000,
        segment_bytes=int(settings.segment_mb * 1024 * 1024),
        writer={"server": "mcp-ledger", "version": VERSION},
    )
    middleware = provenance.ProvenanceMiddleware(
        store,
        tools={spec.name: provenance.ToolFacts(spec.group, spec.read_only, spec.destructive) for spec in selected},
        transport=network_transport,
        call_timeout=settings.call_timeout,
        on_record_failure=settings.on_record_failure,
        preview_bytes=settings.preview_bytes,
        process_connection_id=process_connection_id,
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            for runtime in runtimes.values():
                await runtime.aclose()

    server: MCPServer[Any] = MCPServer(
        "mcp-ledger",
        version=VERSION,
        instructions=INSTRUCTIONS,
        tools=[build_tool(spec, runtimes[spec.group]) for spec in selected],
        middleware=[middleware] if provenance_enabled else [],
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    configure_logging(settings.log_level)
    resources.register(server, ledger_dir)
    return LedgerApp(server, store, ledger_dir, middleware, list(runtimes.values()))
