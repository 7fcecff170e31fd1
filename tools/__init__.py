"""Tool groups. Each contributes one toolset through ``register()`` (see ``tools.group``).

A server starts from ``tools/catalog.json`` — every tool's name, description, annotations and
compact schemas, generated from the groups by ``make regenerate`` and kept equal to them by
``tests/tools/test_catalog.py`` — and imports a group's module only when one of its tools is first
called: pydantic models cost start-up time, and clients start a server per session. The catalog
holds a digest of each group's source files; a group whose source no longer matches it is listed
from its code instead, so an edited tool is never served with a stale schema. A group's package
exposes its settings model as ``SETTINGS`` without importing its tools, so flags can be parsed
before anything else is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mcp_ledger.tools.group import GroupSettings, NoSettings, ToolGroup

__all__ = [
    "CATALOG",
    "REGISTRY",
    "GroupHeader",
    "ToolGroup",
    "catalog_entries",
    "group_headers",
    "load_catalog",
    "load_group",
    "load_groups",
    "source_digest",
]

# Toolset name -> the module whose ``register()`` builds the group.
REGISTRY: dict[str, str] = {
    "prov": "mcp_ledger.tools.prov",
    "github": "mcp_ledger.tools.github",
    "docker": "mcp_ledger.tools.docker",
    "k8s": "mcp_ledger.tools.k8s",
    "hf": "mcp_ledger.tools.hf",
    "infer": "mcp_ledger.tools.infer",
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


def source_digest(name: str) -> str:
    """sha256 over the group's source files (its module, or every ``.py`` file of its package)."""
    spec = importlib.util.find_spec(REGISTRY[name])
    if spec is None or spec.origin is None:
        raise LookupError(f"tool group {name}: module {REGISTRY[name]} not found")
    origin = Path(spec.origin)
    files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(origin.parent).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}"


@functools.cache
def load_catalog() -> dict[str, Any] | None:
    """The catalog, or None when it is missing or unreadable."""
    try:
        catalog: dict[str, Any] = orjson.loads(CATALOG.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return catalog


def catalog_entries(name: str) -> list[dict[str, Any]] | None:
    """The group's tools as the catalog lists them, or None when the catalog does not hold the group
    or was generated from other source than the group's files hold now."""
    catalog = load_catalog()
    if catalog is None or catalog.get("groups", {}).get(name, {}).get("source") != source_digest(name):
        return None
    return [entry for entry in catalog["tools"].values() if entry["group"] == name]
