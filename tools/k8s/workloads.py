"""Workloads: a diagnosis in one call, scale through the scale subresource, rollout restart as kubectl does it."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import ToolArgs, ToolFailure, ToolModel, UpstreamError, tool
from mcp_ledger.tools.k8s._args import LabelName, ObjectName
from mcp_ledger.tools.k8s._backend import ApiResource, Cluster, annotate_object
from mcp_ledger.tools.k8s._present import UNTRUSTED, pod_problem, pod_ready, pod_status
from mcp_ledger.tools.k8s.pods import EVENTS, Event, shown_event, warning_events

WORKLOADS: dict[str, ApiResource] = {
    "pod": ApiResource("", "v1", "pods", "Pod", True),
    "deployment": ApiResource("apps", "v1", "deployments", "Deployment", True),
    "statefulset": ApiResource("apps", "v1", "statefulsets", "StatefulSet", True),
    "daemonset": ApiResource("apps", "v1", "daemonsets", "DaemonSet", True),
    "replicaset": ApiResource("apps", "v1", "replicasets", "ReplicaSet", True),
    "job": ApiResource("batch", "v1", "jobs", "Job", True),
}
MAX_PODS = 20
MAX_LOGS = 5


class DiagnoseArgs(ToolArgs):
    kind: Literal["pod", "deployment", "statefulset", "daemonset", "job"]
    name: ObjectName
    namespace: LabelName | None = None
    log_lines: int = Field(default=20, ge=0, le=200, description="Previous-instance log lines per failing container")


class Rollout(ToolModel):
    desired: int | None
    updated: int | None
    ready: int | None
    available: int | None
    revision: str | None
    complete: bool
    summary: str
    conditions: list[dict[str, Any]]


class PodDiagnosis(ToolModel):
    name: str
    phase: str
    status: str
    ready: str
    node: str | None
    problems: list[dict[str, Any]] = Field(description="Per container: reason, exit codes, restarts")


class ContainerLog(ToolModel):
    pod: str
    container: str
    untrusted_log: str = Field(description=UNTRUSTED)
    note: str | None


class Diagnosis(ToolModel):
    kind: str
    name: str
    namespace: str
    rollout: Rollout | None
    failing_pods: list[PodDiagnosis] = Field(description="Pods not ready or restarting (at most 20)")
    healthy_pods: int
    warnings: list[Event] = Field(description="Recent warning events about the workload and its pods, newest first")
    previous_logs: list[ContainerLog] = Field(description="Last lines of the crashed instance of failing containers")
    verdict: str


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def _rollout(kind: str, obj: dict[str, Any]) -> Rollout | None:
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    conditions = [
        {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k) is not None}
        for c in status.get("conditions") or []
    ]
    observed = status.get("observedGeneration")
    stale = observed is not None and meta.get("generation") is not None and observed < meta["generation"]
    if kind == "Deployment":
        desired = _int(spec.get("replicas", 1)) or 0
        updated, ready = _int(status.get("updatedReplicas")) or 0, _int(status.get("readyReplicas")) or 0
        available, total = _int(status.get("availableReplicas")) or 0, _int(status.get("replicas")) or 0
        revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
        progressing = next((c for c in conditions if c.get("type") == "Progressing"), {})
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            summary, complete = "rollout failed: progress deadline exceeded", False
        elif stale:
            summary, complete = "waiting for the controller to observe the new generation", False
        elif updated < desired:
            summary, complete = f"{updated} of {desired} new replicas updated", False
        elif total > updated:
            summary, complete = f"{total - updated} old replicas pending termination", False
        elif available < updated:
            summary, complete = f"{available} of {updated} updated replicas available", False
        else:
            summary, complete = "successfully rolled out", True
        return Rollout(
            desired=desired,
            updated=updated,
            ready=ready,
            available=available,
            revision=revision,
            complete=complete,
            summary=summary,
            conditions=conditions,
        )
    if kind == "StatefulSet":
        desired = _int(spec.get("replicas", 1)) or 0
        ready, updated = _int(status.get("readyReplicas")) or 0, _int(status.get("updatedReplicas")) or 0
        revision = status.get("updateRevision")
        complete = not stale and ready >= desired and updated >= desired
        summary = "rolled out" if complete else f"{ready} of {desired} ready, {updated} updated"
        return Rollout(
            desired=desired,
            updated=updated,
            ready=ready,
            available=_int(status.get("availableReplicas")),
            revision=revision,
            complete=complete,
            summary=summary,
            conditions=conditions,
        )
    if kind == "DaemonSet":
        desired = _int(status.get("desiredNumberScheduled")) or 0
        updated, ready = _int(status.get("updatedNumberScheduled")) or 0, _int(status.get("numberReady")) or 0
        available = _int(status.get("numberAvailable")) or 0
        complete = not stale and updated >= desired and available >= desired
        summary = "rolled out" if complete else f"{available} of {desired} available, {updated} updated"
        return Rollout(
            desired=desired,
            updated=updated,
            ready=ready,
            available=available,
            revision=None,
            complete=complete,
            summary=summary,
            conditions=conditions,
        )
    if kind == "Job":
        done = {c.get("type") for c in conditions if c.get("status") == "True"}
        succeeded, failed = _int(status.get("succeeded")) or 0, _int(status.get("failed")) or 0
        complete = "Complete" in done
        summary = (
            "failed"
            if "Failed" in done
            else "complete"
            if complete
            else f"running: {succeeded} succeeded, {failed} failed"
        )
        return Rollout(
            desired=_int(spec.get("completions", 1)),
            updated=None,
            ready=_int(status.get("ready")),
            available=succeeded,
            revision=None,
            complete=complete,
            summary=summary,
            conditions=conditions,
        )
    return None


def _selector(obj: dict[str, Any]) -> str:
    """A label selector from spec.selector (matchLabels and matchExpressions)."""
    selector = (obj.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    if not parts:
        raise ToolFailure(f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')} has no pod selector")
    return ",".join(parts)


@tool(read_only=True, idempotent=True, open_world=False, target="context")
async def k8s_workload_diagnose(args: DiagnoseArgs, cluster: Cluster, ctx: Context) -> Diagnosis:
    """Why a pod or workload is failing, in one call: rollout status, pods not ready with their reasons
    (CrashLoopBackOff, ImagePullBackOff, OOMKilled, exit codes), recent warnings, crashed containers' last log lines."""
    namespace = cluster.scope(args.namespace)
    assert namespace is not None
    resource = cluster.allowed(WORKLOADS[args.kind])
    what = f"{resource.kind} {namespace}/{args.name}"
    obj = await cluster.get_json(resource.path(namespace, args.name), verb="get", what=what)
    annotate_object(obj)
    if args.kind == "pod":
        pods = [obj]
    else:
        cluster.allowed(WORKLOADS["pod"])
        listing = await cluster.get_json(
            f"/api/v1/namespaces/{namespace}/pods",
            verb="list",
            what=f"pods in namespace {namespace}",
            query=[("labelSelector", _selector(obj)), ("limit", "500")],
        )
        pods = [p for p in listing.get("items") or [] if isinstance(p, dict)]
    failing: list[PodDiagnosis] = []
    for pod in pods:
        problems = pod_problem(pod)
        ready, total = pod_ready(pod)
        if not problems and ready == total and (pod.get("status") or {}).get("phase") in ("Running", "Succeeded"):
            continue
        meta = pod.get("metadata") or {}
        annotate(**{"k8s.pod.name": meta.get("name"), "k8s.pod.uid": meta.get("uid")})
        failing.append(
            PodDiagnosis(
                name=str(meta.get("name")),
                phase=str((pod.get("status") or {}).get("phase") or "Unknown"),
                status=pod_status(pod),
                ready=f"{ready}/{total}",
                node=(pod.get("spec") or {}).get("nodeName"),
                problems=problems,
            )
        )
    failing.sort(key=lambda p: (-sum(int(x.get("restarts") or 0) for x in p.problems), p.name))
    involved = {args.name, *(p.name for p in failing)}
    cluster.allowed(EVENTS)
    events = await warning_events(cluster, namespace, kind=None, name=None, warnings_only=True)
    prefix = f"{args.name}-"
    warnings = [
        shown_event(e)
        for e in events
        if (name := str((e.get("involvedObject") or {}).get("name"))) in involved or name.startswith(prefix)
    ][:20]
    logs: list[ContainerLog] = []
    if args.log_lines:
        for pod in failing[:MAX_PODS]:
            for problem in pod.problems:
                if len(logs) >= MAX_LOGS or not problem.get("container") or not problem.get("restarts"):
                    continue
                logs.append(
                    await _previous_log(cluster, namespace, pod.name, str(problem["container"]), args.log_lines)
                )
    annotate(untrusted_content=bool(logs) or bool(warnings))
    rollout = _rollout(resource.kind, obj)
    if failing:
        found = {str(x.get(k)) for p in failing for x in p.problems for k in ("reason", "last_reason") if x.get(k)}
        reasons = sorted(found)
        verdict = f"{len(failing)} of {len(pods)} pods failing" + (f": {', '.join(reasons)}" if reasons else "")
    elif rollout is not None and not rollout.complete:
        verdict = f"rollout in progress: {rollout.summary}"
    else:
        verdict = "healthy" if pods else "no pods match the workload's selector"
    return Diagnosis(
        kind=resource.kind,
        name=args.name,
        namespace=namespace,
        rollout=rollout,
        failing_pods=failing[:MAX_PODS],
        healthy_pods=len(pods) - len(failing),
        warnings=warnings,
        previous_logs=logs,
        verdict=verdict,
    )


async def _previous_log(cluster: Cluster, namespace: str, pod: str, container: str, lines: int) -> ContainerLog:
    query = [("container", container), ("previous", "true"), ("tailLines", str(lines)), ("limitBytes", "16384")]
    try:
        response = await cluster.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
            verb="get",
            what=f"the previous log of {pod}/{container}",
            query=query,
            max_bytes=16384,
        )
    except UpstreamError as exc:
        return ContainerLog(pod=pod, container=container, untrusted_log="", note=f"no previous log: {exc}"[:300])
    text = response.body.decode("utf-8", "replace")
    return ContainerLog(pod=pod, container=container, untrusted_log=text, note=None)


class ScaleArgs(ToolArgs):
    kind: Literal["deployment", "statefulset", "replicaset"]
    name: ObjectName
    namespace: LabelName | None = None
    replicas: int = Field(ge=0, le=10_000)


class Scaled(ToolModel):
    kind: str
    name: str
    namespace: str
    uid: str | None
    replicas_before: int | None
    replicas_after: int | None
    resource_version_before: str | None
    resource_version_after: str | None


@tool(read_only=False, destructive=False, idempotent=True, open_world=False, target="context")
async def k8s_workload_scale(args: ScaleArgs, cluster: Cluster, ctx: Context) -> Scaled:
    """Set a deployment's, statefulset's or replicaset's replicas through its scale subresource."""
    namespace = cluster.scope(args.namespace)
    assert namespace is not None
    resource = cluster.allowed(WORKLOADS[args.kind])
    path = resource.path(namespace, args.name, "scale")
    what = f"the scale of {resource.kind} {namespace}/{args.name}"
    before = await cluster.get_json(path, verb="get", what=what)
    after = (
        await cluster.request(
            "PATCH",
            path,
            verb="patch",
            what=what,
            body={"spec": {"replicas": args.replicas}},
            content_type="application/merge-patch+json",
        )
    ).json()
    meta_before, meta_after = before.get("metadata") or {}, after.get("metadata") or {}
    annotate(
        **{
            "k8s.object.kind": resource.kind,
            "k8s.object.name": args.name,
            "k8s.object.uid": meta_after.get("uid"),
            f"k8s.{resource.kind.lower()}.name": args.name,
            f"k8s.{resource.kind.lower()}.uid": meta_after.get("uid"),
            "k8s.object.resource_version_before": meta_before.get("resourceVersion"),
            "k8s.object.resource_version_after": meta_after.get("resourceVersion"),
            "k8s.replicas_before": (before.get("spec") or {}).get("replicas"),
            "k8s.replicas_after": (after.get("spec") or {}).get("replicas"),
        }
    )
    return Scaled(
        kind=resource.kind,
        name=args.name,
        namespace=namespace,
        uid=meta_after.get("uid"),
        replicas_before=(before.get("spec") or {}).get("replicas"),
        replicas_after=(after.get("spec") or {}).get("replicas"),
        resource_version_before=meta_before.get("resourceVersion"),
        resource_version_after=meta_after.get("resourceVersion"),
    )


class RestartArgs(ToolArgs):
    kind: Literal["deployment", "statefulset", "daemonset"]
    name: ObjectName
    namespace: LabelName | None = None


class Restarted(ToolModel):
    kind: str
    name: str
    namespace: str
    uid: str | None
    restarted_at: str
    resource_version_before: str | None
    resource_version_after: str | None
    generation_before: int | None
    generation_after: int | None


@tool(read_only=False, destructive=False, idempotent=False, open_world=False, target="context")
async def k8s_workload_restart(args: RestartArgs, cluster: Cluster, ctx: Context) -> Restarted:
    """Rollout restart, as kubectl does it: a new pod-template annotation, so pods are replaced by the rollout."""
    namespace = cluster.scope(args.namespace)
    assert namespace is not None
    resource = cluster.allowed(WORKLOADS[args.kind])
    path = resource.path(namespace, args.name)
    what = f"{resource.kind} {namespace}/{args.name}"
    before = await cluster.get_json(path, verb="get", what=what)
    if ((before.get("spec") or {}).get("template") or {}) == {}:
        raise ToolFailure(f"{what} has no pod template to restart")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    after = (
        await cluster.request(
            "PATCH", path, verb="patch", what=what, body=patch, content_type="application/strategic-merge-patch+json"
        )
    ).json()
    annotate_object(after)
    annotate_object(before, suffix="_before")
    annotate_object(after, suffix="_after")
    meta_before, meta_after = before.get("metadata") or {}, after.get("metadata") or {}
    return Restarted(
        kind=resource.kind,
        name=args.name,
        namespace=namespace,
        uid=meta_after.get("uid"),
        restarted_at=now,
        resource_version_before=meta_before.get("resourceVersion"),
        resource_version_after=meta_after.get("resourceVersion"),
        generation_before=meta_before.get("generation"),
        generation_after=meta_after.get("generation"),
    )
