"""Engine values as agents see them: ISO times, bounded strings, redacted labels and environment, keyset pages."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Literal

from pydantic import Field

from mcp_ledger import provenance
from mcp_ledger.tools._redact_env import redact_env_values
from mcp_ledger.tools.group import InvalidArguments, ToolModel

__all__ = [
    "LABELS_NOTE",
    "ContainerRef",
    "Cursor",
    "Limit",
    "container_users",
    "cut",
    "iso_time",
    "keyset_page",
    "list_filters",
    "shown_env",
    "shown_labels",
]
LABELS_NOTE = "Secret-like values redacted; at most 64, values over 1024 characters cut (ending in …)"
Limit = Field(default=50, ge=1, le=200, description="Page size")
Cursor = Field(default=None, max_length=256, description="next_cursor from the previous page")


def iso_time(value: Any) -> str:
    """Engine timestamps are Unix seconds in lists and RFC 3339 (nanoseconds) in inspect bodies."""
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value or "")


def cut(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_labels(labels: Any) -> dict[str, str]:
    """Secret-like labels (by key or by value shape) are redacted, the keys kept; bounded (LABELS_NOTE)."""
    redacted, _ = provenance.redaction.redact_payload(dict(labels or {}))
    return {cut(k, 256): cut(v, 1024) for k, v in sorted(redacted.items())[:64]}


def shown_env(env: Any) -> list[str]:
    return [cut(item, 1024) for item in redact_env_values(list(env or []))[:256]]


def keyset_page(items: list[Any], key: str, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """Keyset paging over items already in their stable order; the cursor is the last key shown."""
    start = 0
    if cursor is not None:
        keys = [item[key] for item in items]
        if cursor not in keys:
            raise InvalidArguments("cursor: not from this listing (the object is gone); list again without a cursor")
        start = keys.index(cursor) + 1
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, (page[-1][key] if more and page else None)


class ContainerRef(ToolModel):
    id: str
    name: str


def list_filters(name: str | None, label: list[str], driver: str | None, dangling: bool | None) -> dict[str, list[str]]:
    """The engine's list filters for these arguments (volumes and networks take the same four)."""
    filters: dict[str, list[str]] = {}
    if name:
        filters["name"] = [name]
    if label:
        filters["label"] = list(label)
    if driver:
        filters["driver"] = [driver]
    if dangling is not None:
        filters["dangling"] = ["true" if dangling else "false"]
    return filters


def _ref(container: dict[str, Any]) -> ContainerRef:
    names = container.get("Names") or [""]
    return ContainerRef(id=str(container.get("Id", "")), name=str(names[0]).lstrip("/"))


def container_users(
    containers: list[dict[str, Any]], of: Literal["volume", "network"]
) -> dict[str, list[ContainerRef]]:
    """Volume name or network name -> the containers using it, by container name.

    A network by name: a container that is not running has no NetworkID for the networks it is on."""
    users: dict[str, list[ContainerRef]] = defaultdict(list)
    for container in sorted(containers, key=lambda c: str((c.get("Names") or [""])[0])):
        if of == "volume":
            keys = {str(m.get("Name")) for m in container.get("Mounts") or [] if m.get("Type") == "volume"}
        else:
            keys = {str(name) for name in ((container.get("NetworkSettings") or {}).get("Networks") or {})}
        for key in keys:
            users[key].append(_ref(container))
    return users
