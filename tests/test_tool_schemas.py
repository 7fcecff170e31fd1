"""What agents see of every tool — name, description, schemas, annotations — changes only on purpose.

After an intended change: ``UPDATE_SNAPSHOTS=1 pytest tests/test_tool_schemas.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from mcp import Client

from server.app import create_app
from server.settings import ServerSettings

SNAPSHOT = Path(__file__).with_name("tool_schemas.json")


async def test_every_tool_schema_matches_the_snapshot(tmp_path: Path) -> None:
    app = create_app(ServerSettings(ledger_dir=tmp_path, allow_destructive=True))
    try:
        async with Client(app.server) as client:
            tools = (await client.list_tools()).tools
    finally:
        app.close()
    current = {
        tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"name"})
        for tool in sorted(tools, key=lambda t: t.name)
    }
    rendered = orjson.dumps(current, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_bytes(rendered)
    assert SNAPSHOT.exists(), "no snapshot yet: run UPDATE_SNAPSHOTS=1 pytest tests/test_tool_schemas.py"
    assert orjson.loads(SNAPSHOT.read_bytes()) == orjson.loads(rendered), (
        "tool schemas changed; if intended, UPDATE_SNAPSHOTS=1 pytest tests/test_tool_schemas.py and review the diff"
    )
    for name, tool in current.items():
        annotations = tool.get("annotations", {})
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert hint in annotations, f"{name} lacks an explicit {hint}"
        assert tool.get("description"), f"{name} has no description"
