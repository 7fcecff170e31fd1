"""Opt-in: read a real cluster (``pytest -m live`` with KUBECONFIG pointing at one). Reads only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.k8s import K8sSettings
from tests.k8s.conftest import Caller, last_span

pytestmark = pytest.mark.live


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[LedgerApp]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("set KUBECONFIG to a cluster to run the live k8s tests")
    app = create_app(ServerSettings(ledger_dir=tmp_path / "ledger"), {"k8s": K8sSettings()})
    try:
        yield app
    finally:
        app.close()


async def test_live_cluster_reads_and_records_the_audit_id(live_app: LedgerApp) -> None:
    client = Caller(live_app)
    contexts = await client.ok("k8s_context_list", {})
    assert any(c["default"] for c in contexts["contexts"])
    namespaces = await client.ok("k8s_resource_list", {"kind": "namespaces", "limit": 5})
    assert namespaces["kind"] == "Namespace"
    upstream = last_span(live_app, "k8s_resource_list")["upstream"]
    assert upstream["http.response.status_code"] == 200 and upstream["k8s.cluster.server"]
    pods = await client.ok("k8s_resource_list", {"kind": "pods", "namespace": "kube-system", "limit": 5})
    if pods["items"]:
        diagnosis = await client.ok(
            "k8s_workload_diagnose", {"kind": "pod", "name": pods["items"][0]["name"], "namespace": "kube-system"}
        )
        assert diagnosis["verdict"]
