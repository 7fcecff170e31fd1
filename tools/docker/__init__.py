"""docker: containers, images, volumes and networks on a Docker engine — inspect, logs, stats,
start/stop/restart, pull, run, remove; opt-in: build (from allowed directories) and push.

The engine is the one the Docker CLI would use: ``--docker-host``, else ``DOCKER_HOST`` (with
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``), else the current CLI context, else the local socket.
Every call records the container and image ids it touched and the engine and API versions.
Container environment values and secret-like labels are redacted in results; keys are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from mcp_ledger.tools.group import GroupSettings, ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.docker._backend import DockerEngine

__all__ = ["SETTINGS", "DockerSettings", "register"]


class DockerSettings(GroupSettings):
    host: str | None = Field(
        default=None,
        description="engine address (unix:///run/docker.sock, tcp://127.0.0.1:2375); default DOCKER_HOST, "
        "then the current Docker CLI context, then /var/run/docker.sock",
    )
    allow_binds: list[str] = Field(
        default_factory=list,
        description="host paths that docker_container_run may bind-mount (a path allows everything under it)",
    )
    allow_bind_writes: bool = Field(
        default=False,
        description="let docker_container_run binds be writable (:rw); without it every bind is read-only",
    )
    allow_build_contexts: list[str] = Field(
        default_factory=list,
        description="directories docker_image_build may send as a build context (a directory allows everything "
        "under it; the tool is opt-in: --tools docker_image_build)",
    )


SETTINGS = DockerSettings


def register() -> ToolGroup[DockerEngine]:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from mcp_ledger.tools.docker import _backend, builds, containers, images, networks, system, volumes

    group = ToolGroup(
        "docker",
        "Containers and images on a Docker engine: inspect, logs, stats, start/stop/restart, pull, run, remove",
        settings=DockerSettings,
        connect=_backend.connect,
        requires=("aiodocker",),
    )
    for module in (system, containers, images, volumes, networks, builds):
        group.add_module(module)
    return group
