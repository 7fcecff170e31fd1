"""Start/stop/restart/remove, run (detached and not), refusals, gating and an unreachable engine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.docker import DockerSettings
from tests.docker.conftest import TEST_IMAGE, Caller, Engine
from tests.harness import effective_hints, last_span, ledger_text, spans

pytestmark = pytest.mark.docker

SECRET = "planted-run-s3cret-4b9e21"


async def test_stop_start_restart_report_state_and_change(
    client: Caller, app: Any, engine: Engine, container: Any
) -> None:
    container_id = container(["sleep", "300"])
    stopped = await client.ok("docker_container_stop", {"container": container_id, "timeout_seconds": 0})
    assert stopped["changed"] is True and stopped["state"]["running"] is False
    assert engine.json("GET", f"/containers/{container_id}/json")["State"]["Running"] is False
    again = await client.ok("docker_container_stop", {"container": container_id})
    assert again["changed"] is False

    started = await client.ok("docker_container_start", {"container": container_id})
    assert started["changed"] is True and started["state"]["running"] is True
    assert (await client.ok("docker_container_start", {"container": container_id}))["changed"] is False

    pid_before = engine.json("GET", f"/containers/{container_id}/json")["State"]["Pid"]
    restarted = await client.ok("docker_container_restart", {"container": container_id, "timeout_seconds": 0})
    assert restarted["state"]["running"] is True and restarted["state"]["pid"] != pid_before

    for tool in ("docker_container_stop", "docker_container_start", "docker_container_restart"):
        upstream = last_span(app, tool)["upstream"]
        assert upstream["container_id"] == container_id and upstream["container_name"] == started["name"]
        assert upstream["api_version"] == "1.41"


async def test_run_not_detached_returns_exit_code_and_both_streams(client: Caller, app: Any, engine: Engine) -> None:
    result = await client.ok(
        "docker_container_run",
        {
            "image": TEST_IMAGE,
            "command": ["sh", "-c", "echo to-out; echo to-err >&2; exit 7"],
            "env": {"DB_PASSWORD": SECRET, "MODE": SECRET},
            "labels": {"purpose": "test"},
            "network": "none",
            "detach": False,
            "auto_remove": True,
            "memory_bytes": 64 * 1024 * 1024,
            "cpus": 0.5,
        },
        mode="legacy",
    )
    assert result["exit_code"] == 7 and result["status"] == "exited" and result["timed_out"] is False
    # The engine copies stdout and stderr separately, so their relative order is not fixed.
    assert sorted(result["output"], key=lambda line: line["stream"]) == [
        {"stream": "stderr", "text": "to-err"},
        {"stream": "stdout", "text": "to-out"},
    ]
    assert result["removed"] is True
    status, _ = engine.request("GET", f"/containers/{result['id']}/json")
    assert status == 404
    upstream = last_span(app, "docker_container_run")["upstream"]
    assert upstream["container_id"] == result["id"] and upstream["exit_code"] == 7
    assert upstream["image_id"] == result["image_id"] and upstream["container_name"] == result["name"]
    assert SECRET not in ledger_text(app)


async def test_run_detached_then_inspect_shows_limits_and_redacted_env(
    client: Caller, app: Any, engine: Engine
) -> None:
    name = f"run-{uuid.uuid4().hex[:8]}"
    run = await client.ok(
        "docker_container_run",
        {
            "image": TEST_IMAGE,
            "command": ["sleep", "300"],
            "name": name,
            "env": {"API_KEY": SECRET},
            "network": "none",
            "memory_bytes": 32 * 1024 * 1024,
            "cpus": 0.25,
        },
    )
    try:
        assert run["detached"] is True and run["status"] == "running" and run["exit_code"] is None
        details = await client.ok("docker_container_inspect", {"container": name})
        assert details["id"] == run["id"] and details["env"] == ["API_KEY=[REDACTED]", "PATH=[REDACTED]"]
        assert details["memory_limit_bytes"] == 32 * 1024 * 1024 and details["nano_cpus"] == 250_000_000
        assert SECRET not in ledger_text(app)
    finally:
        engine.remove(run["id"])


async def test_run_times_out_and_says_it_keeps_running(client: Caller, engine: Engine) -> None:
    run = await client.ok(
        "docker_container_run",
        {
            "image": TEST_IMAGE,
            "command": ["sh", "-c", "echo begun; sleep 300"],
            "network": "none",
            "detach": False,
            "timeout_seconds": 1,
        },
    )
    try:
        assert run["timed_out"] is True and run["exit_code"] is None and run["status"] == "running"
        assert run["output"] == [{"stream": "stdout", "text": "begun"}] and "keeps running" in run["note"]
    finally:
        engine.remove(run["id"])


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"privileged": True}, "refused: privileged"),
        ({"cap_add": ["SYS_ADMIN"]}, "refused: adding capabilities"),
        ({"pid_mode": "host"}, "refused: pid_mode=host"),
        ({"ipc_mode": "host"}, "refused: ipc_mode=host"),
        ({"binds": ["/etc:/host-etc:ro"]}, "refused: bind mount of host path /etc"),
        ({"binds": ["/srv/data/../../etc:/x"]}, "refused: bind mount of host path"),
    ],
)
async def test_run_refuses_host_access(
    client: Caller, app: Any, engine: Engine, arguments: dict[str, Any], expected: str
) -> None:
    before = {c["Id"] for c in engine.json("GET", "/containers/json", params={"all": "1"})}
    message = await client.error("docker_container_run", {"image": TEST_IMAGE, "command": ["true"], **arguments})
    assert expected in message
    after = {c["Id"] for c in engine.json("GET", "/containers/json", params={"all": "1"})}
    assert after == before
    assert last_span(app, "docker_container_run")["status"]["code"] == "ERROR"


async def test_run_binds_an_allowed_host_path(engine: Engine, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    app = create_app(
        ServerSettings(ledger_dir=tmp_path / "ledger"),
        {"docker": DockerSettings(host=engine.host, allow_binds=[str(shared)])},
    )
    try:
        caller = Caller(app)
        run = await caller.ok(
            "docker_container_run",
            {
                "image": TEST_IMAGE,
                "command": ["cat", "/data/hello.txt"],
                "binds": [f"{shared}:/data:ro"],
                "network": "none",
                "detach": False,
                "auto_remove": True,
            },
        )
        assert run["exit_code"] == 0 and run["output"] == [{"stream": "stdout", "text": "from the host"}]
        outside = await caller.error(
            "docker_container_run", {"image": TEST_IMAGE, "binds": [f"{tmp_path}:/data"], "network": "none"}
        )
        assert f"allowed: {shared}" in outside
    finally:
        app.close()


async def test_run_of_a_missing_image_says_to_pull_it(client: Caller) -> None:
    message = await client.error("docker_container_run", {"image": "local/not-there:1", "network": "none"})
    assert "image 'local/not-there:1' not found" in message
    assert "pull it first with docker_image_pull" in message


async def test_run_on_a_missing_network_names_it_and_leaves_nothing_behind(client: Caller, engine: Engine) -> None:
    before = {c["Id"] for c in engine.json("GET", "/containers/json", params={"all": "1"})}
    message = await client.error("docker_container_run", {"image": TEST_IMAGE, "network": "no-such-net"})
    assert "no-such-net" in message and "not found" in message
    assert {c["Id"] for c in engine.json("GET", "/containers/json", params={"all": "1"})} == before


async def test_remove_container_is_recorded_and_gone(client: Caller, app: Any, engine: Engine) -> None:
    container_id = engine.run(["sleep", "300"])
    refused = await client.error("docker_container_remove", {"container": container_id})
    assert "conflict" in refused and "running" in refused
    removed = await client.ok("docker_container_remove", {"container": container_id, "force": True})
    assert removed == {"id": container_id, "name": removed["name"], "removed": True}
    assert engine.request("GET", f"/containers/{container_id}/json")[0] == 404
    span = last_span(app, "docker_container_remove")
    assert span["upstream"]["container_id"] == container_id
    assert span["attributes"]["mcp-ledger.tool.destructive"] is True
    gone = await client.error("docker_container_remove", {"container": container_id})
    assert f"container '{container_id}' not found" in gone


async def test_image_remove(client: Caller, app: Any, engine: Engine) -> None:
    image_id = engine.import_image("local/removable:1", extra_file=uuid.uuid4().bytes)
    removal = await client.ok("docker_image_remove", {"image": "local/removable:1"})
    assert removal["image_id"] == image_id and "local/removable:1" in removal["untagged"]
    assert image_id in removal["deleted"]
    assert engine.request("GET", "/images/local/removable:1/json")[0] == 404
    assert last_span(app, "docker_image_remove")["upstream"]["image_id"] == image_id


def _tools(app: Any) -> dict[str, Any]:
    return {tool.name: tool for tool in app.server._tool_manager.list_tools()}


async def test_annotations_and_gating(engine: Engine, tmp_path: Path) -> None:
    settings = {"docker": DockerSettings(host=engine.host)}
    read_only = create_app(ServerSettings(ledger_dir=tmp_path / "a", read_only=True), settings)
    default = create_app(ServerSettings(ledger_dir=tmp_path / "b"), settings)
    destructive = create_app(ServerSettings(ledger_dir=tmp_path / "c", allow_destructive=True), settings)
    try:
        async with _client(read_only) as c:
            listed = {t.name: t for t in (await c.list_tools()).tools if t.name.startswith("docker_")}
        assert sorted(listed) == sorted(
            [
                "docker_system_info",
                "docker_container_list",
                "docker_container_inspect",
                "docker_container_logs",
                "docker_container_stats",
                "docker_image_list",
                "docker_image_inspect",
                "docker_volume_list",
                "docker_network_list",
            ]
        )
        assert all(t.annotations and t.annotations.read_only_hint for t in listed.values())
        async with _client(default) as c:
            offered = {t.name: t for t in (await c.list_tools()).tools if t.name.startswith("docker_")}
            hidden = await c.call_tool("docker_container_remove", {"container": "x"})
        assert "docker_container_remove" not in offered and "docker_image_remove" not in offered
        assert hidden.is_error
        for name in (
            "docker_container_start",
            "docker_container_stop",
            "docker_container_restart",
            "docker_image_pull",
            "docker_container_run",
        ):
            hints = effective_hints(offered[name].annotations)
            assert hints["readOnlyHint"] is False and hints["destructiveHint"] is False
        async with _client(destructive) as c:
            everything = {t.name: t for t in (await c.list_tools()).tools if t.name.startswith("docker_")}
        assert len(everything) == 16
        for name in ("docker_container_remove", "docker_image_remove"):
            assert effective_hints(everything[name].annotations)["destructiveHint"] is True
    finally:
        for app in (read_only, default, destructive):
            app.close()


def _client(app: Any) -> Any:
    from mcp import Client

    return Client(app.server, mode="auto")


async def test_unreachable_engine_is_a_clear_error_and_the_server_stays_up(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/no-engine.sock"
    app = create_app(ServerSettings(ledger_dir=tmp_path / "ledger"), {"docker": DockerSettings(host=address)})
    try:
        caller = Caller(app)
        message = await caller.error("docker_container_list", {})
        assert f"cannot reach the Docker engine at {address} (from --docker-host)" in message
        assert "Start dockerd" in message
        again = await caller.error("docker_system_info", {})
        assert address in again
        verified = await caller.ok("prov_verify", {})
        assert verified["ok"] is True
        assert [s["status"]["code"] for s in spans(app) if s["name"].startswith("tools/call docker_")] == [
            "ERROR",
            "ERROR",
        ]
    finally:
        app.close()


async def test_engine_from_docker_host_and_from_the_cli_context(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import json

    monkeypatch.setenv("DOCKER_HOST", engine.host)
    app = create_app(ServerSettings(ledger_dir=tmp_path / "a"), {"docker": DockerSettings()})
    try:
        info = await Caller(app).ok("docker_system_info", {})
        assert info["address"] == f"{engine.host} (from DOCKER_HOST)"
    finally:
        app.close()

    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    meta = tmp_path / ".docker" / "contexts" / "meta" / hashlib.sha256(b"ci").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "ci", "Endpoints": {"docker": {"Host": engine.host}}}))
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"currentContext": "ci"}))
    app = create_app(ServerSettings(ledger_dir=tmp_path / "b"), {"docker": DockerSettings()})
    try:
        info = await Caller(app).ok("docker_system_info", {})
        assert info["address"] == f"{engine.host} (from Docker CLI context 'ci')"
    finally:
        app.close()
