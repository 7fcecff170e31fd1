"""tools/schemas.json holds every tool's input and output schema so the server need not derive them
at start-up; it must equal what the models say. After changing a model:
``UPDATE_SNAPSHOTS=1 pytest tests/tools/test_schema_cache.py tests/test_tool_schemas.py``."""

from __future__ import annotations

import os

import orjson

from server.gating import select_tools
from tools import load_groups
from tools._group import SCHEMA_CACHE, generate_schemas


def test_the_schema_cache_equals_the_models() -> None:
    specs = select_tools(load_groups(), allow_destructive=True)
    current = {spec.name: generate_schemas(spec) for spec in sorted(specs, key=lambda s: s.name)}
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SCHEMA_CACHE.write_bytes(orjson.dumps(current, option=orjson.OPT_SORT_KEYS) + b"\n")
    assert SCHEMA_CACHE.exists(), "no schema cache: UPDATE_SNAPSHOTS=1 pytest tests/tools/test_schema_cache.py"
    cached = orjson.loads(SCHEMA_CACHE.read_bytes())
    stale = sorted(name for name in current.keys() | cached.keys() if current.get(name) != cached.get(name))
    assert not stale, f"tools/schemas.json is stale for {stale}: UPDATE_SNAPSHOTS=1 pytest {__file__}"
