"""Writes: server-side apply (dry run, conflicts, force), scale, rollout restart, delete; what was sent, and
resourceVersion / generation before and after on the span."""

from __future__ import annotations

import json

from mcp_ledger.server.app import LedgerApp
from tests.k8s.conftest import Caller, Clusters, deployment, last_span

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  mode: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.local/shop/web:1.3
"""


async def test_apply_creates_then_reports_unchanged_and_changed(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    created = await client.ok("k8s_resource_apply", {"manifests": MANIFESTS})
    assert [(o["kind"], o["name"], o["namespace"], o["action"]) for o in created["objects"]] == [
        ("ConfigMap", "web-config", "shop", "created"),
        ("Deployment", "web", "shop", "created"),
    ]
    stored = clusters.prod.get("Deployment", "shop", "web")
    assert created["objects"][1]["uid"] == stored["metadata"]["uid"]
    assert created["objects"][1]["resource_version_before"] is None
    assert created["objects"][1]["resource_version_after"] == stored["metadata"]["resourceVersion"]
    patch = clusters.prod.sent("PATCH", "/deployments/web")[-1]
    assert patch.headers["content-type"] == "application/apply-patch+yaml"
    assert patch.query["fieldManager"] == ["mcp-ledger"] and "dryRun" not in patch.query
    assert patch.json()["metadata"] == {"name": "web", "namespace": "shop"}

    again = await client.ok("k8s_resource_apply", {"manifests": MANIFESTS})
    assert [o["action"] for o in again["objects"]] == ["unchanged", "unchanged"]

    changed = await client.ok("k8s_resource_apply", {"manifests": MANIFESTS.replace("replicas: 2", "replicas: 4")})
    result = changed["objects"][1]
    assert result["action"] == "changed" and changed["objects"][0]["action"] == "unchanged"
    assert result["generation_before"] == 1 and result["generation_after"] == 2
    assert int(result["resource_version_after"]) > int(result["resource_version_before"])
    upstream = last_span(app, "k8s_resource_apply")["upstream"]
    assert upstream["k8s.object.uid"][1] == stored["metadata"]["uid"]
    assert upstream["k8s.object.resource_version_before"][1] == result["resource_version_before"]
    assert upstream["k8s.object.resource_version_after"][1] == result["resource_version_after"]
    assert upstream["k8s.object.generation_after"] == 2


async def test_apply_dry_run_sends_dry_run_and_changes_nothing(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    result = await client.ok("k8s_resource_apply", {"manifests": MANIFESTS, "dry_run": True})
    assert result["dry_run"] is True and [o["action"] for o in result["objects"]] == ["created", "created"]
    assert all(r.query["dryRun"] == ["All"] for r in clusters.prod.sent("PATCH"))
    assert ("apps", "deployments", "shop", "web") not in clusters.prod.objects
    assert last_span(app, "k8s_resource_apply")["upstream"]["k8s.dry_run"] is True


async def test_apply_conflict_names_the_other_manager_and_force_takes_over(client: Caller, clusters: Clusters) -> None:
    await client.ok("k8s_resource_apply", {"manifests": MANIFESTS})
    key = ("apps", "deployments", "shop", "web")
    clusters.prod.owners[key][".spec.replicas"] = "kubectl-client-side-apply"
    clusters.prod.objects[key]["spec"]["replicas"] = 5
    error = await client.error("k8s_resource_apply", {"manifests": MANIFESTS})
    assert "409" in error and "kubectl-client-side-apply" in error and ".spec.replicas" in error
    assert "force=true" in error and "ConfigMap web-config (unchanged)" in error
    forced = await client.ok("k8s_resource_apply", {"manifests": MANIFESTS, "force": True})
    assert forced["objects"][1]["action"] == "changed"
    assert clusters.prod.sent("PATCH", "/deployments/web")[-1].query["force"] == ["true"]
    assert clusters.prod.objects[key]["spec"]["replicas"] == 2


async def test_apply_refuses_secrets_aliases_and_namespace_mismatch(client: Caller, clusters: Clusters) -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: applyCanary-77ab}\n"
    assert "Secrets are not applied" in await client.error("k8s_resource_apply", {"manifests": secret})
    bomb = "a: &a [x, x]\nb: [*a, *a]\n"
    assert "aliases" in await client.error("k8s_resource_apply", {"manifests": bomb})
    other = MANIFESTS.replace("name: web-config", "name: web-config\n  namespace: default")
    assert "names namespace default" in await client.error(
        "k8s_resource_apply", {"manifests": other, "namespace": "shop"}
    )
    assert clusters.prod.sent("PATCH") == []


async def test_scale_through_the_scale_subresource(client: Caller, app: LedgerApp, clusters: Clusters) -> None:
    stored = clusters.prod.put(deployment("web", "shop", replicas=3))
    rv = stored["metadata"]["resourceVersion"]
    scaled = await client.ok("k8s_workload_scale", {"kind": "deployment", "name": "web", "replicas": 5})
    assert scaled["replicas_before"] == 3 and scaled["replicas_after"] == 5
    assert scaled["resource_version_before"] == rv and scaled["resource_version_after"] != rv
    patch = clusters.prod.sent("PATCH", "/scale")[-1]
    assert patch.path == "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.json() == {"spec": {"replicas": 5}}
    assert clusters.prod.get("Deployment", "shop", "web")["spec"]["replicas"] == 5
    upstream = last_span(app, "k8s_workload_scale")["upstream"]
    assert upstream["k8s.deployment.uid"] == stored["metadata"]["uid"]
    assert upstream["k8s.object.resource_version_after"] == scaled["resource_version_after"]
    assert upstream["k8s.audit_id"] == [r.audit_id for r in clusters.prod.sent(path_part="/scale")]


async def test_restart_patches_the_pod_template_like_kubectl(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    clusters.prod.put(deployment("web", "shop"))
    restarted = await client.ok("k8s_workload_restart", {"kind": "deployment", "name": "web"})
    patch = clusters.prod.sent("PATCH", "/deployments/web")[-1]
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    annotations = patch.json()["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": restarted["restarted_at"]}
    assert restarted["generation_before"] == 1 and restarted["generation_after"] == 2
    stored = clusters.prod.get("Deployment", "shop", "web")
    assert restarted["resource_version_after"] == stored["metadata"]["resourceVersion"]
    upstream = last_span(app, "k8s_workload_restart")["upstream"]
    assert upstream["k8s.object.resource_version_after"] == stored["metadata"]["resourceVersion"]
    assert upstream["k8s.object.generation_before"] == 1 and upstream["k8s.object.generation_after"] == 2


async def test_delete_dry_run_propagation_and_uid_precondition(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    stored = clusters.prod.put(deployment("web", "shop"))
    dry = await client.ok("k8s_resource_delete", {"kind": "deploy", "name": "web", "dry_run": True})
    assert dry["dry_run"] is True and ("apps", "deployments", "shop", "web") in clusters.prod.objects
    deleted = await client.ok("k8s_resource_delete", {"kind": "deploy", "name": "web", "propagation": "Foreground"})
    assert deleted["uid"] == stored["metadata"]["uid"] and deleted["finalizers"] == []
    assert ("apps", "deployments", "shop", "web") not in clusters.prod.objects
    sent = clusters.prod.sent("DELETE")
    assert sent[0].query["dryRun"] == ["All"] and "dryRun" not in sent[1].query
    options = json.loads(sent[1].body)
    assert options["propagationPolicy"] == "Foreground" and options["preconditions"] == {
        "uid": stored["metadata"]["uid"]
    }
    upstream = last_span(app, "k8s_resource_delete")["upstream"]
    assert upstream["k8s.object.uid"] == stored["metadata"]["uid"]
    assert upstream["k8s.object.resource_version"] == stored["metadata"]["resourceVersion"]
