"""What agents see of every tool — name, description, schemas, annotations — changes only on purpose.

One snapshot per tool in tests/toolsnaps/, generated from the groups' code by ``make regenerate``:
after an intended change, run it and review the diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
import pytest
from mcp import Client

from server.app import create_app
from server.settings import ServerSettings
from tools import load_groups
from tools.regenerate import COMMAND, SNAPSHOTS, listed_tools, regenerate


def _snapshots() -> dict[str, object]:
    return {path.stem: orjson.loads(path.read_bytes()) for path in SNAPSHOTS.glob("*.json")}


async def test_every_tool_of_the_code_matches_its_snapshot_and_every_snapshot_has_a_tool() -> None:
    current = await listed_tools(load_groups())
    snapshots = _snapshots()
    missing = sorted(current.keys() - snapshots.keys())
    orphans = sorted(snapshots.keys() - current.keys())
    changed = sorted(name for name in current.keys() & snapshots.keys() if current[name] != snapshots[name])
    assert not missing, f"no snapshot for {missing}: run `{COMMAND}` and review the diff"
    assert not orphans, f"snapshots of tools that no longer exist: {orphans}: run `{COMMAND}`"
    assert not changed, f"tools changed: {changed}; if intended, run `{COMMAND}` and review the diff"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_default_server_lists_exactly_the_snapshots(tmp_path: Path, mode: Literal["auto", "legacy"]) -> None:
    app = create_app(ServerSettings(ledger_dir=tmp_path, allow_destructive=True))
    try:
        async with Client(app.server, mode=mode) as client:
            tools = (await client.list_tools()).tools
    finally:
        app.close()
    listed = {tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools}
    assert listed == _snapshots(), f"the served list differs from tests/toolsnaps: run `{COMMAND}`"
    for name, tool in listed.items():
        annotations = tool.get("annotations", {})
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert hint in annotations, f"{name} lacks an explicit {hint}"
        assert tool.get("description"), f"{name} has no description"


def test_regenerate_writes_a_snapshot_per_tool_and_removes_those_of_gone_tools(tmp_path: Path) -> None:
    snapshots, catalog = tmp_path / "toolsnaps", tmp_path / "catalog.json"
    snapshots.mkdir()
    (snapshots / "docker_container_teleport.json").write_bytes(b"{}\n")
    changed = regenerate(snapshots, catalog)
    assert snapshots / "docker_container_teleport.json" in changed
    assert sorted(path.name for path in snapshots.iterdir()) == sorted(path.name for path in SNAPSHOTS.iterdir())
    for path in snapshots.iterdir():
        assert path.read_bytes() == (SNAPSHOTS / path.name).read_bytes()
    assert regenerate(snapshots, catalog) == []
