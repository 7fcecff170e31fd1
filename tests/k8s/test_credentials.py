"""No kubeconfig credential (token, client key, exec plugin environment or output) and no Secret value is
found in a result, the ledger, its index or stderr — checked with a real stdio server and planted canaries."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance
from mcp_ledger.server.cli import main
from tests.k8s.conftest import Clusters, deployment, pod, result_text

SECRET_VALUE = "secretDataCanary-5b1e2d"


async def test_no_credential_or_secret_value_reaches_results_ledger_index_or_stderr(
    clusters: Clusters, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clusters.prod.put(pod("web-1", "shop", labels={"app": "web"}, ready=False, waiting="CrashLoopBackOff", restarts=2))
    clusters.prod.put(deployment("web", "shop", ready=0))
    clusters.prod.set_log("shop", "web-1", "app", ["crashed"], previous=True)
    clusters.prod.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
        }
    )
    clusters.staging.put(deployment("api", "default"))
    ledger = tmp_path / "ledger"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ledger.server", "serve", "--toolsets", "k8s", "--log-level", "DEBUG"],
        env={
            "MCP_LEDGER_DIR": str(ledger),
            "KUBECONFIG": str(clusters.kubeconfig),
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
        },
    )
    calls: list[tuple[str, dict[str, Any]]] = [
        ("k8s_context_list", {}),
        ("k8s_resource_list", {"kind": "pods"}),
        ("k8s_resource_get", {"kind": "secret", "name": "db"}),
        ("k8s_resource_list", {"kind": "secrets"}),
        ("k8s_workload_diagnose", {"kind": "deployment", "name": "web"}),
        ("k8s_workload_scale", {"kind": "deployment", "name": "api", "replicas": 1, "context": "staging"}),
        ("k8s_resource_list", {"kind": "pods", "context": "prod-exec"}),
        ("k8s_resource_list", {"kind": "pods", "context": "nope"}),
        ("k8s_workload_restart", {"kind": "deployment", "name": "api", "context": "staging"}),
    ]
    errlog = tmp_path / "stderr.txt"
    texts = []
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                texts.append(result_text(result) + str(result.structured_content))
    assert "unknown context" in texts[7]
    assert f"'password': '{len(SECRET_VALUE)} bytes'" in texts[2]
    assert main(["query", "--group", "k8s", "--json", "--ledger-dir", str(ledger)]) == 0  # builds the index
    assert (ledger / "index.sqlite").is_file()
    stored = b"".join(p.read_bytes() for p in sorted(ledger.rglob("*")) if p.is_file()).decode("utf-8", "replace")
    stderr = errlog.read_text()
    query_output = capsys.readouterr().out
    everything = {"results": "\n".join(texts), "ledger and index": stored, "stderr": stderr, "query": query_output}
    for canary in [*clusters.canaries, SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode()]:
        for where, text in everything.items():
            assert canary not in text, f"{canary!r} found in {where}"
    spans = [s for s in provenance.Ledger(ledger).scan() if s.get("type") == "span"]
    assert len(spans) == len(calls)
    assert {s["upstream"].get("context") for s in spans} >= {"prod", "staging", "prod-exec"}
    assert provenance.Ledger(ledger).verify().ok
