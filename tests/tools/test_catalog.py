"""tools/catalog.json lets a server list every tool without importing its group; it must say exactly
what the groups' code says. After changing a tool: ``make regenerate`` and review the diff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from mcp import Client

from mcp_ledger import tools
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.server.toolbridge import generate_catalog
from mcp_ledger.tools import CATALOG, REGISTRY, load_groups, source_digest
from mcp_ledger.tools.regenerate import COMMAND


def test_the_catalog_equals_the_groups() -> None:
    current = generate_catalog(load_groups())
    assert CATALOG.exists(), f"no catalog: run `{COMMAND}`"
    cached = orjson.loads(CATALOG.read_bytes())
    stale_groups = sorted(
        name
        for name in current["groups"].keys() | cached["groups"].keys()
        if current["groups"].get(name) != cached["groups"].get(name)
    )
    stale_tools = sorted(
        name
        for name in current["tools"].keys() | cached["tools"].keys()
        if current["tools"].get(name) != cached["tools"].get(name)
    )
    assert not stale_groups, f"tools/catalog.json is stale for groups {stale_groups}: run `{COMMAND}`"
    assert not stale_tools, f"tools/catalog.json is stale for {stale_tools}: run `{COMMAND}`"


def test_a_source_digest_covers_every_file_of_a_group_package(tmp_path: Path) -> None:
    package = tmp_path / "digested"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "tools.py").write_text("A = 1\n")
    sys.path.insert(0, str(tmp_path))
    REGISTRY["digested"] = "digested"
    try:
        before = source_digest("digested")
        (package / "sub" / "tools.py").write_text("A = 2\n")
        assert source_digest("digested") != before
    finally:
        del REGISTRY["digested"]
        sys.path.remove(str(tmp_path))


async def test_a_group_whose_source_changed_is_listed_from_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = orjson.loads(CATALOG.read_bytes())
    for entry in catalog["tools"].values():
        entry["description"] = "what the catalog said"
    catalog["groups"]["prov"]["source"] = "sha256:" + "0" * 64  # as if tools/prov.py had been edited since
    stale = tmp_path / "catalog.json"
    stale.write_bytes(orjson.dumps(catalog))
    monkeypatch.setattr(tools, "CATALOG", stale)
    tools.load_catalog.cache_clear()
    try:
        app = create_app(ServerSettings(ledger_dir=tmp_path / "ledger", allow_destructive=True))
        try:
            async with Client(app.server) as client:
                listed = {tool.name: tool.description for tool in (await client.list_tools()).tools}
        finally:
            app.close()
    finally:
        tools.load_catalog.cache_clear()
    assert listed["prov_span"] == next(s for s in tools.load_group("prov").tools if s.name == "prov_span").description
    assert listed["docker_container_list"] == "what the catalog said"  # current groups still come from the catalog


def test_a_server_starts_without_importing_any_group_module() -> None:
    heavy = ("mcp_ledger.tools.docker._tools", "mcp_ledger.tools.github.", "aiodocker", "githubkit")
    code = (
        "import sys, tempfile, anyio\n"
        "from mcp_ledger.server.app import create_app\n"
        "from mcp_ledger.server.settings import ServerSettings\n"
        "from mcp_ledger.server.gating import opt_in_tools\n"
        "from mcp_ledger.tools import load_catalog\n"
        "opt_in = [name for name, e in load_catalog()['tools'].items() if e['opt_in']]\n"
        "app = create_app(ServerSettings(ledger_dir=tempfile.mkdtemp(), allow_destructive=True, tools=opt_in))\n"
        "print(len(anyio.run(app.server.list_tools)))\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert int(out[0]) == len(orjson.loads(CATALOG.read_bytes())["tools"])
    assert out[1] == "[]"
    assert set(REGISTRY) == set(orjson.loads(CATALOG.read_bytes())["groups"])
