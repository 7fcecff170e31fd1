"""`python -m mcp_ledger.server serve --toolsets hf` as a real stdio subprocess, launched as an MCP client would, with
only the environment a client passes (HOME, PATH) plus the hub's own variables."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance
from tests.harness import result_text
from tests.hf.conftest import MODEL, TOKEN, V1, V2, WEIGHTS
from tests.hf.fake import FakeHub


async def test_stdio_server_reads_and_downloads_with_progress_and_records_pipe_spans(
    fake: FakeHub, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ledger.server", "serve", "--toolsets", "hf"],
        env={
            "MCP_LEDGER_DIR": str(ledger),
            "HF_ENDPOINT": fake.url,
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(tmp_path / "hf-home"),
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
        },
    )
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    errlog = tmp_path / "stderr.txt"
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            info = await client.call_tool("hf_model_info", {"repo": MODEL, "revision": "v1.0"})
            got = await client.call_tool(
                "hf_file_download", {"repo": MODEL, "path": "model.safetensors"}, progress_callback=on_progress
            )
            with anyio.fail_after(5):
                while not seen:  # notifications may trail the result
                    await anyio.sleep(0.01)
    assert {"hf_model_search", "hf_model_info", "hf_file_read", "hf_file_download"} <= tools
    assert not info.is_error and not got.is_error, result_text(info) + result_text(got)
    assert got.structured_content is not None
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    assert got.structured_content["sha256"] == sha256 and got.structured_content["verified"] is True
    assert seen[-1][:2] == (len(WEIGHTS), len(WEIGHTS))

    spans = list(provenance.Ledger(ledger).scan())
    assert [s["name"] for s in spans] == ["tools/call hf_model_info", "tools/call hf_file_download"]
    assert {s["attributes"]["network.transport"] for s in spans} == {"pipe"}
    assert spans[0]["upstream"]["resolved_revision"] == V1
    assert spans[1]["upstream"]["resolved_revision"] == V2 and spans[1]["upstream"]["file_sha256"] == sha256
    ledger_bytes = b"".join(p.read_bytes() for p in sorted(ledger.rglob("*")) if p.is_file())
    assert TOKEN.encode() not in ledger_bytes and TOKEN not in errlog.read_text()
    assert provenance.Ledger(ledger).verify().ok
