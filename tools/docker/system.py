"""The Docker engine itself: versions, host, resources and object counts."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.tools.docker._backend import DockerEngine
from mcp_ledger.tools.group import ToolArgs, ToolModel, tool


class EngineFacts(ToolModel):
    engine_version: str
    api_version: str


class SystemInfoArgs(ToolArgs):
    pass


class SystemInfo(ToolModel):
    engine: EngineFacts
    address: str = Field(description="The engine address and where it came from")
    os: str
    kernel_version: str
    operating_system: str
    architecture: str
    cpus: int
    memory_bytes: int
    storage_driver: str
    containers: int
    containers_running: int
    containers_paused: int
    containers_stopped: int
    images: int
    warnings: list[str]


@tool(read_only=True, destructive=False, idempotent=True, open_world=False)
async def docker_system_info(args: SystemInfoArgs, engine: DockerEngine, ctx: Context) -> SystemInfo:
    """Engine and API version, host OS, CPUs and memory, and container/image counts of the Docker engine."""
    facts = EngineFacts(**await engine.annotate_versions())
    info = await engine.info()
    return SystemInfo(
        engine=facts,
        address=engine.address.shown,
        os=str(info.get("OSType", "")),
        kernel_version=str(info.get("KernelVersion", "")),
        operating_system=str(info.get("OperatingSystem", "")),
        architecture=str(info.get("Architecture", "")),
        cpus=int(info.get("NCPU") or 0),
        memory_bytes=int(info.get("MemTotal") or 0),
        storage_driver=str(info.get("Driver", "")),
        containers=int(info.get("Containers") or 0),
        containers_running=int(info.get("ContainersRunning") or 0),
        containers_paused=int(info.get("ContainersPaused") or 0),
        containers_stopped=int(info.get("ContainersStopped") or 0),
        images=int(info.get("Images") or 0),
        warnings=[str(w) for w in info.get("Warnings") or []][:20],
    )
