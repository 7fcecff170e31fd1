"""Errors that say what to do, denied resources, read-only and destructive gating, kubeconfig reloads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.k8s import K8sSettings
from tests.k8s.conftest import TOKEN, Caller, Clusters, deployment, last_span, spans


async def test_unknown_context_lists_the_allowed_ones(client: Caller) -> None:
    error = await client.error("k8s_resource_list", {"kind": "pods", "context": "nope"})
    assert "unknown context 'nope'" in error and "prod, prod-exec, staging" in error


async def test_context_allow_list_limits_contexts(clusters: Clusters, tmp_path: Path) -> None:
    app = create_app(
        ServerSettings(ledger_dir=tmp_path / "l"),
        {"k8s": K8sSettings(kubeconfig=str(clusters.kubeconfig), contexts=["staging"], context="staging")},
    )
    try:
        caller = Caller(app)
        listed = await caller.ok("k8s_context_list", {})
        assert [(c["name"], c["default"]) for c in listed["contexts"]] == [("staging", True)]
        error = await caller.error("k8s_resource_list", {"kind": "pods", "context": "prod"})
        assert "unknown context 'prod'" in error and "may use: staging" in error
        await caller.ok("k8s_resource_list", {"kind": "pods"})
        assert clusters.staging.sent("GET", "/pods")
    finally:
        app.close()


async def test_not_found_and_unknown_kind_with_closest_matches(client: Caller) -> None:
    error = await client.error("k8s_resource_get", {"kind": "deployment", "name": "ghost"})
    assert "Deployment shop/ghost not found (context prod)" in error
    error = await client.error("k8s_resource_list", {"kind": "deploymnets"})
    assert "unknown kind 'deploymnets'" in error and "deployments" in error


async def test_crd_version_not_served(client: Caller) -> None:
    error = await client.error("k8s_resource_list", {"kind": "example.com/v2/Widget"})
    assert "example.com/v2 is not served" in error and "served versions of example.com: v1" in error
    error = await client.error("k8s_resource_list", {"kind": "gadgets.acme.io/v1/Gadget"})
    assert "not served" in error


async def test_forbidden_names_the_verb_and_resource(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(deployment("web", "shop"))
    clusters.prod.forbidden.add(("delete", "deployments"))
    error = await client.error("k8s_resource_delete", {"kind": "deploy", "name": "web"})
    assert "forbidden (403)" in error and "context prod may not delete Deployment shop/web" in error
    assert 'cannot delete resource "deployments"' in error


async def test_rejected_credentials_name_the_context(client: Caller, clusters: Clusters) -> None:
    clusters.prod.tokens.clear()
    error = await client.error("k8s_resource_list", {"kind": "pods"})
    assert "rejected the credentials of context prod (401" in error and clusters.prod.url in error
    assert TOKEN not in error


async def test_unreachable_cluster_names_the_server(clusters: Clusters, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = yaml.safe_load(clusters.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    clusters.kubeconfig.write_text(yaml.safe_dump(config))
    app = create_app(
        ServerSettings(ledger_dir=tmp_path / "l"), {"k8s": K8sSettings(kubeconfig=str(clusters.kubeconfig))}
    )
    try:
        error = await Caller(app).error("k8s_resource_list", {"kind": "pods"})
        assert f"cannot reach the API server http://127.0.0.1:{port} (context prod)" in error
    finally:
        app.close()


async def test_conflict_on_delete_precondition(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(deployment("web", "shop"))
    clusters.prod.objects[("apps", "deployments", "shop", "web")]["metadata"]["uid"] = "replaced"
    original_get = clusters.prod._get

    def stale_get(res, namespace, name):  # type: ignore[no-untyped-def]
        code, body, ctype = original_get(res, namespace, name)
        body["metadata"]["uid"] = "the-one-that-was-read"
        return code, body, ctype

    clusters.prod._get = stale_get  # type: ignore[method-assign]
    error = await client.error("k8s_resource_delete", {"kind": "deploy", "name": "web"})
    assert "conflict (409)" in error and "Precondition failed" in error


async def test_denied_resources_are_hidden(clusters: Clusters, tmp_path: Path) -> None:
    app = create_app(
        ServerSettings(ledger_dir=tmp_path / "l"),
        {
            "k8s": K8sSettings(
                kubeconfig=str(clusters.kubeconfig), denied_resources=["secrets", "rbac.authorization.k8s.io/*"]
            )
        },
    )
    try:
        caller = Caller(app)
        for kind in ("secrets", "Secret", "v1/Secret", "roles", "roles.rbac.authorization.k8s.io"):
            error = await caller.error("k8s_resource_list", {"kind": kind})
            assert "hidden by --k8s-denied-resources" in error, kind
        assert "hidden" in await caller.error("k8s_resource_get", {"kind": "secret", "name": "x"})
        await caller.ok("k8s_resource_list", {"kind": "configmaps"})
        assert clusters.prod.sent(path_part="/secrets") == [] and clusters.prod.sent(path_part="/roles") == []
    finally:
        app.close()


async def _listed(settings: ServerSettings, kubeconfig: Path) -> set[str]:
    app = create_app(settings, {"k8s": K8sSettings(kubeconfig=str(kubeconfig))})
    try:
        async with Client(app.server) as c:
            return {t.name for t in (await c.list_tools()).tools if t.name.startswith("k8s_")}
    finally:
        app.close()


async def test_read_only_hides_writes_and_destructive_needs_allowing(clusters: Clusters, tmp_path: Path) -> None:
    reads = {
        "k8s_context_list",
        "k8s_resource_list",
        "k8s_resource_get",
        "k8s_pod_logs",
        "k8s_event_list",
        "k8s_workload_diagnose",
    }
    writes = {"k8s_resource_apply", "k8s_workload_scale", "k8s_workload_restart"}
    base: dict[str, Any] = {"ledger_dir": tmp_path / "l", "toolsets": ["k8s"]}
    assert await _listed(ServerSettings(**base, read_only=True), clusters.kubeconfig) == reads
    assert await _listed(ServerSettings(**base), clusters.kubeconfig) == reads | writes
    assert await _listed(ServerSettings(**base, allow_destructive=True), clusters.kubeconfig) == reads | writes | {
        "k8s_resource_delete"
    }


async def test_kubeconfig_is_read_again_when_it_changes(client: Caller, app: object, clusters: Clusters) -> None:
    await client.ok("k8s_resource_list", {"kind": "pods"})
    config = yaml.safe_load(clusters.kubeconfig.read_text())
    config["current-context"] = "staging"
    config["contexts"].append({"name": "added", "context": {"cluster": "staging-cluster", "user": "staging-admin"}})
    clusters.kubeconfig.write_text(yaml.safe_dump(config))
    listed = await client.ok("k8s_context_list", {})
    assert [c["name"] for c in listed["contexts"] if c["default"]] == ["staging"]
    await client.ok("k8s_resource_list", {"kind": "pods", "context": "added"})
    await client.ok("k8s_resource_list", {"kind": "pods"})
    assert len(clusters.staging.sent("GET", "/pods")) == 2


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"kind": "pods", "name": "../../etc"}, "name"),
        ({"kind": "pods", "name": "a", "namespace": "Bad_NS"}, "namespace"),
        ({"kind": "pods/../x", "name": "a"}, None),
    ],
)
async def test_names_that_could_escape_the_path_are_refused(
    client: Caller, clusters: Clusters, arguments: dict[str, str], field: str | None
) -> None:
    error = await client.error("k8s_resource_get", arguments)
    if field:
        assert field in error
    assert not [r for r in clusters.prod.requests if ".." in r.path]


async def test_missing_kubeconfig_is_not_configured(tmp_path: Path) -> None:
    app = create_app(ServerSettings(ledger_dir=tmp_path / "l"), {"k8s": K8sSettings(kubeconfig=str(tmp_path / "none"))})
    try:
        error = await Caller(app).error("k8s_context_list", {})
        assert "not configured" in error and "KUBECONFIG" in error
        assert len(spans(app, "k8s_context_list")) == 1
    finally:
        app.close()


async def test_exec_plugin_credentials_work(client: Caller, app: object, clusters: Clusters) -> None:
    await client.ok("k8s_resource_list", {"kind": "pods", "context": "prod-exec"})
    sent = clusters.prod.sent("GET", "/pods")[-1]
    assert sent.headers["authorization"].startswith("Bearer ")
    assert last_span(app, "k8s_resource_list")["upstream"]["context"] == "prod-exec"  # type: ignore[arg-type]


def test_without_kubernetes_asyncio_the_tools_answer_pip_install(tmp_path: Path) -> None:
    code = """
import sys
sys.modules["kubernetes_asyncio"] = None
import anyio
from mcp import Client
from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings

async def main():
    app = create_app(ServerSettings(toolsets=["k8s"]))
    async with Client(app.server) as client:
        result = await client.call_tool("k8s_context_list", {})
    app.close()
    print(result.is_error, result.content[0].text)

anyio.run(main)
"""
    env = {**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True") and "pip install 'mcp-ledger[k8s]'" in done.stdout
    assert "Traceback" not in done.stderr


async def test_in_cluster_service_account_without_a_kubeconfig(
    clusters: Clusters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_ledger.tools.k8s import _config

    account = tmp_path / "serviceaccount"
    account.mkdir()
    service_token = "serviceAccountCanary31d0"
    (account / "token").write_text(service_token)
    (account / "ca.crt").write_bytes(clusters.certs.ca_pem)
    (account / "namespace").write_text("payments")
    clusters.staging.tokens.add(service_token)
    clusters.staging.add_namespace("payments")
    monkeypatch.setattr(_config, "SERVICE_ACCOUNT", account)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", clusters.staging.url.rsplit(":", 1)[1])
    app = create_app(ServerSettings(ledger_dir=tmp_path / "l"), {"k8s": K8sSettings()})
    try:
        caller = Caller(app)
        listed = await caller.ok("k8s_context_list", {})
        assert listed["contexts"] == [
            {
                "name": "in-cluster",
                "cluster": "in-cluster",
                "server": clusters.staging.url,
                "namespace": "payments",
                "default": True,
            }
        ]
        await caller.ok("k8s_resource_list", {"kind": "pods"})
        sent = clusters.staging.sent("GET", "/pods")[-1]
        assert sent.path == "/api/v1/namespaces/payments/pods"
        assert sent.headers["authorization"] == f"Bearer {service_token}"
        span = last_span(app, "k8s_resource_list")
        assert span["upstream"]["context"] == "in-cluster"
        assert service_token not in "".join(
            p.read_text(errors="replace") for p in (tmp_path / "l").rglob("*") if p.is_file()
        )
    finally:
        app.close()
