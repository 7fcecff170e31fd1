"""A real `mcp-ledger serve --transport http` with authentication, and tokens planted to be looked for.

Every token here is made at run time (no scanner flags the file, and none can be in the code under
test); after a scenario the tests look for each one, byte for byte, in everything the server wrote.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_ledger import provenance

ALICE = "alice_" + secrets.token_urlsafe(24)  # policy all
READER = "reader_" + secrets.token_urlsafe(24)  # read-only
WRITER = "writer_" + secrets.token_urlsafe(24)  # read-write
CAROL = "carol_" + secrets.token_urlsafe(24)  # added while the server runs
WRONG = "wrong_" + secrets.token_urlsafe(24)  # in no file
PLANTED = [ALICE, READER, WRITER, CAROL, WRONG]

# --toolsets docker,prov --allow-destructive: what each class of caller sees.
READ_TOOLS = {
    "docker_container_inspect",
    "docker_container_list",
    "docker_container_logs",
    "docker_container_stats",
    "docker_image_inspect",
    "docker_image_list",
    "docker_network_list",
    "docker_system_info",
    "docker_volume_list",
    "prov_errors",
    "prov_query",
    "prov_span",
    "prov_stats",
    "prov_trace",
    "prov_verify",
}
WRITE_TOOLS = {
    "docker_container_restart",
    "docker_container_run",
    "docker_container_start",
    "docker_container_stop",
    "docker_image_pull",
}
DESTRUCTIVE_TOOLS = {"docker_container_remove", "docker_image_remove"}

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
LIST_TOOLS = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
CALL = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"prov_stats","arguments":{}}}'


def bearer(token: str) -> dict[str, str]:
    """Headers of a raw JSON-RPC POST with a bearer token."""
    return {**HEADERS, "authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tokens(path: Path, lines: Sequence[str]) -> None:
    """Replace the file the way an editor does (a new file renamed over the old one)."""
    new = path.with_suffix(".new")
    new.write_text("".join(line + "\n" for line in lines))
    new.chmod(0o600)
    new.replace(path)


@dataclass
class Served:
    url: str
    ledger: Path
    stderr: Path
    proc: subprocess.Popen[bytes]

    def spans(self) -> list[dict[str, Any]]:
        return list(provenance.Ledger(self.ledger).scan()) if self.ledger.is_dir() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@contextmanager
def serve(tmp_path: Path, *flags: str, host: str = "127.0.0.1", port: int | None = None) -> Iterator[Served]:
    """`mcp-ledger serve --transport http` on a free loopback port until the block ends."""
    port = port or free_port()
    ledger = tmp_path / "ledger"
    stderr = tmp_path / "stderr.txt"
    args = [
        sys.executable,
        "-m",
        "mcp_ledger.server",
        "serve",
        "--transport",
        "http",
        "--host",
        host,
        "--port",
        str(port),
    ]
    env = {**os.environ, "MCP_LEDGER_DIR": str(ledger), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    with stderr.open("w") as log:
        proc = subprocess.Popen([*args, *flags], env=env, stdout=subprocess.DEVNULL, stderr=log)
        served = Served(f"http://127.0.0.1:{port}/mcp", ledger, stderr, proc)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited ({proc.returncode}): {stderr.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield served
        finally:
            served.stop()


@asynccontextmanager
async def connect(url: str, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    """The MCP SDK's own client over streamable HTTP, sending ``token`` as a bearer token."""
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as session,
    ):
        yield session


async def assert_refused(url: str, token: str | None) -> None:
    """The SDK's client cannot even connect: its first request is answered 401 (an MCPError in task groups)."""
    with pytest.RaisesGroup(MCPError, flatten_subgroups=True, allow_unwrapped=True):
        async with connect(url, token) as session:
            await session.list_tools()


def assert_nothing_holds(needles: Sequence[str], *places: Path | str) -> None:
    """No needle in any file under the given paths (byte for byte) nor in any given text."""
    for place in places:
        if isinstance(place, Path):
            files = [p for p in place.rglob("*") if p.is_file()] if place.is_dir() else [place]
            for path in files:
                data = path.read_bytes()
                for needle in needles:
                    assert needle.encode() not in data, f"a planted token is in {path}"
        else:
            for needle in needles:
                assert needle not in place, "a planted token is in a result"
