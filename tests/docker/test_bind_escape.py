"""The symlink escape of the bind allow-list, tried on the real engine as a hostile agent would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.docker import DockerSettings
from tests.docker.conftest import TEST_IMAGE, Caller, Engine
from tests.harness import last_span

pytestmark = pytest.mark.docker


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """An allowed directory, and beside it a host file the agent must not reach."""
    (tmp_path / "shared" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("host original\n")
    return tmp_path


def _app(engine: Engine, host: Path, **docker: Any) -> LedgerApp:
    settings = DockerSettings(host=engine.host, allow_binds=[str(host / "shared")], **docker)
    return create_app(ServerSettings(ledger_dir=host / "ledger"), {"docker": settings})


@pytest.fixture
def writable(engine: Engine, host: Path) -> Iterator[Caller]:
    app = _app(engine, host, allow_bind_writes=True)
    try:
        yield Caller(app)
    finally:
        app.close()


def _containers(engine: Engine) -> set[str]:
    return {c["Id"] for c in engine.json("GET", "/containers/json", params={"all": "1"})}


async def _run(caller: Caller, binds: list[str], script: str) -> dict[str, Any]:
    arguments = {"image": TEST_IMAGE, "command": ["sh", "-c", script], "binds": binds, "network": "none"}
    return await caller.ok("docker_container_run", {**arguments, "detach": False, "auto_remove": True})


async def test_a_link_planted_by_a_container_cannot_redirect_a_later_bind(
    writable: Caller, engine: Engine, host: Path
) -> None:
    shared, outside = host / "shared", host / "outside"
    planted = await _run(writable, [f"{shared}:/data:rw"], "ln -s / /data/hostroot && ln -s /data /data/loop")
    assert planted["exit_code"] == 0
    assert os.readlink(shared / "hostroot") == "/"  # the link is on the host now, pointing at its root

    before = _containers(engine)
    for source in (f"{shared}/hostroot{outside}", f"{shared}/hostroot"):
        message = await writable.error(
            "docker_container_run",
            {
                "image": TEST_IMAGE,
                "command": ["sh", "-c", f"echo pwned > /x/secret.txt; echo pwned > /x{outside}/secret.txt"],
                "binds": [f"{source}:/x:rw"],
                "network": "none",
                "detach": False,
            },
        )
        assert "refused: bind mount of host path" in message and "is a symbolic link" in message
        assert last_span(writable.app, "docker_container_run")["status"]["code"] == "ERROR"
    assert _containers(engine) == before  # refused before anything was created
    assert (outside / "secret.txt").read_text() == "host original\n"


async def test_a_restart_does_not_mount_a_directory_swapped_for_a_link(
    writable: Caller, engine: Engine, host: Path
) -> None:
    shared, outside = host / "shared", host / "outside"
    victim = await writable.ok(
        "docker_container_run",
        {"image": TEST_IMAGE, "command": ["sleep", "300"], "binds": [f"{shared}/sub:/data:ro"], "network": "none"},
    )
    try:
        await writable.ok("docker_container_stop", {"container": victim["id"], "timeout_seconds": 0})
        swapped = await _run(writable, [f"{shared}:/data:rw"], f"mv /data/sub /data/old && ln -s {outside} /data/sub")
        assert swapped["exit_code"] == 0
        for tool in ("docker_container_start", "docker_container_restart"):
            message = await writable.error(tool, {"container": victim["id"]})
            assert "is a symbolic link" in message
        assert engine.json("GET", f"/containers/{victim['id']}/json")["State"]["Running"] is False
    finally:
        engine.remove(victim["id"])


async def test_binds_are_read_only_unless_the_operator_allows_writes(engine: Engine, host: Path) -> None:
    app = _app(engine, host)
    try:
        caller = Caller(app)
        shared = host / "shared"
        refused = await caller.error("docker_container_run", {"image": TEST_IMAGE, "binds": [f"{shared}:/data:rw"]})
        assert "--docker-allow-bind-writes" in refused
        # No mode given: mounted read-only, so a container cannot plant a link at all.
        attempt = await _run(caller, [f"{shared}:/data"], "ln -s / /data/hostroot")
        assert attempt["exit_code"] != 0 and "Read-only file system" in str(attempt["output"])
        assert not (shared / "hostroot").is_symlink()
    finally:
        app.close()
