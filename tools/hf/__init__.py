"""hf: the Hugging Face hub — search and inspect models and datasets, list and read repo files, download.

Every call records what it read: repo type and id, the revision asked for and the commit it resolved
to, each file's etag and sha256, and the hub's request ids. ``hf_file_download`` writes into the
standard hub cache (``hf_hub_download``), so other tools find the file, and checks the bytes on disk
against the hub's etag. Model cards and file text come back in ``untrusted_*`` fields.

Configuration is the hub's own, read when the group first connects (not when huggingface_hub is
imported): ``HF_ENDPOINT`` (or ``--hf-endpoint``), ``HF_TOKEN`` else the token file of ``hf auth login``,
``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` / ``HF_HOME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from mcp_ledger.tools.group import GroupEnvironment, GroupSettings, ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.hf._backend import Hub

__all__ = ["SETTINGS", "HfSettings", "connect", "register"]


class HfSettings(GroupSettings):
    endpoint: str | None = Field(
        default=None,
        max_length=512,
        description="hub URL (a mirror, an enterprise hub); default HF_ENDPOINT, else huggingface.co",
    )
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per hub request (downloads: per read)")
    max_download_mb: int = Field(
        default=20480, ge=1, le=10_000_000, description="largest file hf_file_download fetches, in MiB"
    )


SETTINGS = HfSettings


async def connect(environment: GroupEnvironment[HfSettings]) -> Hub:
    from mcp_ledger.tools.hf._backend import open_hub

    return await open_hub(environment.settings)


def register() -> ToolGroup[Hub]:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from mcp_ledger.tools.hf import files, repos

    group = ToolGroup(
        "hf",
        "The Hugging Face hub: model and dataset search and info, repo files, file read and download",
        settings=HfSettings,
        connect=connect,
        requires=("huggingface_hub",),
    )
    for module in (repos, files):
        group.add_module(module)
    return group
