"""Image builds and pushes: an image from a directory the operator allowed, and an image to its registry.

Both tools are opt-in: offered only when named with ``--tools docker_image_build,docker_image_push``.
A build sends only a directory allowed with ``--docker-allow-build-contexts`` (see ``_build_context``);
a push takes its registry credentials from the Docker config or its credential helpers (see
``_credentials``) and never records, returns or logs them. Build arguments whose key or value looks
secret are redacted in the span and results, and so is any output line that repeats their values.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.provenance.redaction import REDACTED, redact_payload, redact_text
from mcp_ledger.tools.docker._backend import DockerEngine
from mcp_ledger.tools.docker._build_context import BuildContext, pack_context, resolve_context
from mcp_ledger.tools.docker._credentials import find_auth, registry_of
from mcp_ledger.tools.docker._presentation import cut
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolModel, UpstreamError, WorkerCall, run_in_worker, tool

# distribution/reference's grammar: [host[:port]/]path-component(/path-component)*[:tag]
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*)(?::([\w][\w.-]{{0,127}}))?")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_STEP = re.compile(r"^Step (\d+)/(\d+) : ")
LOG_BYTES = 16 * 1024
REFERENCE_RULE = "name[:tag]: lowercase name parts ([registry-host[:port]/]a/b), tag of letters, digits, _ . -"


def checked_reference(value: str, where: str) -> tuple[str, str]:
    """``name[:tag]`` -> (name, tag, latest when none); refuses anything else without repeating it."""
    match = _REFERENCE.fullmatch(value)
    first, slash, _ = (match.group(1) if match else "").partition("/")
    # As the Docker CLI reads it: a first part without '.' or ':' (or localhost) is a path part, lowercase.
    is_path = slash and not ("." in first or ":" in first or first == "localhost")
    if match is None or len(match.group(1)) > 255 or (is_path and not re.fullmatch(_PATH_PART, first)):
        raise InvalidArguments(f"{where}: not an image reference; {REFERENCE_RULE}")
    return match.group(1), match.group(2) or "latest"


class ImageBuildArgs(ToolArgs):
    context: str = Field(min_length=1, max_length=4096, description="Absolute path of a directory the operator allowed")
    dockerfile: str = Field(default="Dockerfile", min_length=1, max_length=1024, description="Path inside the context")
    tags: list[str] = Field(default_factory=list, max_length=16, description="name[:tag] for the image")
    build_args: dict[str, str] = Field(default_factory=dict, max_length=64)
    target: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    no_cache: bool = False
    pull: bool = Field(default=False, description="Pull newer base images first")


class BaseImage(ToolModel):
    reference: str = Field(description="As the Dockerfile's FROM names it, build args applied")
    image_id: str
    repo_digest: str | None


class ImageBuild(ToolModel):
    image_id: str
    tags: list[str]
    base_images: list[BaseImage]
    steps: int
    log: str = Field(description="The build's output, its last 16 KB; secrets redacted")
    log_truncated: bool


class ImagePushArgs(ToolArgs):
    image: str = Field(min_length=1, max_length=512, description="Local name[:tag] naming its registry host")


class ImagePush(ToolModel):
    image: str
    registry: str
    image_id: str
    digest: str = Field(description="The manifest digest the registry stored")
    repo_digest: str
    login_from: str = Field(description="Where the registry login came from: none, config auths, credential helper X")
    layers: int


class _Redactor:
    """Cuts secret build-arg values (and registry secrets) out of any text, then the usual credential shapes."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return redact_text(text)[0]


def _secret_values(build_args: dict[str, str]) -> list[str]:
    redacted, _ = redact_payload(dict(build_args))
    return [value for key, value in build_args.items() if redacted.get(key) != value]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of a Dockerfile: comments dropped, backslash continuations joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _expand(word: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        return values.get(name) or (default or "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, word)


def base_references(dockerfile: str, build_args: dict[str, str]) -> list[str]:
    """The images the Dockerfile's FROM lines start from (not scratch, not an earlier stage), in order."""
    values: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for instruction, rest in _instructions(dockerfile):
        if instruction == "ARG" and not seen_from:
            for item in rest.split():
                name, _, default = item.partition("=")
                values[name] = build_args.get(name, default.strip("\"'"))
        elif instruction == "FROM":
            seen_from = True
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                continue
            image = _expand(words[0], values)
            if image.lower() != "scratch" and image.lower() not in stages and image not in bases:
                bases.append(image)
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
    return bases[:32]


def _read_dockerfile(context: BuildContext) -> str:
    with open(os.path.join(context.directory, context.dockerfile), "rb") as handle:
        return handle.read(1 << 20).decode("utf-8", errors="replace")


async def _base_image(engine: DockerEngine, reference: str) -> BaseImage | None:
    try:
        raw = await engine.inspect_image(reference)
    except UpstreamError:
        return None
    digests = [str(d) for d in raw.get("RepoDigests") or []]
    repo = reference.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:  # a tag, not a registry port
        repo = repo[: repo.rfind(":")]
    digest = next((d for d in digests if d.split("@", 1)[0] == repo), digests[0] if digests else None)
    return BaseImage(reference=cut(reference, 512), image_id=str(raw.get("Id", "")), repo_digest=digest)


@tool(read_only=False, destructive=False, idempotent=False, open_world=True, opt_in=True)
async def docker_image_build(args: ImageBuildArgs, engine: DockerEngine, ctx: Context) -> ImageBuild:
    """Build an image from a directory the operator allowed (.dockerignore honoured), with progress
    notifications; returns the image id, its base images and the end of the build log."""
    tags = [":".join(checked_reference(tag, f"tags[{i}]")) for i, tag in enumerate(args.tags)]
    for name, value in args.build_args.items():
        if not _ARG_NAME.fullmatch(name) or len(value) > 32768:
            raise InvalidArguments(
                "build_args: names are ARG names (letters, digits, _), values at most 32768 characters"
            )
    await engine.annotate_versions()
    context = resolve_context(args.context, args.dockerfile, engine.allow_build_contexts)
    redact = _Redactor(_secret_values(args.build_args))

    def pack(call: WorkerCall) -> tuple[Any, int, int, str]:
        return (*pack_context(context, call), _read_dockerfile(context))

    tar, size, files, dockerfile = await run_in_worker(pack, label="docker_image_build: packing the context", ctx=ctx)
    provenance.annotate(context=context.directory, context_bytes=size, context_files=files, tags=tags)
    params = [("dockerfile", context.dockerfile), ("rm", "1"), ("forcerm", "1")]
    params += [("t", tag) for tag in tags]
    if args.build_args:
        params.append(("buildargs", json.dumps(args.build_args)))
    if args.target:
        params.append(("target", args.target))
    if args.no_cache:
        params.append(("nocache", "1"))
    if args.pull:
        params.append(("pull", "1"))
    log, image_id, steps, error = "", "", 0, None
    try:
        async for event in engine.build(tar, params):
            if "error" in event or "errorDetail" in event:
                detail = event.get("errorDetail") or {}
                error = str(detail.get("message") or event.get("error") or "unknown error")
                break
            aux = event.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
            text = str(event.get("stream") or "")
            if not text and event.get("status"):
                text = f"{event.get('id', '')} {event['status']}".strip() + "\n"
            log = (log + text)[-4 * LOG_BYTES :]
            step = _STEP.match(text)
            if step:
                steps = int(step.group(1))
                await ctx.report_progress(steps, int(step.group(2)), redact(text.strip())[:200])
    finally:
        await anyio.to_thread.run_sync(tar.close)
    shown = redact(log)
    truncated = len(shown.encode()) > LOG_BYTES
    if truncated:
        shown = shown.encode()[-LOG_BYTES:].decode("utf-8", errors="ignore")
    bases = [b for ref in base_references(dockerfile, args.build_args) if (b := await _base_image(engine, ref))]
    provenance.annotate(
        base_images=[{"ref": b.reference, "image_id": b.image_id, "repo_digest": b.repo_digest} for b in bases]
    )
    if error is not None:
        tail = redact(log)[-1000:].strip()
        raise UpstreamError(
            f"the build failed: {redact(error)[:1000]}" + (f"; the output ended with: {tail}" if tail else "")
        )
    if not image_id and tags:
        image_id = str((await engine.inspect_image(tags[0])).get("Id", ""))
    if not image_id:
        raise UpstreamError("the Docker engine finished the build without naming the image it built")
    provenance.annotate(image_id=image_id)
    return ImageBuild(image_id=image_id, tags=tags, base_images=bases, steps=steps, log=shown, log_truncated=truncated)


@tool(read_only=False, destructive=False, idempotent=True, open_world=True, opt_in=True)
async def docker_image_push(args: ImagePushArgs, engine: DockerEngine, ctx: Context) -> ImagePush:
    """Push a local image to its registry with progress notifications; credentials come from the Docker
    config or its credential helpers and are never shown or recorded. Returns the pushed digest."""
    name, tag = checked_reference(args.image, "image")
    reference = f"{name}:{tag}"
    registry = registry_of(name)
    await engine.annotate_versions()
    image = await engine.inspect_image(reference)
    provenance.annotate(image_ref=reference, image_id=image.get("Id"), registry=registry)
    auth = await find_auth(registry, os.environ, Path.home())
    provenance.annotate(login_from=auth.source)
    redact = _Redactor(list(auth.secrets))
    layers: dict[str, tuple[int, int]] = {}
    digest, reported, error = "", 0, None
    async for event in engine.push(name, tag, auth.header):
        if "error" in event or "errorDetail" in event:
            detail = event.get("errorDetail") or {}
            error = str(detail.get("message") or event.get("error") or "unknown error")
            break
        aux = event.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
            digest = aux["Digest"]
        status, layer = str(event.get("status") or ""), event.get("id")
        detail = event.get("progressDetail") or {}
        if layer and status in ("Preparing", "Waiting", "Pushing", "Pushed", "Layer already exists"):
            current, total = layers.get(layer, (0, 0))
            if status == "Pushing" and detail.get("total"):
                current, total = int(detail.get("current") or 0), int(detail["total"])
            elif status in ("Pushed", "Layer already exists"):
                current = total
            layers[layer] = (current, total)
        reported = max(reported, sum(c for c, _ in layers.values()))
        message = redact(f"{layer}: {status}" if layer else status)[:200]
        await ctx.report_progress(reported, sum(t for _, t in layers.values()) or None, message)
    if error is not None:
        raise UpstreamError(f"pushing {reference} failed: {redact(error)[:1000]}")
    if not digest:
        raise UpstreamError(f"the Docker engine ended the push of {reference} without the digest the registry stored")
    repo_digest = f"{name}@{digest}"
    provenance.annotate(digest=digest, repo_digest=repo_digest)
    return ImagePush(
        image=reference,
        registry=registry,
        image_id=str(image.get("Id", "")),
        digest=digest,
        repo_digest=repo_digest,
        login_from=auth.source,
        layers=len(layers),
    )
