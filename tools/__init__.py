"""Tool groups. Each contributes one toolset through ``register()`` (see ``tools.group``).

A server starts from ``tools/catalog.json`` — every tool's name, description, annotations and
schemas, generated from the groups and kept equal to them by ``tests/tools/test_catalog.py`` — and
imports a group's module only when one of its tools is first called: pydantic models cost start-up
time, and clients start a server per session. A group's package exposes its settings model as
``SETTINGS`` without importing its tools, so flags can be parsed before anything else is loaded.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tools.group import GroupSettings, NoSettings, ToolGroup

__all__ = [
    "CATALOG",
    "REGISTRY",
    "GroupHeader",
    "ToolGroup",
    "group_headers",
    "load_catalog",
    "load_group",
    "load_groups",
]

# Toolset name -> the module whose ``register()`` builds the group.
REGISTRY: dict[str, str] = {
    "prov": "tools.prov",
    "github": "tools.github",
    "docker": "tools.docker",
}

CATALOG = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class GroupHeader:
    """What start-up needs of a group before any of its tools: its name and settings model."""

    name: str
    settings: type[GroupSettings]


def group_headers() -> list[GroupHeader]:
    headers = []
    for name, module in REGISTRY.items():
        settings = getattr(importlib.import_module(module), "SETTINGS", NoSettings)
        headers.append(GroupHeader(name, settings))
    return headers


@functools.cache
def load_group(name: str) -> ToolGroup[Any]:
    """Import a group's module and register its tools (once per process)."""
    group: ToolGroup[Any] = importlib.import_module(REGISTRY[name]).register()
    return group


def load_groups() -> list[ToolGroup[Any]]:
    """Every tool group, with its code loaded."""
    return [load_group(name) for name in REGISTRY]


@functools.cache
def load_catalog() -> dict[str, Any] | None:
    """The catalog, or None when it is missing or does not cover exactly the registered groups."""
    try:
        catalog: dict[str, Any] = orjson.loads(CATALOG.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if set(catalog.get("groups", {})) != set(REGISTRY):
        return None
    return catalog
