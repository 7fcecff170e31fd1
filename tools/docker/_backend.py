"""The Docker backend: which engine to talk to, and the Engine API calls the tools make.

aiodocker is imported here, lazily, in :func:`connect` — listing tools must not pay for aiohttp.
Every engine error becomes a :class:`ToolFailure` whose message names the object or the address.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import struct
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from mcp_ledger.provenance import annotate
from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools.docker import DockerSettings
from mcp_ledger.tools.group import GroupEnvironment, NotConfigured, UpstreamError

if TYPE_CHECKING:
    import aiodocker

__all__ = ["DEFAULT_SOCKET", "DockerEngine", "EngineAddress", "LogFrame", "NotFound", "resolve_address"]

DEFAULT_SOCKET = "/var/run/docker.sock"
T = TypeVar("T")
_MAX_EVENT_BYTES = 4 * 1024 * 1024


class NotFound(UpstreamError):
    """The engine has no such container or image."""


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine is and how that was decided (named in every connection error)."""

    url: str
    source: str
    tls: tuple[Path | None, Path | None, Path | None] | None = None  # ca, cert, key
    skip_tls_verify: bool = False

    @property
    def shown(self) -> str:
        return f"{self.shown_url} (from {self.source})"

    @property
    def shown_url(self) -> str:
        """The address as messages name it: a DOCKER_HOST may carry user:password, which is never shown."""
        return redact_text(self.url)[0]


def resolve_address(configured: str | None, environ: Mapping[str, str], home: Path) -> EngineAddress | None:
    """Pick the engine like the Docker CLI: --docker-host, DOCKER_HOST, the CLI context, the local socket.

    Returns None when nothing names an engine and the default socket does not exist.
    """
    if configured:
        return _with_env_tls(EngineAddress(configured, "--docker-host"), environ, home)
    if environ.get("DOCKER_HOST"):
        return _with_env_tls(EngineAddress(environ["DOCKER_HOST"], "DOCKER_HOST"), environ, home)
    context = environ.get("DOCKER_CONTEXT") or _current_context(home)
    if context and context != "default":
        return _context_address(context, home)
    if Path(DEFAULT_SOCKET).exists():
        return EngineAddress(f"unix://{DEFAULT_SOCKET}", "the default socket")
    return None


def _with_env_tls(address: EngineAddress, environ: Mapping[str, str], home: Path) -> EngineAddress:
    # The Docker CLI turns TLS verification on for any non-empty DOCKER_TLS_VERIFY.
    if not environ.get("DOCKER_TLS_VERIFY") or not address.url.startswith(("tcp://", "https://")):
        return address
    certs = Path(environ.get("DOCKER_CERT_PATH") or home / ".docker")
    return EngineAddress(address.url, address.source, tls=(certs / "ca.pem", certs / "cert.pem", certs / "key.pem"))


def _current_context(home: Path) -> str | None:
    try:
        config = json.loads((home / ".docker" / "config.json").read_bytes())
    except (OSError, ValueError):
        return None
    name = config.get("currentContext") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def _context_address(name: str, home: Path) -> EngineAddress:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_path = home / ".docker" / "contexts" / "meta" / digest / "meta.json"
    try:
        endpoint = json.loads(meta_path.read_bytes())["Endpoints"]["docker"]
        host = endpoint["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        raise NotConfigured(
            f"DOCKER_HOST or --docker-host: the Docker CLI context {name!r} has no readable endpoint at {meta_path}"
        ) from None
    tls_dir = home / ".docker" / "contexts" / "tls" / digest / "docker"
    files = tuple(p if p.exists() else None for p in (tls_dir / "ca.pem", tls_dir / "cert.pem", tls_dir / "key.pem"))
    tls = files if any(files) else None
    return EngineAddress(
        host,
        f"Docker CLI context {name!r}",
        tls=tls,  # type: ignore[arg-type]
        skip_tls_verify=bool(endpoint.get("SkipTLSVerify")),
    )


def _ssl_context(address: EngineAddress) -> ssl.SSLContext | None:
    if address.tls is None:
        return None
    ca, cert, key = address.tls
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if address.skip_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def _client_url(address: EngineAddress, tls: bool) -> str:
    for scheme in ("tcp://", "http://", "https://"):
        if address.url.startswith(scheme):
            return ("https://" if tls or scheme == "https://" else "http://") + address.url.removeprefix(scheme)
    return address.url


@dataclass(frozen=True)
class LogFrame:
    stream: str  # stdout or stderr
    data: bytes


class DockerEngine:
    """One aiodocker client for the server's lifetime; Engine API calls with errors mapped for agents."""

    def __init__(
        self,
        client: aiodocker.Docker,
        address: EngineAddress,
        allow_binds: tuple[str, ...] = (),
        allow_bind_writes: bool = False,
        allow_build_contexts: tuple[str, ...] = (),
    ) -> None:
        import aiodocker

        self.client = client
        self.address = address
        self.allow_binds = allow_binds  # host paths docker_container_run may bind-mount
        self.allow_bind_writes = allow_bind_writes
        self.allow_build_contexts = allow_build_contexts  # directories docker_image_build may send
        self._docker_error = aiodocker.DockerError
        self._version: dict[str, Any] | None = None

    async def aclose(self) -> None:
        await self.client.close()

    async def call(self, action: Callable[[], Awaitable[T]], *, missing: str | None = None) -> T:
        """Run one engine request; ``missing`` names the object when the engine answers 404."""
        try:
            return await action()
        except self._docker_error as exc:
            raise self._failure(exc, missing) from None
        except TimeoutError:
            raise UpstreamError(f"the Docker engine at {self.address.shown} did not answer in time") from None
        except OSError as exc:
            raise self._unreachable(str(exc)) from None

    def _failure(self, exc: Any, missing: str | None) -> UpstreamError:
        status, message = getattr(exc, "status", 0), str(getattr(exc, "message", exc)).strip()
        if len(message) > 1000:  # engine messages are short; a runtime's can quote a whole config
            message = message[:999] + "…"
        if status == 900:
            return self._unreachable(message.split("[", 1)[-1].rstrip("]"))
        if status == 404 and missing:
            return NotFound(f"{missing} not found on the Docker engine at {self.address.shown_url}: {message}")
        if status == 409:
            return UpstreamError(f"conflict: {message}")
        return UpstreamError(f"the Docker engine refused the request ({status}): {message}")

    def _unreachable(self, reason: str) -> UpstreamError:
        return UpstreamError(
            f"cannot reach the Docker engine at {self.address.shown}: {reason}. "
            "Start dockerd, or point DOCKER_HOST / --docker-host at a running engine."
        )

    async def version(self) -> dict[str, Any]:
        """The engine's /version, fetched once (engine and API version go on every span)."""
        if self._version is None:
            self._version = await self.call(self.client.version)
        return self._version

    async def annotate_versions(self) -> dict[str, str]:
        """Record the engine and API versions on the call's span (every docker tool does) and return them."""
        version = await self.version()
        facts = {"engine_version": str(version.get("Version", "")), "api_version": str(version.get("ApiVersion", ""))}
        annotate(**facts)
        return facts

    async def info(self) -> dict[str, Any]:
        return dict(await self.call(self.client.system.info))

    async def list_containers(self, *, all_: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"all": "1" if all_ else "0"}
        if filters:
            params["filters"] = json.dumps(filters)
        # aiodocker's public list() wraps each summary in an object; the summaries are what we need.
        data = await self.call(lambda: self.client._query_json("containers/json", params=params))
        return list(data)

    async def inspect_container(self, ref: str) -> dict[str, Any]:
        return await self.call(self.client.containers.container(ref).show, missing=f"container {ref!r}")

    async def container_logs(self, container_id: str, params: dict[str, Any], *, tty: bool) -> AsyncIterator[LogFrame]:
        """The log stream, demultiplexed: 8-byte frame headers ([stream, 0, 0, 0, size]) unless a TTY."""
        query = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in params.items()}
        try:
            async with self.client._query(f"containers/{container_id}/logs", params=query) as response:
                if tty:
                    async for chunk in response.content.iter_any():
                        yield LogFrame("stdout", chunk)
                    return
                while True:
                    try:
                        header = await response.content.readexactly(8)
                    except asyncio.IncompleteReadError:
                        return  # the end of the stream
                    kind, size = struct.unpack(">BxxxL", header)
                    data = await response.content.readexactly(size) if size else b""
                    yield LogFrame("stderr" if kind == 2 else "stdout", data)
        except self._docker_error as exc:
            raise self._failure(exc, f"container {container_id!r}") from None

    async def container_stats(self, container_id: str) -> dict[str, Any]:
        container = self.client.containers.container(container_id)
        stats = await self.call(lambda: container.stats(stream=False), missing=f"container {container_id!r}")
        if not stats:
            raise UpstreamError(f"the Docker engine returned no stats for container {container_id}")
        return dict(stats[0])

    async def start(self, container_id: str) -> None:
        await self.call(self.client.containers.container(container_id).start, missing=f"container {container_id!r}")

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        container = self.client.containers.container(container_id)
        await self.call(lambda: container.stop(t=grace_seconds), missing=f"container {container_id!r}")

    async def restart(self, container_id: str, grace_seconds: int) -> None:
        container = self.client.containers.container(container_id)
        await self.call(lambda: container.restart(t=grace_seconds), missing=f"container {container_id!r}")

    async def wait(self, container_id: str) -> dict[str, Any]:
        container = self.client.containers.container(container_id)
        return await self.call(lambda: container.wait(condition="not-running"), missing=f"container {container_id!r}")

    async def remove_container(self, container_id: str, *, force: bool, volumes: bool) -> None:
        container = self.client.containers.container(container_id)
        await self.call(lambda: container.delete(force=force, v=volumes), missing=f"container {container_id!r}")

    async def create_container(self, config: dict[str, Any], name: str | None) -> str:
        try:
            created = await self.call(lambda: self.client.containers.create(config, name=name))
        except UpstreamError as exc:
            # A 404 here is a missing image or a missing network; the engine's message says which.
            if "(404)" in str(exc) and "no such image" in str(exc).lower():
                raise NotFound(
                    f"image {config['Image']!r} not found on the Docker engine at {self.address.shown_url}; "
                    "pull it first with docker_image_pull"
                ) from None
            raise
        return str(created.id)

    async def list_images(self, *, all_: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        return list(await self.call(lambda: self.client.images.list(all=all_, filters=filters or None)))

    async def inspect_image(self, ref: str) -> dict[str, Any]:
        return await self.call(lambda: self.client.images.inspect(ref), missing=f"image {ref!r}")

    async def remove_image(self, ref: str, *, force: bool) -> list[dict[str, Any]]:
        return list(await self.call(lambda: self.client.images.delete(ref, force=force), missing=f"image {ref!r}"))

    async def pull(self, image: str, tag: str | None, platform: str | None) -> AsyncIterator[dict[str, Any]]:
        """The pull progress stream; an in-band error becomes an :class:`UpstreamError` naming the image."""
        try:
            async for event in self.client.images.pull(image, tag=tag, platform=platform, stream=True):
                yield event
        except self._docker_error as exc:
            failure = self._failure(exc, f"image {image!r}")
            raise UpstreamError(f"pulling {image!r} failed: {failure}") from None

    async def list_volumes(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        params = {"filters": json.dumps(filters)} if filters else None
        return dict(await self.call(lambda: self.client._query_json("volumes", params=params)))

    async def list_networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        params = {"filters": json.dumps(filters)} if filters else None
        return list(await self.call(lambda: self.client._query_json("networks", params=params)))

    async def build(self, context: IO[bytes], params: list[tuple[str, str]]) -> AsyncIterator[dict[str, Any]]:
        """POST /build with the context tar (read from ``context`` in a worker thread); the JSON event stream.

        ``t`` may repeat, which aiodocker's params cannot say: the query is written into the path."""

        async def body() -> AsyncIterator[bytes]:
            while chunk := await anyio.to_thread.run_sync(context.read, 1 << 20):
                yield chunk

        path = f"build?{urllib.parse.urlencode(params)}"
        headers = {"Content-Type": "application/x-tar"}
        async for event in self._stream(path, "the build", data=body(), headers=headers):
            yield event

    async def push(self, name: str, tag: str, auth_header: str) -> AsyncIterator[dict[str, Any]]:
        """POST /images/{name}/push; the JSON event stream (in-band errors are events, for the tool to read)."""
        path = f"images/{urllib.parse.quote(name, safe='/:')}/push?{urllib.parse.urlencode({'tag': tag})}"
        async for event in self._stream(path, f"image {name!r}", headers={"X-Registry-Auth": auth_header}):
            yield event

    async def _stream(
        self, path: str, what: str, *, data: Any = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """A POST whose answer is newline-delimited JSON; one line is at most 4 MiB (the engine's are short)."""
        try:
            async with self.client._query(path, "POST", data=data, headers=headers) as response:
                pending = b""
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > _MAX_EVENT_BYTES:
                        raise UpstreamError(f"the Docker engine sent an event over 4 MiB for {what}")
                    for line in lines:
                        if line.strip():
                            yield _event(line)
                if pending.strip():
                    yield _event(pending)
        except self._docker_error as exc:
            raise self._failure(exc, what) from None
        except TimeoutError:
            raise UpstreamError(f"the Docker engine at {self.address.shown} did not answer in time") from None
        except OSError as exc:
            raise self._unreachable(str(exc)) from None


def _event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        raise UpstreamError("the Docker engine sent a progress line that is not JSON") from None
    return event if isinstance(event, dict) else {}


async def connect(environment: GroupEnvironment[DockerSettings]) -> DockerEngine:
    """Build the client (no request yet): the first tool call finds out whether the engine answers."""
    settings = environment.settings
    address = resolve_address(settings.host, os.environ, Path.home())
    if address is None:
        raise NotConfigured(f"DOCKER_HOST or --docker-host (no engine socket at {DEFAULT_SOCKET})")
    context = await anyio.to_thread.run_sync(_ssl_context, address)
    import aiodocker
    import aiohttp

    try:
        client = aiodocker.Docker(
            url=_client_url(address, context is not None),
            ssl_context=context,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
    except ValueError as exc:
        raise NotConfigured(f"a usable DOCKER_HOST or --docker-host ({address.shown}: {exc})") from None
    return DockerEngine(
        client,
        address,
        tuple(settings.allow_binds),
        settings.allow_bind_writes,
        tuple(settings.allow_build_contexts),
    )
