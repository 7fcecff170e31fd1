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

from mcp_ledger.server.app import create_app
from mcp_ledger.server.gating import opt_in_tools
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import load_groups
from mcp_ledger.tools.regenerate import COMMAND, SNAPSHOTS, listed_tools, regenerate
from tests.harness import effective_hints


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
@pytest.mark.parametrize("output_schemas", [False, True])
async def test_a_server_lists_exactly_the_snapshots(
    tmp_path: Path, mode: Literal["auto", "legacy"], output_schemas: bool
) -> None:
    """By default without output schemas (structured results are still returned); with
    --output-schemas, every snapshot as it is."""
    every = ServerSettings(
        ledger_dir=tmp_path, allow_destructive=True, output_schemas=output_schemas, tools=opt_in_tools(load_groups())
    )
    app = create_app(every)
    try:
        async with Client(app.server, mode=mode) as client:
            tools = (await client.list_tools()).tools
    finally:
        app.close()
    listed = {tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools}
    expected = _snapshots()
    if not output_schemas:
        expected = {name: {k: v for k, v in snap.items() if k != "outputSchema"} for name, snap in expected.items()}  # type: ignore[attr-defined]
    assert listed == expected, f"the served list differs from tests/toolsnaps: run `{COMMAND}`"
    for name, tool in listed.items():
        assert tool.get("description"), f"{name} has no description"


async def test_annotations_say_what_each_tool_does_with_mcp_defaults_left_out(tmp_path: Path) -> None:
    """Hints equal to MCP's defaults are left out; read as a client reads them, each tool's are its own."""
    groups = load_groups()
    app = create_app(ServerSettings(ledger_dir=tmp_path, allow_destructive=True, tools=opt_in_tools(groups)))
    try:
        async with Client(app.server) as client:
            listed = {tool.name: tool.annotations for tool in (await client.list_tools()).tools}
    finally:
        app.close()
    for spec in (spec for group in groups for spec in group.tools):
        hints = effective_hints(listed[spec.name])
        assert hints["readOnlyHint"] is spec.hints.read_only, spec.name
        assert hints["openWorldHint"] is spec.hints.open_world, spec.name
        if not spec.hints.read_only:  # the spec: meaningful only for a tool that is not read-only
            assert hints["destructiveHint"] is spec.hints.destructive, spec.name
            assert hints["idempotentHint"] is spec.hints.idempotent, spec.name


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


async def test_without_listed_output_schemas_results_are_still_structured_and_match_them(tmp_path: Path) -> None:
    """The default listing leaves output schemas out; the results keep structuredContent, which is what
    the snapshot's output schema says (the client cannot check it here, so the test does)."""
    from jsonschema import Draft202012Validator

    app = create_app(ServerSettings(ledger_dir=tmp_path, output_schemas=False))
    try:
        async with Client(app.server) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            result = await client.call_tool("prov_stats", {})
    finally:
        app.close()
    assert all(tool.output_schema is None for tool in listed.values())
    assert not result.is_error and result.structured_content is not None
    schema = _snapshots()["prov_stats"]["outputSchema"]  # type: ignore[index]
    Draft202012Validator(schema).validate(result.structured_content)


async def test_the_default_tool_list_of_every_group_stays_within_48_kb(tmp_path: Path) -> None:
    """The budget every agent pays in every session (DEVELOPERS.md): the compact JSON of the default
    tools/list with every group on. A new tool that would break it is made opt-in (--tools) instead."""
    app = create_app(ServerSettings(ledger_dir=tmp_path, output_schemas=False), groups=load_groups())
    try:
        async with Client(app.server) as client:
            tools = (await client.list_tools()).tools
    finally:
        app.close()
    size = len(orjson.dumps({"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]}))
    assert size <= 48_000, f"the default tools/list is {size:,} bytes (budget 48,000)"
