"""Docker networks: what exists on the engine, and which containers are attached to each."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools.docker._backend import DockerEngine
from mcp_ledger.tools.docker._presentation import (
    LABELS_NOTE,
    ContainerRef,
    container_users,
    keyset_page,
    list_filters,
    shown_labels,
)
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool

PAGE = 100


class NetworkListArgs(ToolArgs):
    name: str | None = Field(default=None, max_length=256)
    label: list[str] = Field(default_factory=list, max_length=16)
    driver: str | None = Field(default=None, max_length=128)
    dangling: bool | None = None
    cursor: str | None = Field(default=None, max_length=256)


class NetworkSummary(ToolModel):
    id: str
    name: str
    driver: str
    scope: str
    created: str
    internal: bool
    attachable: bool
    ipv6: bool
    subnets: list[str] = Field(description="IPAM subnets (at most 16)")
    labels: dict[str, str] = Field(description=LABELS_NOTE)
    containers: list[ContainerRef] = Field(description="Every container (running or not) attached to it")


class NetworkList(ToolModel):
    networks: list[NetworkSummary] = Field(description="By name")
    total: int = Field(description="Networks that matched")
    next_cursor: str | None = Field(description="Null: nothing more matched")


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_network_list(args: NetworkListArgs, engine: DockerEngine, ctx: Context) -> NetworkList:
    """Networks and the containers on each.
    Filters: name (part), label (k=v), driver, dangling (unused). 100 a page."""
    await engine.annotate_versions()
    raw = await engine.list_networks(list_filters(args.name, args.label, args.driver, args.dangling))
    raw.sort(key=lambda n: (str(n.get("Name")), str(n.get("Id"))))
    page, next_cursor = keyset_page(raw, "Id", PAGE, args.cursor)
    users = container_users(await engine.list_containers(all_=True, filters={}), "network") if page else {}
    networks = []
    for n in page:
        ipam = (n.get("IPAM") or {}).get("Config") or []
        networks.append(
            NetworkSummary(
                id=str(n.get("Id", "")),
                name=str(n.get("Name", "")),
                driver=str(n.get("Driver", "")),
                scope=str(n.get("Scope", "")),
                created=str(n.get("Created") or ""),
                internal=bool(n.get("Internal")),
                attachable=bool(n.get("Attachable")),
                ipv6=bool(n.get("EnableIPv6")),
                subnets=[str(c["Subnet"]) for c in ipam if c.get("Subnet")][:16],
                labels=shown_labels(n.get("Labels")),
                containers=users.get(str(n.get("Name")), []),
            )
        )
    provenance.annotate(
        network_ids=[n.id for n in networks],
        container_ids=sorted({c.id for n in networks for c in n.containers}),
    )
    return NetworkList(networks=networks, total=len(raw), next_cursor=next_cursor)
