"""kubectl's columns for more kinds, the diagnosis of statefulsets, daemonsets and jobs, and an exec plugin
that fails loudly (its stderr, which can hold anything, is never passed on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.k8s import K8sSettings
from tests.k8s.conftest import EXEC_ENV_SECRET, Caller, Clusters, pod


def statefulset(name: str, *, replicas: int, ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "db:16"}]},
            },
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": f"{name}-6f7d",
            "updateRevision": f"{name}-6f7d",
            "observedGeneration": 1,
        },
    }


async def test_rows_for_nodes_services_statefulsets_daemonsets_and_jobs(client: Caller, clusters: Clusters) -> None:
    cluster = clusters.prod
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "b-1",
                    "containerRuntimeVersion": "containerd://2.1.0",
                    "kernelVersion": "6.12.0",
                    "kubeProxyVersion": "v1.37.0",
                    "kubeletVersion": "v1.37.0",
                    "machineID": "m-1",
                    "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 13",
                    "systemUUID": "u-1",
                },
            },
        }
    )
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.0.0.7",
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            },
        }
    )
    cluster.put(statefulset("db", replicas=3, ready=2))
    cluster.put(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "a"}]},
                },
            },
            "status": {
                "desiredNumberScheduled": 4,
                "currentNumberScheduled": 4,
                "numberReady": 3,
                "updatedNumberScheduled": 4,
                "numberAvailable": 3,
                "numberMisscheduled": 0,
            },
        }
    )
    cluster.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop"},
            "spec": {
                "completions": 1,
                "template": {"spec": {"containers": [{"name": "m", "image": "m"}], "restartPolicy": "Never"}},
            },
            "status": {
                "failed": 2,
                "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            },
        }
    )

    async def first_row(kind: str) -> dict[str, Any]:
        rows = (await client.ok("k8s_resource_list", {"kind": kind}))["items"]
        assert len(rows) == 1, rows
        row: dict[str, Any] = rows[0]
        row.pop("age")
        return row

    assert await first_row("no") == {
        "name": "node-1",
        "status": "Ready,SchedulingDisabled",
        "roles": "control-plane",
        "version": "v1.37.0",
    }
    assert await first_row("svc") == {
        "name": "web",
        "namespace": "shop",
        "type": "NodePort",
        "cluster_ip": "10.0.0.7",
        "ports": "80:30080/TCP",
    }
    assert await first_row("sts") == {"name": "db", "namespace": "shop", "ready": "2/3"}
    assert await first_row("ds") == {
        "name": "agent",
        "namespace": "shop",
        "desired": 4,
        "current": 4,
        "ready": 3,
        "up_to_date": 4,
        "available": 3,
    }
    assert await first_row("jobs") == {"name": "migrate", "namespace": "shop", "completions": "0/1", "status": "Failed"}


async def test_diagnose_statefulset_and_job(client: Caller, clusters: Clusters) -> None:
    cluster = clusters.prod
    cluster.put(statefulset("db", replicas=3, ready=2))
    cluster.put(pod("db-0", "shop", labels={"app": "db"}))
    cluster.put(pod("db-1", "shop", labels={"app": "db"}))
    cluster.put(pod("db-2", "shop", labels={"app": "db"}, ready=False, phase="Pending", waiting="ErrImagePull"))
    diagnosis = await client.ok("k8s_workload_diagnose", {"kind": "statefulset", "name": "db"})
    assert (
        diagnosis["rollout"]["summary"] == "2 of 3 ready, 3 updated" and diagnosis["rollout"]["revision"] == "db-6f7d"
    )
    assert [p["name"] for p in diagnosis["failing_pods"]] == ["db-2"] and diagnosis["healthy_pods"] == 2
    assert diagnosis["failing_pods"][0]["problems"][0]["reason"] == "ErrImagePull"

    cluster.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"job-name": "migrate"}},
                "template": {"spec": {"containers": [{"name": "m", "image": "m"}], "restartPolicy": "Never"}},
            },
            "status": {
                "failed": 1,
                "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            },
        }
    )
    failed = pod("migrate-x", "shop", labels={"job-name": "migrate"}, ready=False, phase="Failed")
    failed["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 2, "reason": "Error"}}
    cluster.put(failed)
    job = await client.ok("k8s_workload_diagnose", {"kind": "job", "name": "migrate"})
    assert job["rollout"]["summary"] == "failed" and job["rollout"]["complete"] is False
    problem = job["failing_pods"][0]["problems"][0]
    assert problem["exit_code"] == 2 and problem["reason"] == "Error"
    assert cluster.sent("GET", "/pods")[-1].query["labelSelector"] == ["job-name=migrate"]


async def test_a_failing_exec_plugin_is_reported_without_its_output(clusters: Clusters, tmp_path: Path) -> None:
    plugin = tmp_path / "noisy_plugin.py"
    plugin.write_text("import sys\nsys.stderr.write('cannot log in with ' + sys.argv[1])\nsys.exit(1)\n")
    config = yaml.safe_load(clusters.kubeconfig.read_text())
    exec_user = next(u for u in config["users"] if u["name"] == "exec-user")
    exec_user["user"]["exec"]["args"] = [str(plugin), EXEC_ENV_SECRET]
    clusters.kubeconfig.write_text(yaml.safe_dump(config))
    app = create_app(
        ServerSettings(ledger_dir=tmp_path / "l"), {"k8s": K8sSettings(kubeconfig=str(clusters.kubeconfig))}
    )
    try:
        error = await Caller(app).error("k8s_resource_list", {"kind": "pods", "context": "prod-exec"})
        assert "context prod-exec" in error and "exec plugin" in error
        assert EXEC_ENV_SECRET not in error
        stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "l").rglob("*") if p.is_file())
        assert EXEC_ENV_SECRET not in stored
    finally:
        app.close()
