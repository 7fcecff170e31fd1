"""What can be called: the configured endpoints and their models, and the built-in model's revision."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context

from mcp_ledger.tools.group import TargetClients, ToolArgs, ToolFailure, ToolModel, tool
from mcp_ledger.tools.infer._backend import Endpoint, EndpointSource, HttpEndpoint, LocalEndpoint

MAX_MODELS = 100  # per endpoint


class ModelListArgs(ToolArgs):
    pass


class EndpointModels(ToolModel):
    endpoint: str
    url: str
    models: list[str]
    truncated: bool = False
    revision: str | None = None
    sha256: str | None = None
    dimensions: int | None = None
    error: str | None = None


class ModelList(ToolModel):
    endpoints: list[EndpointModels]


async def _describe(clients: TargetClients[Endpoint], name: str, url: str) -> EndpointModels:
    try:
        async with clients.lease(name) as (_, endpoint):
            if isinstance(endpoint, LocalEndpoint):
                model = endpoint.model
                return EndpointModels(
                    endpoint=name,
                    url=url,
                    models=[model.name],
                    revision=model.revision,
                    sha256=model.sha256,
                    dimensions=model.dimensions,
                )
            assert isinstance(endpoint, HttpEndpoint)
            models = await endpoint.models(fresh=True)
            return EndpointModels(
                endpoint=name, url=url, models=models[:MAX_MODELS], truncated=len(models) > MAX_MODELS
            )
    except ToolFailure as exc:
        return EndpointModels(endpoint=name, url=url, models=[], error=str(exc))
    except ModuleNotFoundError as exc:
        return EndpointModels(
            endpoint=name, url=url, models=[], error=f"not configured: pip install 'mcp-ledger[infer]' ({exc.name})"
        )


@tool(read_only=True, idempotent=True, open_world=True)
async def infer_model_list(args: ModelListArgs, clients: TargetClients[Endpoint], ctx: Context) -> ModelList:
    """Inference endpoints and their models; 'local' is the built-in embedding model (with its weights' revision)."""
    source = clients.source
    assert isinstance(source, EndpointSource)
    urls = {"local": LocalEndpoint.shown_url} | {name: config.shown_url for name, config in source.configs.items()}
    found: dict[str, EndpointModels] = {}

    async def describe(name: str) -> None:
        found[name] = await _describe(clients, name, urls[name])

    async with anyio.create_task_group() as group:
        for name in source.names:
            group.start_soon(describe, name)
    return ModelList(endpoints=[found[name] for name in source.names])
