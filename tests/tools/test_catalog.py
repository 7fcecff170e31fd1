"""tools/catalog.json lets a server list every tool without importing its group; it must say exactly
what the groups say. After changing a tool: ``UPDATE_SNAPSHOTS=1 pytest tests/tools/test_catalog.py
tests/test_tool_schemas.py`` and review the diff."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from server.toolbridge import generate_catalog
from tools import CATALOG, REGISTRY, load_groups


def test_the_catalog_equals_the_groups() -> None:
    current = generate_catalog(load_groups())
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        CATALOG.write_bytes(orjson.dumps(current, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n")
    assert CATALOG.exists(), f"no catalog: UPDATE_SNAPSHOTS=1 pytest {__file__}"
    cached = orjson.loads(CATALOG.read_bytes())
    assert cached["groups"] == current["groups"]
    stale = sorted(
        name
        for name in current["tools"].keys() | cached["tools"].keys()
        if current["tools"].get(name) != cached["tools"].get(name)
    )
    assert not stale, f"tools/catalog.json is stale for {stale}: UPDATE_SNAPSHOTS=1 pytest {__file__}"


def test_a_server_starts_without_importing_any_group_module() -> None:
    heavy = ("tools.docker._tools", "tools.github.", "aiodocker", "githubkit")
    code = (
        "import sys, tempfile, anyio\n"
        "from server.app import create_app\n"
        "from server.settings import ServerSettings\n"
        "app = create_app(ServerSettings(ledger_dir=tempfile.mkdtemp(), allow_destructive=True))\n"
        "print(len(anyio.run(app.server.list_tools)))\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert int(out[0]) == len(orjson.loads(CATALOG.read_bytes())["tools"])
    assert out[1] == "[]"
    assert set(REGISTRY) == set(orjson.loads(CATALOG.read_bytes())["groups"])
