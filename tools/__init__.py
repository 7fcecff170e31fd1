"""Tool groups. Each module contributes one toolset through ``register()`` (see ``tools._group``)."""

import functools
from collections.abc import Callable

from tools import docker, github, prov
from tools._group import ToolGroup

# Toolset name -> register function. A group module imports its heavy client library lazily
# (inside its backend factory), so listing groups stays cheap at start-up.
REGISTRY: dict[str, Callable[[], ToolGroup]] = {
    "prov": prov.register,
    "github": github.register,
    "docker": docker.register,
}


@functools.cache
def _registered() -> tuple[ToolGroup, ...]:
    return tuple(register() for register in REGISTRY.values())


def load_groups() -> list[ToolGroup]:
    """Every tool group, registered once per process."""
    return list(_registered())


__all__ = ["REGISTRY", "ToolGroup", "load_groups"]
