"""Each group's third-party dependencies are an extra named after its toolset; `.[dev]` pulls them all."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from mcp_ledger.tools import load_groups

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def test_every_group_with_third_party_dependencies_has_its_extra() -> None:
    for group in load_groups():
        if group.requires:
            assert group.name in EXTRAS, f"pyproject.toml lacks the extra {group.name!r} for {group.requires}"


def test_all_holds_every_group_extra_and_dev_holds_all() -> None:
    groups = sorted(set(EXTRAS) - {"all", "dev"})
    assert EXTRAS["all"] == [f"mcp-ledger[{','.join(groups)}]"]
    assert "mcp-ledger[all]" in EXTRAS["dev"]


def test_the_development_install_has_every_extra_installed() -> None:
    for extra in set(EXTRAS) - {"all", "dev"}:
        for requirement in EXTRAS[extra]:
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
            assert importlib.metadata.version(name), f"{name} (extra {extra}) is not installed: make .venv/.installed"
