"""Docker volumes: what exists on the engine, and which containers mount each."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools.docker._backend import DockerEngine
from mcp_ledger.tools.docker._presentation import (
    LABELS_NOTE,
    ContainerRef,
    container_users,
    cut,
    keyset_page,
    list_filters,
    shown_labels,
)
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool

PAGE = 100


class VolumeListArgs(ToolArgs):
    name: str | None = Field(default=None, max_length=256)
    label: list[str] = Field(default_factory=list, max_length=16)
    driver: str | None = Field(default=None, max_length=128)
    dangling: bool | None = None
    cursor: str | None = Field(default=None, max_length=256)


class VolumeSummary(ToolModel):
    name: str
    driver: str
    scope: str
    created: str
    mountpoint: str
    labels: dict[str, str] = Field(description=LABELS_NOTE)
    options: dict[str, str] = Field(description="Driver options; secret-like values redacted")
    containers: list[ContainerRef] = Field(description="Every container (running or not) that mounts it")


class VolumeList(ToolModel):
    volumes: list[VolumeSummary] = Field(description="By name")
    total: int = Field(description="Volumes that matched")
    next_cursor: str | None = Field(description="Null: nothing more matched")
    warnings: list[str]


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_volume_list(args: VolumeListArgs, engine: DockerEngine, ctx: Context) -> VolumeList:
    """Volumes and containers using each.
    Filters: name (part), label (k=v), driver, dangling (unused). 100 a page."""
    await engine.annotate_versions()
    listing = await engine.list_volumes(list_filters(args.name, args.label, args.driver, args.dangling))
    raw = sorted(listing.get("Volumes") or [], key=lambda v: str(v.get("Name")))
    page, next_cursor = keyset_page(raw, "Name", PAGE, args.cursor)
    users = container_users(await engine.list_containers(all_=True, filters={}), "volume") if page else {}
    volumes = [
        VolumeSummary(
            name=str(v.get("Name", "")),
            driver=str(v.get("Driver", "")),
            scope=str(v.get("Scope", "")),
            created=str(v.get("CreatedAt") or ""),
            mountpoint=cut(v.get("Mountpoint", ""), 1024),
            labels=shown_labels(v.get("Labels")),
            options=shown_labels(v.get("Options")),
            containers=users.get(str(v.get("Name")), []),
        )
        for v in page
    ]
    provenance.annotate(
        volume_names=[v.name for v in volumes],
        container_ids=sorted({c.id for v in volumes for c in v.containers}),
    )
    warnings = [cut(w, 512) for w in listing.get("Warnings") or []][:20]
    return VolumeList(volumes=volumes, total=len(raw), next_cursor=next_cursor, warnings=warnings)
