"""docker_volume_list and docker_network_list against the real engine: filters, the containers using each,
every match or a cursor to the rest, redacted driver options, and the objects named in the span."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mcp_ledger.server.app import LedgerApp
from mcp_ledger.tools.docker import networks, volumes
from tests.docker.conftest import TEST_IMAGE, TEST_LABEL, Caller, Engine, check_against_spec
from tests.harness import last_span, ledger_text

pytestmark = pytest.mark.docker

SECRET = "planted-volume-s3cret-91b2"


@pytest.fixture
def made(engine: Engine) -> Iterator[dict[str, list[str]]]:
    """Volumes, networks and containers a test creates; removed after it (containers first)."""
    objects: dict[str, list[str]] = {"containers": [], "volumes": [], "networks": []}
    yield objects
    for container_id in objects["containers"]:
        engine.remove(container_id)
    for name in objects["volumes"]:
        engine.request("DELETE", f"/volumes/{name}", params={"force": "1"})
    for name in objects["networks"]:
        engine.request("DELETE", f"/networks/{name}")


def create_container(engine: Engine, made: dict[str, list[str]], name: str, **host_config: Any) -> str:
    config = {"Image": TEST_IMAGE, "Cmd": ["true"], "Labels": {TEST_LABEL: "1"}, "HostConfig": host_config}
    container_id: str = engine.json("POST", "/containers/create", params={"name": name}, body=config)["Id"]
    made["containers"].append(container_id)
    return container_id


async def test_volume_list_names_the_containers_using_each_and_filters(
    client: Caller, app: LedgerApp, engine: Engine, made: dict[str, list[str]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    for suffix, labels, options in (
        ("a", {"team": "ops"}, {}),
        ("b", {}, {"type": "tmpfs", "device": "tmpfs", "o": f"size=1m,password={SECRET}"}),
        ("c", {"team": "ops"}, {}),
    ):
        body = {"Name": f"vol-{tag}-{suffix}", "Labels": labels, "DriverOpts": options}
        engine.json("POST", "/volumes/create", body=body)
        made["volumes"].append(f"vol-{tag}-{suffix}")
    user = create_container(engine, made, f"uses-{tag}", Binds=[f"vol-{tag}-a:/data"], NetworkMode="none")

    listed = await client.ok("docker_volume_list", {"name": tag})
    assert [v["name"] for v in listed["volumes"]] == [f"vol-{tag}-a", f"vol-{tag}-b", f"vol-{tag}-c"]
    assert listed["total"] == 3 and listed["next_cursor"] is None
    first, second = listed["volumes"][:2]
    assert first["containers"] == [{"id": user, "name": f"uses-{tag}"}] and second["containers"] == []
    assert first["driver"] == "local" and first["labels"] == {"team": "ops"} and first["mountpoint"]
    assert second["options"]["type"] == "tmpfs" and SECRET not in second["options"]["o"]

    upstream = last_span(app, "docker_volume_list")["upstream"]
    assert upstream["volume_names"] == [v["name"] for v in listed["volumes"]]
    assert upstream["container_ids"] == [user] and upstream["api_version"] == "1.41"
    assert SECRET not in ledger_text(app)

    unused = await client.ok("docker_volume_list", {"name": tag, "dangling": True})
    assert [v["name"] for v in unused["volumes"]] == [f"vol-{tag}-b", f"vol-{tag}-c"]
    labelled = await client.ok("docker_volume_list", {"name": tag, "label": ["team=ops"], "driver": "local"})
    assert [v["name"] for v in labelled["volumes"]] == [f"vol-{tag}-a", f"vol-{tag}-c"]
    assert (await client.ok("docker_volume_list", {"name": tag, "driver": "no-such-driver"}))["volumes"] == []

    check_against_spec("/volumes", "get", "200", engine.json("GET", "/volumes"))


async def test_volume_list_pages_with_a_cursor_to_the_rest(
    client: Caller, engine: Engine, made: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(volumes, "PAGE", 2)
    tag = uuid.uuid4().hex[:8]
    for i in range(5):
        engine.json("POST", "/volumes/create", body={"Name": f"page-{tag}-{i}"})
        made["volumes"].append(f"page-{tag}-{i}")
    seen, cursor, pages = [], None, 0
    while True:
        page = await client.ok("docker_volume_list", {"name": tag, **({"cursor": cursor} if cursor else {})})
        assert page["total"] == 5
        seen += [v["name"] for v in page["volumes"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"page-{tag}-{i}" for i in range(5)] and pages == 3
    message = await client.error("docker_volume_list", {"name": tag, "cursor": "page-gone"})
    assert "cursor: not from this listing" in message


async def test_network_list_names_attached_containers_and_filters(
    client: Caller, app: LedgerApp, engine: Engine, made: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = {}
    for suffix in ("a", "b"):
        name = f"net-{tag}-{suffix}"
        body = {"Name": name, "Driver": "bridge", "Internal": True, "Labels": {"team": suffix}}
        ids[suffix] = engine.json("POST", "/networks/create", body=body)["Id"]
        made["networks"].append(name)
    user = create_container(engine, made, f"on-{tag}", NetworkMode=f"net-{tag}-a")

    listed = await client.ok("docker_network_list", {"name": tag})
    assert [n["name"] for n in listed["networks"]] == [f"net-{tag}-a", f"net-{tag}-b"]
    assert listed["total"] == 2 and listed["next_cursor"] is None
    first, second = listed["networks"]
    assert first["id"] == ids["a"] and first["driver"] == "bridge" and first["internal"] is True
    assert first["containers"] == [{"id": user, "name": f"on-{tag}"}] and second["containers"] == []
    assert first["labels"] == {"team": "a"} and first["subnets"]

    upstream = last_span(app, "docker_network_list")["upstream"]
    assert upstream["network_ids"] == [ids["a"], ids["b"]] and upstream["container_ids"] == [user]

    by_label = await client.ok("docker_network_list", {"name": tag, "label": ["team=b"], "driver": "bridge"})
    assert [n["id"] for n in by_label["networks"]] == [ids["b"]]
    builtin = await client.ok("docker_network_list", {"name": "none", "dangling": False})
    assert "none" in [n["name"] for n in builtin["networks"]]

    monkeypatch.setattr(networks, "PAGE", 1)
    page = await client.ok("docker_network_list", {"name": tag})
    assert [n["id"] for n in page["networks"]] == [ids["a"]] and page["next_cursor"] == ids["a"]
    rest = await client.ok("docker_network_list", {"name": tag, "cursor": page["next_cursor"]})
    assert [n["id"] for n in rest["networks"]] == [ids["b"]] and rest["next_cursor"] is None

    check_against_spec("/networks", "get", "200", engine.json("GET", "/networks"))
