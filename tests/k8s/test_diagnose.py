"""k8s_workload_diagnose, and the scenario an agent is asked for: which pods in a namespace are failing, why,
and restart their deployment — after which the ledger shows every object read and changed."""

from __future__ import annotations

import json
from typing import Literal

import pytest

from mcp_ledger.server.app import LedgerApp
from mcp_ledger.server.cli import main
from tests.k8s.conftest import Caller, Clusters, deployment, event, pod, spans


def crashing_shop(clusters: Clusters) -> None:
    cluster = clusters.prod
    cluster.put(deployment("web", "shop", replicas=3, ready=1))
    labels = {"app": "web"}
    cluster.put(pod("web-1", "shop", labels=labels))
    cluster.put(
        pod(
            "web-2",
            "shop",
            labels=labels,
            ready=False,
            waiting="CrashLoopBackOff",
            restarts=6,
            last_exit=(137, "OOMKilled"),
        )
    )
    cluster.put(pod("web-3", "shop", labels=labels, ready=False, waiting="ImagePullBackOff"))
    cluster.put(pod("db-0", "shop", labels={"app": "db"}, ready=False, waiting="CrashLoopBackOff", restarts=1))
    cluster.set_log("shop", "web-2", "app", ["starting", "allocating cache", "killed"], previous=True)
    cluster.put(
        event(
            "w2",
            "shop",
            kind="Pod",
            obj="web-2",
            reason="BackOff",
            message="Back-off restarting failed container",
            at="2026-12-03T07:06:00Z",
        )
    )
    cluster.put(
        event(
            "w3",
            "shop",
            kind="Pod",
            obj="web-3",
            reason="Failed",
            message="Failed to pull image",
            at="2026-12-03T07:07:00Z",
        )
    )
    cluster.put(
        event("d0", "shop", kind="Pod", obj="db-0", reason="BackOff", message="unrelated", at="2026-12-03T07:08:00Z")
    )


async def test_diagnose_deployment_in_one_call(client: Caller, app: LedgerApp, clusters: Clusters) -> None:
    crashing_shop(clusters)
    diagnosis = await client.ok("k8s_workload_diagnose", {"kind": "deployment", "name": "web"})
    rollout = diagnosis["rollout"]
    assert (rollout["desired"], rollout["updated"], rollout["ready"], rollout["available"]) == (3, 3, 1, 1)
    assert rollout["revision"] == "4" and rollout["complete"] is False
    failing = {p["name"]: p for p in diagnosis["failing_pods"]}
    assert sorted(failing) == ["web-2", "web-3"] and diagnosis["healthy_pods"] == 1
    crash = failing["web-2"]["problems"][0]
    assert crash["reason"] == "CrashLoopBackOff" and crash["last_reason"] == "OOMKilled"
    assert crash["last_exit_code"] == 137 and crash["restarts"] == 6
    assert failing["web-3"]["problems"][0]["reason"] == "ImagePullBackOff"
    assert [w["object"] for w in diagnosis["warnings"]] == ["Pod/web-3", "Pod/web-2"]  # db-0 is not the workload's
    assert diagnosis["previous_logs"] == [
        {"pod": "web-2", "container": "app", "untrusted_log": "starting\nallocating cache\nkilled\n", "note": None}
    ]
    assert "2 of 3 pods failing" in diagnosis["verdict"] and "OOMKilled" in diagnosis["verdict"]
    listed = clusters.prod.sent("GET", "/pods")[0]
    assert listed.query["labelSelector"] == ["app=web"]
    log = clusters.prod.sent("GET", "/log")[0]
    assert log.query["previous"] == ["true"] and log.query["tailLines"] == ["20"]
    span = spans(app, "k8s_workload_diagnose")[-1]
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True
    uids = {n: clusters.prod.get("Pod", "shop", n)["metadata"]["uid"] for n in ("web-2", "web-3")}
    assert sorted(span["upstream"]["k8s.pod.uid"]) == sorted(uids.values())
    assert span["upstream"]["k8s.deployment.uid"] == clusters.prod.get("Deployment", "shop", "web")["metadata"]["uid"]


async def test_diagnose_a_healthy_pod(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(pod("ok", "shop"))
    diagnosis = await client.ok("k8s_workload_diagnose", {"kind": "pod", "name": "ok"})
    assert diagnosis["verdict"] == "healthy" and diagnosis["failing_pods"] == [] and diagnosis["rollout"] is None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_scenario_find_failing_pods_diagnose_and_restart_their_deployment(
    client: Caller, app: LedgerApp, clusters: Clusters, mode: Literal["auto", "legacy"]
) -> None:
    crashing_shop(clusters)
    pods = await client.ok("k8s_resource_list", {"kind": "pods", "namespace": "shop"}, mode=mode)
    failing = [p["name"] for p in pods["items"] if p["status"] != "Running"]
    assert failing == ["db-0", "web-2", "web-3"]
    owner = await client.ok(
        "k8s_workload_diagnose", {"kind": "deployment", "name": "web", "namespace": "shop"}, mode=mode
    )
    assert owner["failing_pods"]
    restarted = await client.ok(
        "k8s_workload_restart", {"kind": "deployment", "name": "web", "namespace": "shop"}, mode=mode
    )

    deployment_now = clusters.prod.get("Deployment", "shop", "web")
    assert restarted["resource_version_after"] == deployment_now["metadata"]["resourceVersion"]
    recorded = spans(app)
    assert [s["name"].split()[-1] for s in recorded] == [
        "k8s_resource_list",
        "k8s_workload_diagnose",
        "k8s_workload_restart",
    ]
    for span in recorded:
        upstream = span["upstream"]
        assert upstream["context"] == "prod" and upstream["k8s.namespace.name"] == "shop"
        assert upstream["k8s.cluster.server"] == clusters.prod.url and upstream["k8s.audit_id"]
    pod_uids = {p["metadata"]["uid"] for k, p in clusters.prod.objects.items() if k[1] == "pods"}
    assert set(recorded[0]["upstream"]["k8s.object.uids"]) == pod_uids
    assert recorded[1]["upstream"]["k8s.object.uid"] == deployment_now["metadata"]["uid"]
    restart = recorded[2]["upstream"]
    assert restart["k8s.object.uid"] == deployment_now["metadata"]["uid"]
    assert restart["k8s.object.resource_version_after"] == deployment_now["metadata"]["resourceVersion"]


async def test_in_either_cluster_query_group_k8s_shows_context_namespace_uid_and_resource_version(
    client: Caller, app: LedgerApp, clusters: Clusters, capsys: pytest.CaptureFixture[str]
) -> None:
    for cluster, namespace in ((clusters.prod, "shop"), (clusters.staging, "default")):
        cluster.put(deployment("web", namespace, replicas=2, ready=1))
        cluster.put(pod("web-a", namespace, labels={"app": "web"}, ready=False, waiting="CrashLoopBackOff", restarts=3))
    for context in ("prod", "staging"):
        await client.ok("k8s_resource_list", {"kind": "deployments", "context": context})
        await client.ok("k8s_workload_diagnose", {"kind": "deployment", "name": "web", "context": context})
        await client.ok("k8s_workload_scale", {"kind": "deployment", "name": "web", "replicas": 3, "context": context})
        await client.ok("k8s_workload_restart", {"kind": "deployment", "name": "web", "context": context})

    assert main(["query", "--group", "k8s", "--json", "--limit", "50", "--ledger-dir", str(app.ledger_dir)]) == 0
    summaries = json.loads(capsys.readouterr().out)["spans"]
    assert len(summaries) == 8
    for summary in summaries:
        upstream = summary["upstream"]
        cluster = clusters.prod if upstream["context"] == "prod" else clusters.staging
        namespace = "shop" if upstream["context"] == "prod" else "default"
        deployment_now = cluster.get("Deployment", namespace, "web")
        assert upstream["k8s.namespace.name"] == namespace and upstream["k8s.cluster.server"] == cluster.url
        if summary["tool"] == "k8s_resource_list":
            assert upstream["k8s.object.uids"] == [deployment_now["metadata"]["uid"]]
            assert upstream["k8s.list.resource_version"]
        else:
            assert upstream["k8s.object.uid"] == deployment_now["metadata"]["uid"]
            versions = [v for k, v in upstream.items() if k.startswith("k8s.object.resource_version")]
            assert versions
        if summary["tool"] == "k8s_workload_restart":
            assert upstream["k8s.object.resource_version_after"] == deployment_now["metadata"]["resourceVersion"]
    assert {s["upstream"]["context"] for s in summaries} == {"prod", "staging"}
