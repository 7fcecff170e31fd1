"""The README is the front door: its first two commands, its configuration table and its tool list
must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from mcp_ledger.server.gating import opt_in_tools, select_tools
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import load_groups

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_the_first_two_commands_are_make_demo_and_make_test() -> None:
    commands = re.findall(r"^make \w+", README, flags=re.M)
    assert commands[:2] == ["make demo", "make test"]


def test_every_flag_is_in_the_configuration_table() -> None:
    flags = ["--" + name.replace("_", "-") for name in ServerSettings.model_fields]
    for group in load_groups():
        flags += [f"--{group.name}-" + name.replace("_", "-") for name in group.settings.model_fields]
    missing = [flag for flag in flags if f"`{flag}`" not in README]
    assert not missing, f"README configuration table lacks {missing}"


def test_every_tool_is_listed() -> None:
    groups = load_groups()
    tools = select_tools(groups, allow_destructive=True, tools=opt_in_tools(groups))
    missing = [spec.name for spec in tools if f"`{spec.name}`" not in README]
    assert not missing, f"README tool list lacks {missing}"


def test_the_server_version_is_the_package_version() -> None:
    import tomllib

    from mcp_ledger.server import VERSION

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION


def test_an_installed_package_holds_every_subpackage_and_the_catalog() -> None:
    import tomllib

    from setuptools import find_packages

    root = Path(__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set(find_packages(where=str(root), include=config["packages"]["find"]["include"]))
    on_disk = {
        ".".join(("mcp_ledger", *path.parent.relative_to(root).parts))
        for top in ("server", "tools", "provenance")
        for path in (root / top).rglob("__init__.py")
    }
    assert on_disk <= shipped
    assert "catalog.json" in config["package-data"]["mcp_ledger.tools"]
