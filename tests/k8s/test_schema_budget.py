"""What the k8s tools cost every session's context: within the group's budget of the tools/list bytes."""

from __future__ import annotations

from pathlib import Path

import orjson
from mcp import Client

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings

BUDGET_BYTES = 9_000  # name, description, input schema and annotations of the ten tools, compact JSON


async def test_the_k8s_tools_fit_their_schema_budget(tmp_path: Path) -> None:
    app = create_app(ServerSettings(ledger_dir=tmp_path / "ledger", toolsets=["k8s"], allow_destructive=True))
    try:
        async with Client(app.server) as client:
            tools = [t for t in (await client.list_tools()).tools if t.name.startswith("k8s_")]
    finally:
        app.close()
    assert len(tools) == 10
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    for tool in listed:
        tool.pop("outputSchema", None)  # not published by default
    assert len(orjson.dumps(listed)) <= BUDGET_BYTES
