"""The app factory: an ``MCPServer`` with the gated tools, the provenance resources and the
provenance middleware on the SDK's ``ServerMiddleware`` hook."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer

from mcp_ledger import provenance
from mcp_ledger.provenance import otlp
from mcp_ledger.server import VERSION, resources
from mcp_ledger.server.auth import CallerGate, caller_span_attributes, local_principal, tool_class
from mcp_ledger.server.auth._caller import AUTH_METHOD
from mcp_ledger.server.gating import GatingError, select_tools
from mcp_ledger.server.logs import configure_logging
from mcp_ledger.server.runtime import GroupRuntime
from mcp_ledger.server.settings import ServerSettings, SettingsError
from mcp_ledger.server.toolbridge import ToolEntry, build_tool
from mcp_ledger.tools import catalog_entries, group_headers, load_group
from mcp_ledger.tools.group import GroupEnvironment, GroupSettings, ToolGroup

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
    runtimes: list[GroupRuntime] = field(default_factory=list)
    otlp_export: otlp.LiveExport | None = None  # --otlp-endpoint: the live OTLP export

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            if self.otlp_export is not None:
                self.otlp_export.close()


def create_app(
    settings: ServerSettings | None = None,
    group_settings: Mapping[str, GroupSettings] | None = None,
    *,
    groups: list[ToolGroup[Any]] | None = None,
    network_transport: str | None = None,
    process_connection_id: str | None = None,
    provenance_enabled: bool = True,
    authenticated: bool = False,
) -> LedgerApp:
    """Build the server. ``provenance_enabled=False`` exists for the overhead benchmark only.

    ``authenticated``: served over HTTP behind ``server.auth.require_auth``; each caller then sees and
    calls only the tools of its classes, and its spans say who it is. A stdio server's spans name the OS
    user that runs it; an HTTP server without authentication says so (``mcp-ledger.auth.method: none``).
    """
    settings = settings or ServerSettings()
    listings = _listings(groups)
    ledger_dir = settings.ledger_dir.expanduser() if settings.ledger_dir else provenance.default_ledger_dir()
    selected = select_tools(
        listings,
        toolsets=settings.toolsets,
        tools=settings.tools,
        exclude_tools=settings.exclude_tools,
        read_only=settings.read_only,
        allow_destructive=settings.allow_destructive,
    )
    runtimes: dict[str, GroupRuntime] = {}
    for listing in listings:
        chosen = (group_settings or {}).get(listing.name) or listing.settings()
        environment = GroupEnvironment(settings=chosen, ledger_dir=ledger_dir)
        runtimes[listing.name] = GroupRuntime(listing.name, environment, listing.resolve)
    # A group whose settings have ``preload`` true (infer: its local model) loads at start when it serves a tool.
    asked = [
        name for name, runtime in runtimes.items() if getattr(runtime.environment.settings, "preload", None) is True
    ]
    preloading = _preloading([*settings.preload, *asked], runtimes, {spec.group for spec in selected})

    store = provenance.SpanStore(
        ledger_dir,
        checkpoints=_checkpoint_writer(settings, ledger_dir) if provenance_enabled else None,
        fsync=settings.fsync,
        fsync_interval=settings.fsync_interval_ms / 1000,
        segment_bytes=int(settings.segment_mb * 1024 * 1024),
        writer={"server": "mcp-ledger", "version": VERSION},
        on_failure=settings.on_record_failure,
    )
    middleware = provenance.ProvenanceMiddleware(
        store,
        tools={
            spec.name: provenance.ToolFacts(spec.group, spec.read_only, spec.destructive, spec.timeout)
            for spec in selected
        },
        transport=network_transport,
        call_timeout=settings.call_timeout,
        preview_bytes=settings.preview_bytes,
        process_connection_id=process_connection_id,
        server_version=VERSION,
        principal=_principal(network_transport, authenticated),
        caller=caller_span_attributes if authenticated else None,
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            # Preloads run beside the server: initialize and tools/list never wait for them.
            async with anyio.create_task_group() as background:
                for runtime in preloading:
                    background.start_soon(runtime.preload)
                try:
                    yield {}
                finally:
                    background.cancel_scope.cancel()
        finally:
            for runtime in runtimes.values():
                await runtime.aclose()

    server: MCPServer[Any] = MCPServer(
        "mcp-ledger",
        version=VERSION,
        instructions=INSTRUCTIONS,
        tools=[
            build_tool(spec, runtimes[spec.group], publish_output_schema=settings.output_schemas) for spec in selected
        ],
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    if provenance_enabled:
        middleware.install(server.middleware)
    if authenticated:  # after the provenance middleware: a refused call is recorded like any other
        classes = {s.name: tool_class(s.read_only, s.destructive, s.exports_credentials) for s in selected}
        server.middleware.append(CallerGate(classes))
    configure_logging(settings.log_level)
    resources.register(server, ledger_dir)
    export = _otlp_export(settings, ledger_dir, store.chain) if provenance_enabled else None
    return LedgerApp(server, store, ledger_dir, middleware, list(runtimes.values()), export)


def _otlp_export(settings: ServerSettings, ledger_dir: Path, chain: str) -> otlp.LiveExport | None:
    """The live OTLP export that --otlp-endpoint or the OTEL_EXPORTER_OTLP_* variables ask for, or None.

    Without the ``otlp`` extra, the flag (or its MCP_LEDGER_ twin) stops the start; an OTEL_* variable
    alone, which may be meant for other programs, only warns."""
    try:
        found = otlp.traces_endpoint(settings.otlp_endpoint)
    except otlp.OtlpError as exc:
        raise SettingsError(str(exc)) from None
    if found is None:
        return None
    endpoint, source = found
    try:
        export = otlp.start(endpoint, ledger_dir=ledger_dir, chain=chain, service_version=VERSION)
    except otlp.OtlpError as exc:
        if source == "--otlp-endpoint":
            raise SettingsError(f"--otlp-endpoint: {exc}") from None
        logger.warning("%s is set but spans are not exported: %s", source, exc)
        return None
    logger.info("exporting every tool call's span to %s (OTLP/HTTP)", otlp.display_endpoint(endpoint))
    return export


def _principal(network_transport: str | None, authenticated: bool) -> dict[str, Any] | None:
    """Who calls, when every call of this server shares it: the OS user over stdio; over HTTP without
    authentication, that no one was authenticated (an authenticated caller is named per request)."""
    if network_transport == "pipe":
        return local_principal()
    if network_transport == "tcp" and not authenticated:
        return {AUTH_METHOD: "none"}
    return None


def _preloading(names: list[str], runtimes: Mapping[str, GroupRuntime], served: set[str]) -> list[GroupRuntime]:
    """The groups to load at start (--preload), of those that serve a tool."""
    unknown = sorted(set(names) - set(runtimes))
    if unknown:
        raise GatingError(f"--preload: unknown {', '.join(unknown)}; known: {', '.join(sorted(runtimes))}")
    return [runtimes[name] for name in dict.fromkeys(names) if name in served]


def _checkpoint_writer(settings: ServerSettings, ledger_dir: Path) -> provenance.CheckpointWriter | None:
    """The signer of this server's checkpoints; the key is read (or created) now, so a bad one stops the start."""
    if not settings.checkpoints:
        return None
    key = provenance.keys.load_or_create_key(settings.checkpoint_key, ledger_dir=ledger_dir)
    witness = settings.checkpoint_witness.expanduser() if settings.checkpoint_witness else None
    if witness is not None:
        if not witness.is_dir():
            raise SettingsError(f"--checkpoint-witness: {witness} is not a directory; mount or create it first")
        if witness.resolve() == ledger_dir.resolve() or ledger_dir.resolve() in witness.resolve().parents:
            raise SettingsError(
                f"--checkpoint-witness: {witness} is inside the ledger directory; a witness must be where the "
                "ledger's writer cannot rewrite it (another volume or host)"
            )
    return provenance.CheckpointWriter(
        ledger_dir,
        key,
        every=settings.checkpoint_every,
        interval=settings.checkpoint_interval,
        witness=witness,
        durable=settings.fsync != "never",
    )


@dataclass(frozen=True)
class _Listing:
    """A group as start-up sees it: its tools' catalog entries and how to load its code."""

    name: str
    settings: type[GroupSettings]
    tools: list[ToolEntry]
    resolve: Callable[[], ToolGroup[Any]]


def _listings(groups: list[ToolGroup[Any]] | None) -> list[_Listing]:
    """Each group from tools/catalog.json when the catalog is current for it (its module is not
    imported), else from the group's code."""
    if groups is None:
        listings = []
        for header in group_headers():
            resolve = functools.partial(load_group, header.name)
            cached = catalog_entries(header.name)
            if cached is not None:
                listings.append(_Listing(header.name, header.settings, [ToolEntry(**e) for e in cached], resolve))
                continue
            logger.warning(
                "tools/catalog.json is stale for group %s: listed from its code (make regenerate)", header.name
            )
            entries = [ToolEntry.from_spec(spec) for spec in load_group(header.name).tools]
            listings.append(_Listing(header.name, header.settings, entries, resolve))
        return listings
    return [
        _Listing(
            group.name,
            group.settings,
            [ToolEntry.from_spec(spec) for spec in group.tools],
            functools.partial(_same, group),
        )
        for group in groups
    ]


def _same(group: ToolGroup[Any]) -> ToolGroup[Any]:
    return group
