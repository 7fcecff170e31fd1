"""`python -m mcp_ledger.server serve --toolsets docker` as a real stdio subprocess, launched as an MCP client would."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance
from tests.docker.conftest import Engine
from tests.harness import result_text

pytestmark = pytest.mark.docker

SECRET = "planted-stdio-s3cret-5e08aa"


async def test_stdio_server_reads_a_container_and_records_pipe_spans_with_its_ids(
    engine: Engine, container: Any, tmp_path: Path
) -> None:
    name = f"stdio-{uuid.uuid4().hex[:8]}"
    container_id = container(
        ["sh", "-c", "echo to-out; echo to-err >&2; exit 4"], name=name, env=[f"API_TOKEN={SECRET}"], wait=True
    )
    ledger = tmp_path / "ledger"
    # Clients pass only a minimal environment: the ledger directory and the engine are given explicitly.
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ledger.server", "serve", "--toolsets", "docker"],
        env={
            "MCP_LEDGER_DIR": str(ledger),
            "DOCKER_HOST": engine.host,
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
        },
    )
    errlog = tmp_path / "stderr.txt"
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            listed = await client.call_tool("docker_container_list", {"name": name, "all": True})
            inspected = await client.call_tool("docker_container_inspect", {"container": name})
            logs = await client.call_tool("docker_container_logs", {"container": container_id[:12]})
    assert {"docker_container_list", "docker_container_inspect", "docker_container_logs"} <= tools
    assert "docker_container_remove" not in tools  # destructive tools stay hidden without --allow-destructive
    for result in (listed, inspected, logs):
        assert not result.is_error, result_text(result)
    assert listed.structured_content is not None and inspected.structured_content is not None
    assert logs.structured_content is not None
    assert [c["id"] for c in listed.structured_content["containers"]] == [container_id]
    assert listed.structured_content["containers"][0]["exit_code"] == 4
    assert "API_TOKEN=[REDACTED]" in inspected.structured_content["env"]
    assert sorted(line["text"] for line in logs.structured_content["lines"]) == ["to-err", "to-out"]

    spans = list(provenance.Ledger(ledger).scan())
    assert [s["name"] for s in spans] == [
        "tools/call docker_container_list",
        "tools/call docker_container_inspect",
        "tools/call docker_container_logs",
    ]
    assert {s["attributes"]["network.transport"] for s in spans} == {"pipe"}
    assert len({s["attributes"]["mcp-ledger.connection.id"] for s in spans}) == 1
    assert spans[0]["upstream"]["container_ids"] == [container_id]
    assert spans[0]["upstream"]["container_names"] == [name]
    for span in spans[1:]:
        assert span["upstream"]["container_id"] == container_id and span["upstream"]["container_name"] == name
        assert span["upstream"]["api_version"] == "1.41"
    ledger_bytes = b"".join(p.read_bytes() for p in sorted(ledger.rglob("*")) if p.is_file())
    assert SECRET.encode() not in ledger_bytes and SECRET not in errlog.read_text()
    assert provenance.Ledger(ledger).verify().ok
