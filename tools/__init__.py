"""Tool groups. Each module contributes one toolset through ``register()`` (see ``tools._group``)."""

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


def load_groups() -> list[ToolGroup]:
    return [register() for register in REGISTRY.values()]


__all__ = ["REGISTRY", "ToolGroup", "load_groups"]
