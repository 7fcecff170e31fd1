"""Pod logs and events: bounded, newest kept, log text returned as untrusted content."""

from __future__ import annotations

import time
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, Field, field_validator

from mcp_ledger.provenance import annotate
from mcp_ledger.tools._logtail import Grep, LogTail, check_pattern
from mcp_ledger.tools._time import TIME_HELP, time_ns
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolModel, tool
from mcp_ledger.tools.k8s._args import LabelName, ObjectName, matches
from mcp_ledger.tools.k8s._backend import ApiResource, Cluster, annotate_object
from mcp_ledger.tools.k8s._present import UNTRUSTED, age

GREP_WINDOW = 10_000  # lines searched when grep is given
MAX_WINDOW_BYTES = 16 * 1024 * 1024  # the most log text read from the server for one call
PODS = ApiResource("", "v1", "pods", "Pod", True)
EVENTS = ApiResource("", "v1", "events", "Event", True)


class PodLogsArgs(ToolArgs):
    name: ObjectName
    namespace: LabelName | None = None
    container: LabelName | None = None
    previous: bool = Field(default=False, description="The previous, crashed instance")
    tail_lines: int = Field(default=100, ge=1, le=5000, description="Last lines to return (after grep)")
    since: str | None = Field(default=None, max_length=64, description=TIME_HELP)
    timestamps: bool = False
    grep: str | None = Field(default=None, max_length=256, description="Python regex over the last 10000 lines")
    max_bytes: int = Field(default=65_536, ge=256, le=1_048_576)

    @field_validator("grep")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return check_pattern(value)


class PodLogs(ToolModel):
    pod: str
    container: str
    untrusted_log: str = Field(description=UNTRUSTED)
    lines: int
    truncated: bool
    note: str | None = Field(description="What was left out and how to see it")


def _container(pod: dict[str, Any], wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    if wanted:
        if wanted not in names:
            raise InvalidArguments(
                f"container: pod {_meta_name(pod)} has no container {wanted!r}; it has {', '.join(names)}"
            )
        return wanted
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    main = [str(c.get("name")) for c in spec.get("containers") or []]
    if default in main:
        return str(default)
    if len(main) == 1:
        return main[0]
    raise InvalidArguments(f"container: pod {_meta_name(pod)} has several containers; name one of {', '.join(names)}")


def _meta_name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


@tool(read_only=True, idempotent=True, open_world=False, target="context")
async def k8s_pod_logs(args: PodLogsArgs, cluster: Cluster, ctx: Context) -> PodLogs:
    """A pod container's log tail (tail_lines, since, previous instance, grep); truncation stated."""
    cluster.allowed(PODS)
    namespace = cluster.scope(args.namespace)
    pod_path = f"/api/v1/namespaces/{namespace}/pods/{args.name}"
    pod = await cluster.get_json(pod_path, verb="get", what=f"Pod {namespace}/{args.name}")
    annotate_object(pod)
    container = _container(pod, args.container)
    annotate(**{"k8s.container.name": container})
    # No limitBytes of the caller's size: the server would cut the newest lines, not the oldest.
    window = GREP_WINDOW if args.grep else args.tail_lines
    query = [("container", container), ("tailLines", str(window)), ("limitBytes", str(MAX_WINDOW_BYTES))]
    if args.previous:
        query.append(("previous", "true"))
    if args.timestamps:
        query.append(("timestamps", "true"))
    if args.since:
        seconds = max(1, int((time.time_ns() - time_ns(args.since, "since")) / 1e9))
        query.append(("sinceSeconds", str(seconds)))
    response = await cluster.request(
        "GET",
        f"{pod_path}/log",
        verb="get",
        what=f"the {'previous ' if args.previous else ''}log of container {container} of Pod {namespace}/{args.name}",
        query=query,
        max_bytes=MAX_WINDOW_BYTES,
    )
    tail = LogTail(args.tail_lines, Grep(args.grep) if args.grep else None)
    for line in response.body.decode("utf-8", "replace").splitlines():
        tail.feed(line)
    excerpt = tail.result(args.max_bytes)
    notes = excerpt.notes
    if args.grep:
        notes.append(f"grep searched the last {window} lines (numbered from there)")
    if len(response.body) >= MAX_WINDOW_BYTES:
        notes.append(
            f"the last {window} lines exceed {MAX_WINDOW_BYTES} bytes: the newest may be missing; lower tail_lines"
        )
    annotate(untrusted_content=True, log_lines=excerpt.lines_returned)
    return PodLogs(
        pod=args.name,
        container=container,
        untrusted_log=excerpt.text,
        lines=excerpt.lines_returned,
        truncated=excerpt.truncated or len(response.body) >= MAX_WINDOW_BYTES,
        note="; ".join(notes) or None,
    )


class EventListArgs(ToolArgs):
    namespace: LabelName | None = None
    kind: Annotated[str, Field(max_length=63), AfterValidator(matches(r"^[A-Za-z]+$", "kind"))] | None = None
    name: ObjectName | None = Field(default=None, description="Only events about this object (with kind, e.g. Pod)")
    warnings_only: bool = False
    limit: int = Field(default=50, ge=1, le=200)


class Event(ToolModel):
    type: str | None
    reason: str | None
    object: str
    message: str | None
    count: int
    last_seen: str | None
    age: str


class EventList(ToolModel):
    events: list[Event] = Field(description="Newest first")
    more: int = Field(description="Older events not shown")


def event_time(event: dict[str, Any]) -> str:
    series = event.get("series") or {}
    return str(
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def shown_event(event: dict[str, Any]) -> Event:
    involved = event.get("involvedObject") or {}
    message = event.get("message")
    when = event_time(event)
    return Event(
        type=event.get("type"),
        reason=event.get("reason"),
        object=f"{involved.get('kind')}/{involved.get('name')}",
        message=str(message)[:1024] if message else None,
        count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
        last_seen=when or None,
        age=age(when),
    )


async def warning_events(
    cluster: Cluster, namespace: str, *, kind: str | None, name: str | None, warnings_only: bool
) -> list[dict[str, Any]]:
    """Core v1 events of a namespace (or one object), newest first; at most 500 are read."""
    selectors = []
    if kind:
        selectors.append(f"involvedObject.kind={kind}")
    if name:
        selectors.append(f"involvedObject.name={name}")
    if warnings_only:
        selectors.append("type=Warning")
    query = [("limit", "500")]
    if selectors:
        query.append(("fieldSelector", ",".join(selectors)))
    listing = await cluster.get_json(
        f"/api/v1/namespaces/{namespace}/events", verb="list", what=f"events in namespace {namespace}", query=query
    )
    events = [e for e in listing.get("items") or [] if isinstance(e, dict)]
    events.sort(key=event_time, reverse=True)
    annotate(**{"k8s.list.resource_version": (listing.get("metadata") or {}).get("resourceVersion")})
    return events


@tool(read_only=True, idempotent=True, open_world=False, target="context")
async def k8s_event_list(args: EventListArgs, cluster: Cluster, ctx: Context) -> EventList:
    """Events of a namespace or of one object, newest first; optionally warnings only."""
    cluster.allowed(EVENTS)
    namespace = cluster.scope(args.namespace)
    assert namespace is not None
    events = await warning_events(cluster, namespace, kind=args.kind, name=args.name, warnings_only=args.warnings_only)
    if args.name:
        annotate(**{"k8s.object.kind": args.kind, "k8s.object.name": args.name})
    uids = {(e.get("involvedObject") or {}).get("uid") for e in events[: args.limit]}
    annotate(**{"k8s.object.uids": sorted(u for u in uids if u)[:100], "k8s.list.count": len(events)})
    annotate(untrusted_content=True)
    return EventList(events=[shown_event(e) for e in events[: args.limit]], more=max(0, len(events) - args.limit))
