"""A real Docker engine for the docker tool tests: a private dockerd, a busybox image, a loopback registry.

The engine runs on a unix socket under a temporary directory and is stopped by its pid at the end of
the session. Without dockerd (or root) the tests are skipped with the reason — unless
MCP_LEDGER_REQUIRE_DOCKER=1 (set by .ci/run), which turns that skip into a failure.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from mcp import Client
from mcp_types import CallToolResult

from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.docker import DockerSettings
from tests.harness import call_error, call_ok

TEST_IMAGE = "local/busybox:test"
TEST_LABEL = "mcp-ledger.test"
SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "docker-engine-subset.json"
DAEMON_FLAGS = ["--iptables=false", "--ip-masq=false", "--bridge=none"]


def skip_or_fail(reason: str) -> None:
    if os.environ.get("MCP_LEDGER_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (MCP_LEDGER_REQUIRE_DOCKER=1: the Docker tests must run)", pytrace=False)
    pytest.skip(reason)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Engine:
    """The test engine, and a plain HTTP client for arranging state (never used to check tools)."""

    socket_path: Path
    root: Path
    pid: int

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, bytes]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = body if isinstance(body, bytes | type(None)) else json.dumps(body).encode()
        conn = _UnixConnection(str(self.socket_path), timeout)
        try:
            conn.request(
                method,
                f"/v1.41{path}{query}",
                body=data,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = self.request(method, path, **kwargs)
        assert status < 300, f"{method} {path}: {status} {body[:300]!r}"
        return json.loads(body) if body.strip() else None

    def run(
        self,
        command: list[str],
        *,
        name: str | None = None,
        env: list[str] | None = None,
        labels: dict[str, str] | None = None,
        wait: bool = False,
    ) -> str:
        """Create and start a busybox container (network none, test label); optionally wait for its exit."""
        config = {
            "Image": TEST_IMAGE,
            "Cmd": command,
            "Env": env or [],
            "Labels": {TEST_LABEL: "1", **(labels or {})},
            "HostConfig": {"NetworkMode": "none"},
        }
        params = {"name": name or f"t-{uuid.uuid4().hex[:10]}"}
        container_id: str = self.json("POST", "/containers/create", params=params, body=config)["Id"]
        self.json("POST", f"/containers/{container_id}/start")
        if wait:
            self.json("POST", f"/containers/{container_id}/wait")
        return container_id

    def remove(self, container_id: str) -> None:
        self.request("DELETE", f"/containers/{container_id}", params={"force": "1"})

    def import_image(self, reference: str, extra_file: bytes | None = None) -> str:
        """`docker import` through the API: a busybox rootfs (plus one marker file, for a distinct layer)."""
        repo, tag = reference.rsplit(":", 1)
        changes = ['CMD ["/bin/sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        status, body = self.request(
            "POST",
            "/images/create",
            params=[("fromSrc", "-"), ("repo", repo), ("tag", tag)] + [("changes", c) for c in changes],  # type: ignore[arg-type]
            body=busybox_rootfs(extra_file),
            headers={"Content-Type": "application/x-tar"},
        )
        assert status == 200 and b'"error' not in body, body[:500]
        return str(self.json("GET", f"/images/{reference}/json")["Id"])


def busybox_rootfs(extra_file: bytes | None = None) -> bytes:
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for directory in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        if extra_file is not None:
            info = tarfile.TarInfo("etc/marker")
            info.size = len(extra_file)
            tar.addfile(info, io.BytesIO(extra_file))
    return out.getvalue()


def _wait_until(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None:
        skip_or_fail("dockerd is not installed (scripts/docker-engine.sh installs it; `make test` runs that)")
    if os.geteuid() != 0:
        skip_or_fail("dockerd needs root here; run the Docker tests as root (CI does)")
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="mcpl-docker-"))
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    command = [
        str(dockerd),
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'docker.pid'}",
        f"-H=unix://{sock}",
        *DAEMON_FLAGS,
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(sock, root, process.pid)
    try:
        if not _wait_until(lambda: process.poll() is None and engine.request("GET", "/_ping", timeout=2)[0] == 200, 30):
            tail = (root / "dockerd.log").read_text(errors="replace")[-1500:]
            skip_or_fail(f"dockerd did not start (exit {process.poll()}): {tail}")
        engine.import_image(TEST_IMAGE)
        yield engine
    finally:
        _stop(process, 30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Registry:
    address: str  # host:port on loopback


@pytest.fixture(scope="session")
def registry(engine: Engine) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        skip_or_fail("docker-registry is not installed (scripts/docker-engine.sh installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = engine.root / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {engine.root / 'registry'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (engine.root / "registry.log").open("wb")
    process = subprocess.Popen([str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    try:
        if not _wait_until(lambda: process.poll() is None and up(), 20):
            skip_or_fail(f"docker-registry did not start: {(engine.root / 'registry.log').read_text()[-800:]}")
        yield Registry(f"127.0.0.1:{port}")
    finally:
        _stop(process, 10)
        log.close()


def push(engine: Engine, reference: str) -> None:
    """Push through the API (the 20.10 engine wants an X-Registry-Auth header, even an empty one)."""
    name, tag = reference.rsplit(":", 1)
    status, body = engine.request(
        "POST",
        f"/images/{name}/push",
        params={"tag": tag},
        headers={"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()},
    )
    assert status == 200 and b'"error' not in body, body[-500:]


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> Iterator[LedgerApp]:
    ledger_app = create_app(
        ServerSettings(ledger_dir=tmp_path / "ledger", allow_destructive=True),
        {"docker": DockerSettings(host=engine.host)},
    )
    try:
        yield ledger_app
    finally:
        ledger_app.close()


class Caller:
    """Calls tools through a real in-process MCP client (a fresh connection per call)."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app

    async def call(
        self, tool: str, arguments: dict[str, Any], *, mode: Literal["auto", "legacy"] = "auto", progress: Any = None
    ) -> CallToolResult:
        async with Client(self.app.server, mode=mode) as client:
            return await client.call_tool(tool, arguments, progress_callback=progress)

    async def ok(
        self, tool: str, arguments: dict[str, Any], *, mode: Literal["auto", "legacy"] = "auto", progress: Any = None
    ) -> dict[str, Any]:
        async with Client(self.app.server, mode=mode) as client:
            return await call_ok(client, tool, arguments, progress_callback=progress)

    async def error(self, tool: str, arguments: dict[str, Any], *, mode: Literal["auto", "legacy"] = "auto") -> str:
        async with Client(self.app.server, mode=mode) as client:
            return await call_error(client, tool, arguments)


@pytest.fixture
def client(app: LedgerApp) -> Caller:
    return Caller(app)


@pytest.fixture
def container(engine: Engine) -> Iterator[Any]:
    """Start test containers; every one is removed after the test."""
    started: list[str] = []

    def start(command: list[str], **kwargs: Any) -> str:
        container_id = engine.run(command, **kwargs)
        started.append(container_id)
        return container_id

    yield start
    for container_id in started:
        engine.remove(container_id)


_SPEC: dict[str, Any] | None = None


def check_against_spec(path: str, method: str, status: str, body: Any) -> None:
    """Validate a raw engine response body against the Engine API 1.41 description (Swagger 2.0).

    Two Go zero values the real engine sends where the description does not say so (Swagger 2.0 has
    no nullable): null for a nil pointer, slice or map — even where it says ``x-nullable: false``
    (an imported image's Labels and RepoDigests), so the tools treat null as empty — and "" for an
    unset enum (e.g. Isolation on Linux). Both are accepted; everything else must match."""
    global _SPEC
    if _SPEC is None:
        _SPEC = json.loads(SPEC_PATH.read_text())
    schema = _SPEC["paths"][path][method]["responses"][status]["schema"]
    _EngineValidator({**schema, "definitions": _SPEC["definitions"]}).validate(body)


def check_definition(name: str, body: Any) -> None:
    """Validate a body against one of the description's definitions (the items of a JSON stream)."""
    global _SPEC
    if _SPEC is None:
        _SPEC = json.loads(SPEC_PATH.read_text())
    _EngineValidator({"$ref": f"#/definitions/{name}", "definitions": _SPEC["definitions"]}).validate(body)


def _enum_or_unset(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
    if instance == "" and schema.get("type") == "string":
        return
    yield from jsonschema._keywords.enum(validator, enums, instance, schema)


def _type_or_nil(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
    if instance is None:
        return
    yield from jsonschema._keywords.type(validator, types, instance, schema)


_EngineValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"enum": _enum_or_unset, "type": _type_or_nil}
)
