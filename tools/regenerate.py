"""Regenerate everything derived from the tool groups' code: ``tools/catalog.json`` and one snapshot per
tool in ``tests/toolsnaps/<tool>.json`` (what agents see: name, description, schemas, annotations).

    make regenerate          # or: python -m mcp_ledger.tools.regenerate [--check]

Snapshots are what a server built from the groups' code lists through an MCP client, never what the
catalog says, so a stale catalog cannot hide in them. ``--check`` writes nothing and exits 1 when any
file is stale; ``tests/test_toolsnaps.py`` and ``tests/tools/test_catalog.py`` fail the same way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import orjson
from mcp import Client

from mcp_ledger.tools import CATALOG, load_groups
from mcp_ledger.tools.group import ToolGroup

__all__ = ["COMMAND", "SNAPSHOTS", "derived_files", "listed_tools", "regenerate", "stale_files"]

COMMAND = "make regenerate"
SNAPSHOTS = Path(__file__).resolve().parents[1] / "tests" / "toolsnaps"


def _render(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


async def listed_tools(groups: list[ToolGroup[Any]]) -> dict[str, dict[str, Any]]:
    """Every tool of ``groups`` as a server built from them lists it (``tools/list`` over MCP), output
    schemas included (a snapshot is also the contract of what a tool returns); opt-in tools named."""
    from mcp_ledger.server.app import create_app  # the server imports tools: load it only when listing
    from mcp_ledger.server.settings import ServerSettings

    with tempfile.TemporaryDirectory() as ledger:
        from mcp_ledger.server.gating import opt_in_tools

        every = ServerSettings(
            ledger_dir=Path(ledger), allow_destructive=True, output_schemas=True, tools=opt_in_tools(groups)
        )
        app = create_app(every, groups=groups)
        try:
            async with Client(app.server) as client:
                tools = (await client.list_tools()).tools
        finally:
            app.close()
    return {tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools}


def derived_files(snapshots: Path = SNAPSHOTS, catalog: Path = CATALOG) -> dict[Path, bytes]:
    """Every derived file and the bytes it must hold."""
    from mcp_ledger.server.toolbridge import generate_catalog

    groups = load_groups()
    files = {catalog: _render(generate_catalog(groups))}
    for name, tool in anyio.run(listed_tools, groups).items():
        files[snapshots / f"{name}.json"] = _render(tool)
    return files


def stale_files(snapshots: Path = SNAPSHOTS, catalog: Path = CATALOG) -> list[str]:
    """Derived files that are missing or differ, and snapshots of tools that no longer exist."""
    files = derived_files(snapshots, catalog)
    stale = [str(path) for path, content in files.items() if not path.exists() or path.read_bytes() != content]
    stale += [f"{path} (no such tool)" for path in sorted(snapshots.glob("*.json")) if path not in files]
    return stale


def regenerate(snapshots: Path = SNAPSHOTS, catalog: Path = CATALOG) -> list[Path]:
    """Write every derived file, remove snapshots of tools that no longer exist; the paths that changed."""
    files = derived_files(snapshots, catalog)
    snapshots.mkdir(parents=True, exist_ok=True)
    changed = []
    for path, content in files.items():
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
            changed.append(path)
    for path in sorted(snapshots.glob("*.json")):
        if path not in files:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_ledger.tools.regenerate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a derived file is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for line in stale:
            print(f"stale: {line}")
        return 1 if stale else 0
    for path in regenerate():
        print(f"updated: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
