"""Docker images: list, inspect, pull (with progress notifications), remove."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools.docker._backend import DockerEngine
from mcp_ledger.tools.docker._presentation import (
    LABELS_NOTE,
    Cursor,
    Limit,
    cut,
    iso_time,
    keyset_page,
    shown_env,
    shown_labels,
)
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool

ImageRef = Field(description="Image reference (name[:tag], name@sha256:…) or image id", min_length=1, max_length=512)


class ImageListArgs(ToolArgs):
    reference: str | None = Field(
        default=None, max_length=512, description="Only images matching name[:tag] (globs ok)"
    )
    label: list[str] = Field(
        default_factory=list, max_length=16, description="Only with these labels: key or key=value"
    )
    dangling: bool | None = Field(default=None, description="Only untagged (true) or tagged (false) images")
    limit: int = Limit
    cursor: str | None = Cursor


class ImageSummary(ToolModel):
    id: str
    repo_tags: list[str] = Field(description="At most 64")
    repo_digests: list[str] = Field(description="At most 64")
    created: str
    size_bytes: int
    containers: int = Field(description="Containers using the image; -1 when the engine did not count")
    labels: dict[str, str] = Field(description=LABELS_NOTE)


class ImageList(ToolModel):
    images: list[ImageSummary] = Field(description="Newest first")
    total: int
    next_cursor: str | None


class ImageArgs(ToolArgs):
    image: str = ImageRef


class ImageDetails(ToolModel):
    id: str
    repo_tags: list[str] = Field(description="At most 64")
    repo_digests: list[str] = Field(description="At most 64")
    created: str
    size_bytes: int
    architecture: str
    os: str
    author: str
    command: list[str]
    entrypoint: list[str]
    env: list[str] = Field(description="KEY=[REDACTED]: names kept, values redacted (at most 256)")
    labels: dict[str, str] = Field(description=LABELS_NOTE)
    working_dir: str
    user: str
    exposed_ports: list[str] = Field(description="At most 64")
    layers: list[str] = Field(description="At most 256")


class ImagePullArgs(ToolArgs):
    image: str = Field(
        description="name[:tag] or name@sha256:… (tag latest when neither)", min_length=1, max_length=512
    )
    platform: str | None = Field(default=None, max_length=64, description="os[/arch[/variant]], e.g. linux/amd64")


class ImagePull(ToolModel):
    image: str
    image_id: str
    repo_digest: str | None
    status: str = Field(description="The engine's last status, e.g. 'Downloaded newer image for …'")
    layers: int = Field(description="Layers the engine reported")


class ImageRemoveArgs(ToolArgs):
    image: str = ImageRef
    force: bool = Field(default=False, description="Remove even if stopped containers use it or it has other tags")


class ImageRemoval(ToolModel):
    image_id: str
    untagged: list[str]
    deleted: list[str]


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_image_list(args: ImageListArgs, engine: DockerEngine, ctx: Context) -> ImageList:
    """List local images, newest first, filtered by reference, label or dangling. Paginated."""
    await engine.annotate_versions()
    filters: dict[str, list[str]] = {}
    if args.reference:
        filters["reference"] = [args.reference]
    if args.label:
        filters["label"] = list(args.label)
    if args.dangling is not None:
        filters["dangling"] = ["true" if args.dangling else "false"]
    raw = await engine.list_images(all_=False, filters=filters)
    raw.sort(key=lambda i: (-int(i.get("Created") or 0), str(i.get("Id"))))
    page, next_cursor = keyset_page(raw, "Id", args.limit, args.cursor)
    images = [
        ImageSummary(
            id=str(i.get("Id", "")),
            repo_tags=[t for t in i.get("RepoTags") or [] if t != "<none>:<none>"][:64],
            repo_digests=[d for d in i.get("RepoDigests") or [] if d != "<none>@<none>"][:64],
            created=iso_time(i.get("Created")),
            size_bytes=int(i.get("Size") or 0),
            containers=int(i.get("Containers", -1)),
            labels=shown_labels(i.get("Labels")),
        )
        for i in page
    ]
    provenance.annotate(image_ids=[i.id for i in images])
    return ImageList(images=images, total=len(raw), next_cursor=next_cursor)


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_image_inspect(args: ImageArgs, engine: DockerEngine, ctx: Context) -> ImageDetails:
    """Details of one local image: id, tags, digests, platform, command, env names (values redacted), layers."""
    await engine.annotate_versions()
    raw = await engine.inspect_image(args.image)
    config = raw.get("Config") or {}
    digests = [str(d) for d in raw.get("RepoDigests") or []]
    provenance.annotate(image_id=raw.get("Id"), repo_digest=digests[0] if digests else None)
    return ImageDetails(
        id=str(raw.get("Id", "")),
        repo_tags=[str(t) for t in raw.get("RepoTags") or []][:64],
        repo_digests=digests[:64],
        created=iso_time(raw.get("Created")),
        size_bytes=int(raw.get("Size") or 0),
        architecture=str(raw.get("Architecture", "")),
        os=str(raw.get("Os", "")),
        author=cut(raw.get("Author", ""), 256),
        command=[cut(a, 4096) for a in config.get("Cmd") or []][:256],
        entrypoint=[cut(a, 4096) for a in config.get("Entrypoint") or []][:64],
        env=shown_env(config.get("Env")),
        labels=shown_labels(config.get("Labels")),
        working_dir=str(config.get("WorkingDir", "")),
        user=str(config.get("User", "")),
        exposed_ports=sorted(config.get("ExposedPorts") or {})[:64],
        layers=[str(layer) for layer in (raw.get("RootFS") or {}).get("Layers") or []][:256],
    )


def _split_reference(image: str) -> tuple[str, str | None]:
    """``name[:tag]`` -> (name, tag); a digest reference is passed whole; no tag means latest."""
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


# open_world: only pull (a registry) and run (the container's own network) reach past the engine.
@tool(read_only=False, destructive=False, idempotent=True, open_world=True)
async def docker_image_pull(args: ImagePullArgs, engine: DockerEngine, ctx: Context) -> ImagePull:
    """Pull an image from its registry, with progress notifications; returns the image id and repo digest."""
    await engine.annotate_versions()
    name, tag = _split_reference(args.image)
    reference = f"{name}:{tag}" if tag else name
    # Per layer (downloaded, size) in bytes; extraction is reported by message only, so that progress
    # never goes back (the extracted size differs from the download size).
    layers: dict[str, tuple[int, int]] = {}
    status, reported = "", 0
    async for event in engine.pull(name, tag, args.platform):
        status = str(event.get("status") or status)
        layer = event.get("id")
        detail = event.get("progressDetail") or {}
        if layer and not status.startswith("Pulling from"):
            current, total = layers.get(layer, (0, 0))
            if status == "Downloading" and detail.get("total"):
                current, total = int(detail.get("current") or 0), int(detail["total"])
            elif status in ("Download complete", "Pull complete", "Already exists"):
                current = total
            layers[layer] = (current, total)
        reported = max(reported, sum(c for c, _ in layers.values()))
        total_bytes = sum(t for _, t in layers.values())
        message = f"{layer}: {status}" if layer else status
        await ctx.report_progress(reported, total_bytes or None, message[:200])
    image = await engine.inspect_image(reference)
    digests = [str(d) for d in image.get("RepoDigests") or []]
    repo = name.split("@", 1)[0]
    digest = next((d for d in digests if d.split("@", 1)[0] == repo), digests[0] if digests else None)
    provenance.annotate(image_ref=reference, image_id=image.get("Id"), repo_digest=digest)
    return ImagePull(
        image=reference,
        image_id=str(image.get("Id", "")),
        repo_digest=digest,
        status=cut(status, 512),
        layers=len(layers),
    )


@tool(read_only=False, destructive=True, idempotent=True, open_world=False)
async def docker_image_remove(args: ImageRemoveArgs, engine: DockerEngine, ctx: Context) -> ImageRemoval:
    """Remove a local image (untag it; delete its layers when nothing else uses them). Cannot be undone."""
    await engine.annotate_versions()
    raw = await engine.inspect_image(args.image)
    digests = [str(d) for d in raw.get("RepoDigests") or []]
    provenance.annotate(image_id=raw.get("Id"), repo_digest=digests[0] if digests else None)
    report = await engine.remove_image(args.image, force=args.force)
    return ImageRemoval(
        image_id=str(raw.get("Id", "")),
        untagged=[str(r["Untagged"]) for r in report if "Untagged" in r],
        deleted=[str(r["Deleted"]) for r in report if "Deleted" in r],
    )
