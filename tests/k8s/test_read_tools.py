"""Read tools against two loopback clusters, through MCP clients; the spans name context, cluster, namespace,
object uid, resourceVersion and the API server's Audit-Id."""

from __future__ import annotations

import pytest

from mcp_ledger.server.app import LedgerApp
from tests.k8s.conftest import PROD_NAMESPACE, Caller, Clusters, deployment, event, last_span, pod


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_context_list_names_clusters_and_default_without_credentials(
    client: Caller, app: LedgerApp, clusters: Clusters, mode: str
) -> None:
    listed = await client.ok("k8s_context_list", {}, mode=mode)
    by_name = {c["name"]: c for c in listed["contexts"]}
    assert sorted(by_name) == ["prod", "prod-exec", "staging"]
    assert by_name["prod"] == {
        "name": "prod",
        "cluster": "prod-cluster",
        "server": clusters.prod.url,
        "namespace": PROD_NAMESPACE,
        "default": True,
    }
    assert by_name["staging"]["server"] == clusters.staging.url and not by_name["staging"]["default"]
    assert by_name["staging"]["namespace"] == "default"
    assert str(clusters.kubeconfig) in listed["source"]
    assert last_span(app, "k8s_context_list")["upstream"] == {"contexts": 3, "context": "prod"}


async def test_resource_list_of_pods_shows_kubectl_columns_and_the_span_names_the_cluster(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    clusters.prod.put(pod("web-1", PROD_NAMESPACE, labels={"app": "web"}))
    clusters.prod.put(
        pod("web-2", PROD_NAMESPACE, labels={"app": "web"}, ready=False, waiting="CrashLoopBackOff", restarts=7)
    )
    clusters.prod.put(pod("db-0", PROD_NAMESPACE, labels={"app": "db"}))
    clusters.prod.put(pod("other", "default", labels={"app": "web"}))

    listed = await client.ok("k8s_resource_list", {"kind": "po", "label_selector": "app=web"})
    assert listed["kind"] == "Pod" and listed["api_version"] == "v1" and listed["namespace"] == PROD_NAMESPACE
    rows = {r["name"]: r for r in listed["items"]}
    assert sorted(rows) == ["web-1", "web-2"]
    assert rows["web-2"]["status"] == "CrashLoopBackOff" and rows["web-2"]["restarts"] == 7
    assert rows["web-2"]["ready"] == "0/1" and rows["web-1"]["ready"] == "1/1"
    assert rows["web-1"]["node"] == "node-1" and rows["web-1"]["age"] == "1h"

    sent = clusters.prod.sent("GET", "/pods")[-1]
    assert sent.path == f"/api/v1/namespaces/{PROD_NAMESPACE}/pods"
    assert sent.query["labelSelector"] == ["app=web"] and sent.query["limit"] == ["50"]
    upstream = last_span(app, "k8s_resource_list")["upstream"]
    assert upstream["context"] == "prod"
    assert upstream["k8s.cluster.name"] == "prod-cluster" and upstream["k8s.cluster.server"] == clusters.prod.url
    assert upstream["k8s.namespace.name"] == PROD_NAMESPACE
    assert upstream["k8s.audit_id"] == sent.audit_id and upstream["http.response.status_code"] == 200
    uids = [clusters.prod.get("Pod", PROD_NAMESPACE, n)["metadata"]["uid"] for n in ("web-1", "web-2")]
    assert upstream["k8s.object.uids"] == uids
    assert upstream["k8s.list.resource_version"] == str(clusters.prod._rv)


async def test_context_switching_reaches_the_other_cluster_with_its_client_certificate(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    clusters.staging.put(deployment("api", "default", replicas=2, ready=1))
    listed = await client.ok("k8s_resource_list", {"kind": "deployments.apps", "context": "staging"})
    assert listed["items"] == [
        {"name": "api", "namespace": "default", "ready": "1/2", "up_to_date": 2, "available": 1, "age": "1h"}
    ]
    assert clusters.prod.sent("GET", "/deployments") == []
    sent = clusters.staging.sent("GET", "/deployments")[-1]
    assert "authorization" not in sent.headers  # the client certificate authenticated it
    upstream = last_span(app, "k8s_resource_list")["upstream"]
    assert upstream["context"] == "staging" and upstream["k8s.cluster.name"] == "staging-cluster"
    assert upstream["k8s.cluster.server"] == clusters.staging.url and upstream["k8s.audit_id"] == sent.audit_id


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("pods", "/api/v1/namespaces/shop/pods"),  # core wins over metrics.k8s.io's pods
        ("Pod", "/api/v1/namespaces/shop/pods"),
        ("deploy", "/apis/apps/v1/namespaces/shop/deployments"),
        ("apps/v1/Deployment", "/apis/apps/v1/namespaces/shop/deployments"),
        ("deployments.apps", "/apis/apps/v1/namespaces/shop/deployments"),
        ("wd", "/apis/example.com/v1/namespaces/shop/widgets"),
        ("widgets.example.com", "/apis/example.com/v1/namespaces/shop/widgets"),
        ("nodes", "/api/v1/nodes"),
    ],
)
async def test_kind_is_resolved_through_discovery(client: Caller, clusters: Clusters, kind: str, expected: str) -> None:
    await client.ok("k8s_resource_list", {"kind": kind})
    assert clusters.prod.sent("GET")[-1].path == expected


async def test_paging_follows_the_api_continue_token(client: Caller, clusters: Clusters) -> None:
    for i in range(5):
        clusters.prod.put(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": "shop"}}
        )
    first = await client.ok("k8s_resource_list", {"kind": "configmaps", "limit": 2})
    assert [r["name"] for r in first["items"]] == ["cm-0", "cm-1"] and first["remaining"] == 3
    second = await client.ok("k8s_resource_list", {"kind": "configmaps", "limit": 2, "cursor": first["next_cursor"]})
    third = await client.ok("k8s_resource_list", {"kind": "configmaps", "limit": 2, "cursor": second["next_cursor"]})
    assert [r["name"] for r in second["items"] + third["items"]] == ["cm-2", "cm-3", "cm-4"]
    assert third["next_cursor"] is None
    assert clusters.prod.sent("GET", "/configmaps")[1].query["continue"] == [first["next_cursor"]]


async def test_all_namespaces_and_field_selector(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(pod("a", "shop"))
    clusters.prod.put(pod("b", "default", phase="Pending", ready=False))
    listed = await client.ok(
        "k8s_resource_list", {"kind": "pods", "all_namespaces": True, "field_selector": "status.phase=Pending"}
    )
    assert [(r["namespace"], r["name"]) for r in listed["items"]] == [("default", "b")]
    sent = clusters.prod.sent("GET", "/pods")[-1]
    assert sent.path == "/api/v1/pods" and sent.query["fieldSelector"] == ["status.phase=Pending"]
    assert listed["namespace"] is None


async def test_resource_get_drops_managed_fields_and_records_uid_and_resource_version(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    stored = clusters.prod.put(deployment("web", "shop"))
    stored["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}]
    got = await client.ok("k8s_resource_get", {"kind": "deployment", "name": "web"})
    assert got["truncated"] is False
    assert "managedFields" not in got["object"]["metadata"]
    assert got["object"]["spec"]["replicas"] == 3
    upstream = last_span(app, "k8s_resource_get")["upstream"]
    assert upstream["k8s.object.kind"] == "Deployment" and upstream["k8s.object.name"] == "web"
    assert upstream["k8s.object.uid"] == stored["metadata"]["uid"] == upstream["k8s.deployment.uid"]
    assert upstream["k8s.object.resource_version"] == stored["metadata"]["resourceVersion"]
    assert upstream["k8s.object.generation"] == 1
    assert upstream["k8s.audit_id"] == clusters.prod.sent("GET", "/deployments/web")[-1].audit_id


async def test_secret_shows_keys_and_sizes_never_values(client: Caller, app: LedgerApp, clusters: Clusters) -> None:
    import base64

    value = "secretValueCanary-0c4e1f"
    clusters.prod.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": "db",
                "namespace": "shop",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": f'{{"data":{{"pw":"{value}"}}}}'},
            },
            "data": {"password": base64.b64encode(value.encode()).decode(), "user": base64.b64encode(b"app").decode()},
        }
    )
    got = await client.ok("k8s_resource_get", {"kind": "secret", "name": "db"})
    assert got["object"]["data"] == {"password": f"{len(value)} bytes", "user": "3 bytes"}
    listed = await client.ok("k8s_resource_list", {"kind": "secrets"})
    assert listed["items"][0]["data"] == 2 and listed["items"][0]["type"] == "Opaque"
    ledger = "".join(p.read_text() for p in app.ledger_dir.rglob("*") if p.is_file())
    for text in (str(got), str(listed), ledger):
        assert value not in text and base64.b64encode(value.encode()).decode() not in text


async def test_pod_logs_tail_grep_previous_and_untrusted(client: Caller, app: LedgerApp, clusters: Clusters) -> None:
    clusters.prod.put(pod("web-1", "shop", containers=("app", "sidecar")))
    clusters.prod.set_log("shop", "web-1", "app", [f"line {i}" for i in range(300)])
    clusters.prod.set_log("shop", "web-1", "app", ["boom", "panic: nil map"], previous=True)

    error = await client.error("k8s_pod_logs", {"name": "web-1"})
    assert "several containers" in error and "app, sidecar" in error

    logs = await client.ok("k8s_pod_logs", {"name": "web-1", "container": "app", "tail_lines": 3})
    assert logs["untrusted_log"] == "line 297\nline 298\nline 299" and logs["lines"] == 3
    sent = clusters.prod.sent("GET", "/log")[-1]
    assert sent.query["tailLines"] == ["3"] and sent.query["container"] == ["app"]

    grep = await client.ok("k8s_pod_logs", {"name": "web-1", "container": "app", "grep": r"line 1\d$", "tail_lines": 4})
    assert grep["untrusted_log"].splitlines() == ["17: line 16", "18: line 17", "19: line 18", "20: line 19"]
    assert grep["truncated"] is True and "10000" in grep["note"] and "of 10 matching lines" in grep["note"]

    previous = await client.ok("k8s_pod_logs", {"name": "web-1", "container": "app", "previous": True})
    assert previous["untrusted_log"] == "boom\npanic: nil map"
    assert clusters.prod.sent("GET", "/log")[-1].query["previous"] == ["true"]

    span = last_span(app, "k8s_pod_logs")
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True
    assert span["upstream"]["k8s.pod.uid"] == clusters.prod.get("Pod", "shop", "web-1")["metadata"]["uid"]
    assert span["upstream"]["k8s.container.name"] == "app"


async def test_pod_logs_max_bytes_keeps_the_newest_and_says_so(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(pod("web-1", "shop"))
    clusters.prod.set_log("shop", "web-1", "app", [f"{i:04d} " + "x" * 95 for i in range(100)])
    logs = await client.ok("k8s_pod_logs", {"name": "web-1", "tail_lines": 100, "max_bytes": 1000})
    assert logs["truncated"] is True and logs["note"]
    assert len(logs["untrusted_log"].encode()) <= 1000
    assert logs["untrusted_log"].splitlines()[-1].startswith("0099")


async def test_a_grep_that_backtracks_forever_is_stopped_with_a_reason_and_a_span(
    client: Caller, app: LedgerApp, clusters: Clusters
) -> None:
    """The pattern is the agent's: one that backtracks exponentially on these lines must not hold the server."""
    clusters.prod.put(pod("web-1", "shop"))
    clusters.prod.set_log("shop", "web-1", "app", ["a" * 60 + "b"] * 50)
    error = await client.error("k8s_pod_logs", {"name": "web-1", "grep": "(a|aa)+$"})
    assert "took more than 1 s over the log; use a simpler pattern" in error
    span = last_span(app, "k8s_pod_logs")
    assert span["status"]["code"] == "ERROR" and span["attributes"]["error.type"] == "tool_error"


async def test_event_list_newest_first_warnings_only_for_one_object(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(
        event("e1", "shop", kind="Pod", obj="web-1", reason="BackOff", message="back-off", at="2026-12-03T07:01:00Z")
    )
    clusters.prod.put(
        event(
            "e2",
            "shop",
            kind="Pod",
            obj="web-1",
            reason="Pulled",
            message="ok",
            type_="Normal",
            at="2026-12-03T07:02:00Z",
        )
    )
    clusters.prod.put(
        event("e3", "shop", kind="Pod", obj="web-1", reason="Failed", message="exit 1", at="2026-12-03T07:03:00Z")
    )
    clusters.prod.put(
        event("e4", "shop", kind="Pod", obj="db-0", reason="Failed", message="other", at="2026-12-03T07:04:00Z")
    )
    listed = await client.ok("k8s_event_list", {"kind": "Pod", "name": "web-1", "warnings_only": True})
    assert [e["reason"] for e in listed["events"]] == ["Failed", "BackOff"]
    assert listed["events"][0]["object"] == "Pod/web-1" and listed["more"] == 0
    sent = clusters.prod.sent("GET", "/events")[-1]
    assert sent.query["fieldSelector"] == ["involvedObject.kind=Pod,involvedObject.name=web-1,type=Warning"]
    everything = await client.ok("k8s_event_list", {"limit": 2})
    assert [e["reason"] for e in everything["events"]] == ["Failed", "Failed"] and everything["more"] == 2


async def test_pod_logs_since_and_timestamps_are_sent_as_the_api_names_them(client: Caller, clusters: Clusters) -> None:
    clusters.prod.put(pod("web-1", "shop"))
    clusters.prod.set_log("shop", "web-1", "app", ["old", "new"])
    logs = await client.ok("k8s_pod_logs", {"name": "web-1", "since": "15m", "timestamps": True})
    sent = clusters.prod.sent("GET", "/log")[-1]
    assert 899 <= int(sent.query["sinceSeconds"][0]) <= 901 and sent.query["timestamps"] == ["true"]
    first, second = logs["untrusted_log"].splitlines()
    assert first.endswith("Z old") and second.endswith("Z new")
    error = await client.error("k8s_pod_logs", {"name": "web-1", "since": "yesterday-ish"})
    assert "since" in error
