"""Contexts and resources of any kind: list, get, server-side apply, delete.

Kinds are found through the cluster's discovery, so custom resources work like built-in ones. A Secret
is shown by key and size, never by value, and is never applied through this server (its values would
pass through the agent and the ledger).
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_ledger.provenance import annotate
from mcp_ledger.tools.group import InvalidArguments, ToolArgs, ToolFailure, ToolModel, tool
from mcp_ledger.tools.k8s._args import NAME_PATTERN, LabelName, ObjectKind, ObjectName
from mcp_ledger.tools.k8s._backend import FIELD_MANAGER, ApiResource, Cluster, K8sClients, NotFound, annotate_object
from mcp_ledger.tools.k8s._present import bounded_object, row

MAX_MANIFEST = 262_144
MAX_DOCUMENTS = 50


class ContextListArgs(ToolArgs):
    pass


class ContextEntry(ToolModel):
    name: str
    cluster: str
    server: str
    namespace: str = Field(description="The context's default namespace")
    default: bool


class ContextList(ToolModel):
    contexts: list[ContextEntry]
    source: str = Field(description="Where the contexts were read from")


@tool(read_only=True, idempotent=True, open_world=False)
async def k8s_context_list(args: ContextListArgs, clients: K8sClients, ctx: Context) -> ContextList:
    """Kubernetes contexts this server may use: cluster, server URL, default namespace, which is the default."""
    source = clients.source
    config = source.config()
    default = source.settings.context or config.current
    entries = []
    for name in source.allowed(config):
        info = config.contexts[name]
        entries.append(
            ContextEntry(
                name=name,
                cluster=info.cluster,
                server=info.server,
                namespace=info.namespace or "default",
                default=name == default,
            )
        )
    annotate(contexts=len(entries), context=default)
    return ContextList(contexts=entries, source=config.source)


class ResourceListArgs(ToolArgs):
    kind: ObjectKind
    namespace: LabelName | None = None
    all_namespaces: bool = False
    label_selector: str | None = Field(default=None, max_length=1024, description="e.g. app=web,tier!=db")
    field_selector: str | None = Field(default=None, max_length=1024, description="e.g. status.phase=Running")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=4096, description="next_cursor of the previous page")


class ResourceList(ToolModel):
    kind: str
    api_version: str
    namespace: str | None = Field(description="Null: all namespaces, or a cluster-scoped kind")
    items: list[dict[str, Any]] = Field(description="Name, namespace, age and kubectl's columns for the kind")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")
    remaining: int | None = Field(description="Objects after this page, when the server says")


def _list_query(args: ResourceListArgs) -> list[tuple[str, str]]:
    query = [("limit", str(args.limit))]
    if args.label_selector:
        query.append(("labelSelector", args.label_selector))
    if args.field_selector:
        query.append(("fieldSelector", args.field_selector))
    if args.cursor:
        query.append(("continue", args.cursor))
    return query


@tool(read_only=True, idempotent=True, open_world=False, target="context")
async def k8s_resource_list(args: ResourceListArgs, cluster: Cluster, ctx: Context) -> ResourceList:
    """List objects of any kind (custom resources too) in a namespace or all, with selectors and paging."""
    resource = await cluster.resolve(args.kind)
    namespace = cluster.scope(args.namespace, namespaced=resource.namespaced, everywhere=args.all_namespaces)
    listing = await cluster.get_json(
        resource.path(namespace), verb="list", what=_plural(resource, namespace), query=_list_query(args)
    )
    items = [i for i in listing.get("items") or [] if isinstance(i, dict)]
    meta = listing.get("metadata") or {}
    annotate(
        **{
            "k8s.object.kind": resource.kind,
            "k8s.list.resource_version": meta.get("resourceVersion"),
            "k8s.list.count": len(items),
        }
    )
    uids = [(i.get("metadata") or {}).get("uid") for i in items[:100]]
    annotate(**{"k8s.object.uids": [u for u in uids if u]})
    remaining = meta.get("remainingItemCount")
    return ResourceList(
        kind=resource.kind,
        api_version=resource.api_version,
        namespace=namespace,
        items=[row(i, resource.kind) for i in items],
        next_cursor=meta.get("continue") or None,
        remaining=remaining if isinstance(remaining, int) else None,
    )


def _plural(resource: ApiResource, namespace: str | None) -> str:
    return f"{resource.qualified} in namespace {namespace}" if namespace else f"{resource.qualified} (all namespaces)"


def _one(resource: ApiResource, namespace: str | None, name: str) -> str:
    where = f"{namespace}/" if resource.namespaced and namespace else ""
    return f"{resource.kind} {where}{name}"


class ResourceGetArgs(ToolArgs):
    kind: ObjectKind
    name: ObjectName
    namespace: LabelName | None = None


class ResourceObject(ToolModel):
    object: dict[str, Any] = Field(description="managedFields dropped; a Secret's data as key: size")
    truncated: bool = Field(description="Long strings and lists were cut to fit 64 KiB")


@tool(read_only=True, idempotent=True, open_world=False, target="context")
async def k8s_resource_get(args: ResourceGetArgs, cluster: Cluster, ctx: Context) -> ResourceObject:
    """One object of any kind, bounded. Secrets show keys and sizes, never values."""
    resource = await cluster.resolve(args.kind)
    namespace = cluster.scope(args.namespace, namespaced=resource.namespaced)
    obj = await cluster.get_json(
        resource.path(namespace, args.name), verb="get", what=_one(resource, namespace, args.name)
    )
    annotate_object(obj)
    shown, truncated = bounded_object(obj)
    return ResourceObject(object=shown, truncated=truncated)


class ApplyArgs(ToolArgs):
    manifests: str = Field(
        min_length=1, max_length=MAX_MANIFEST, description="YAML or JSON; several documents separated by ---"
    )
    namespace: LabelName | None = None
    dry_run: bool = False
    force: bool = Field(default=False, description="Take over fields another field manager owns")


class Applied(ToolModel):
    kind: str
    name: str
    namespace: str | None
    action: Literal["created", "changed", "unchanged"]
    uid: str | None
    resource_version_before: str | None
    resource_version_after: str | None
    generation_before: int | None
    generation_after: int | None


class ApplyResult(ToolModel):
    objects: list[Applied]
    dry_run: bool


def _documents(text: str) -> list[dict[str, Any]]:
    import yaml

    class NoAliases(yaml.SafeLoader):  # type: ignore[misc]
        def compose_node(self, parent: Any, index: Any) -> Any:  # aliases can expand a small text enormously
            if self.check_event(yaml.AliasEvent):
                raise InvalidArguments("manifests: YAML aliases (*name) are not accepted")
            return super().compose_node(parent, index)

    try:
        loaded = [d for d in yaml.load_all(text, Loader=NoAliases) if d is not None]  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidArguments(f"manifests: not valid YAML{where}") from None
    if not loaded:
        raise InvalidArguments("manifests: no document")
    if len(loaded) > MAX_DOCUMENTS:
        raise InvalidArguments(f"manifests: at most {MAX_DOCUMENTS} documents per call")
    docs = []
    for number, doc in enumerate(loaded, 1):
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if not (isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)):
            raise InvalidArguments(f"manifests: document {number} needs apiVersion and kind")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            raise InvalidArguments(f"manifests: document {number} needs metadata.name (generateName cannot be applied)")
        import re

        if not re.match(NAME_PATTERN, meta["name"]) or not re.match(r"^[A-Za-z0-9]{1,63}$", doc["kind"]):
            raise InvalidArguments(f"manifests: document {number} has an invalid kind or metadata.name")
        if doc["kind"].endswith("List"):
            raise InvalidArguments(f"manifests: document {number} is a List; give its items as separate documents")
        docs.append(doc)
    return docs


def _meta(obj: Any, key: str) -> Any:
    return (obj.get("metadata") or {}).get(key) if isinstance(obj, dict) else None


@tool(read_only=False, destructive=False, idempotent=True, open_world=False, target="context")
async def k8s_resource_apply(args: ApplyArgs, cluster: Cluster, ctx: Context) -> ApplyResult:
    """Server-side apply (field manager mcp-ledger); dry_run shows the outcome without saving it.
    Reports each object as created, changed or unchanged, with resourceVersion before and after."""
    docs = _documents(args.manifests)
    default_namespace = cluster.scope(args.namespace)
    if args.dry_run:
        annotate(**{"k8s.dry_run": True})
    done: list[Applied] = []
    for doc in docs:
        resource = await cluster.kind_resource(doc["apiVersion"], doc["kind"])
        if resource.group == "" and resource.resource == "secrets":
            raise ToolFailure(
                "Secrets are not applied through this server: their values would pass through the agent and the "
                "ledger. Create them with your usual secret tooling."
            )
        namespace = None
        if resource.namespaced:
            namespace = _meta(doc, "namespace") or default_namespace
            if args.namespace and namespace != args.namespace:
                raise InvalidArguments(
                    f"manifests: {doc['kind']} {doc['metadata']['name']} names namespace {namespace}, "
                    f"the call names {args.namespace}"
                )
            doc["metadata"]["namespace"] = namespace
        name = doc["metadata"]["name"]
        what = _one(resource, namespace, name)
        try:
            before_response = await cluster.request(
                "GET", resource.path(namespace, name), verb="get", what=what, ok_statuses=(404,)
            )
            before = before_response.json() if before_response.status == 200 else None
            query = [("fieldManager", FIELD_MANAGER)]
            if args.force:
                query.append(("force", "true"))
            if args.dry_run:
                query.append(("dryRun", "All"))
            after = (
                await cluster.request(
                    "PATCH",
                    resource.path(namespace, name),
                    verb="patch",
                    what=what,
                    query=query,
                    body=doc,
                    content_type="application/apply-patch+yaml",
                )
            ).json()
        except ToolFailure as exc:
            if not done:
                raise
            applied = ", ".join(f"{d.kind} {d.name} ({d.action})" for d in done)
            raise type(exc)(f"{exc} — applied before it in this call: {applied}") from None
        annotate_object(after)
        annotate_object(before or {"metadata": {}}, suffix="_before")
        annotate_object(after, suffix="_after")
        rv_before, rv_after = _meta(before, "resourceVersion"), _meta(after, "resourceVersion")
        action: Literal["created", "changed", "unchanged"] = (
            "created" if before is None else "unchanged" if rv_before == rv_after else "changed"
        )
        done.append(
            Applied(
                kind=resource.kind,
                name=name,
                namespace=namespace,
                action=action,
                uid=_meta(after, "uid"),
                resource_version_before=rv_before,
                resource_version_after=rv_after,
                generation_before=_meta(before, "generation"),
                generation_after=_meta(after, "generation"),
            )
        )
    return ApplyResult(objects=done, dry_run=args.dry_run)


class DeleteArgs(ToolArgs):
    kind: ObjectKind
    name: ObjectName
    namespace: LabelName | None = None
    dry_run: bool = False
    propagation: Literal["Background", "Foreground", "Orphan"] = Field(
        default="Background", description="What becomes of dependents (a deployment's pods)"
    )


class Deleted(ToolModel):
    kind: str
    name: str
    namespace: str | None
    uid: str | None
    resource_version: str | None = Field(description="Before the delete")
    dry_run: bool
    finalizers: list[str] = Field(description="Non-empty: the object stays until these finish")


@tool(read_only=False, destructive=True, idempotent=False, open_world=False, target="context")
async def k8s_resource_delete(args: DeleteArgs, cluster: Cluster, ctx: Context) -> Deleted:
    """Delete one object (dry_run checks without deleting)."""
    resource = await cluster.resolve(args.kind)
    namespace = cluster.scope(args.namespace, namespaced=resource.namespaced)
    what = _one(resource, namespace, args.name)
    path = resource.path(namespace, args.name)
    before = await cluster.get_json(path, verb="get", what=what)
    annotate_object(before)
    if args.dry_run:
        annotate(**{"k8s.dry_run": True})
    options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": args.propagation}
    query: list[tuple[str, str]] = [("propagationPolicy", args.propagation)]
    if args.dry_run:
        options["dryRun"] = ["All"]
        query.append(("dryRun", "All"))
    uid = _meta(before, "uid")
    if uid:  # never delete a newer object that took the name since it was read
        options["preconditions"] = {"uid": uid}
    try:
        answer = (await cluster.request("DELETE", path, verb="delete", what=what, query=query, body=options)).json()
    except NotFound:
        raise NotFound(f"{what} was deleted by someone else first (context {cluster.context})") from None
    finalizers = [str(f) for f in (_meta(answer, "finalizers") or [])] if answer.get("kind") != "Status" else []
    return Deleted(
        kind=resource.kind,
        name=args.name,
        namespace=namespace,
        uid=uid,
        resource_version=_meta(before, "resourceVersion"),
        dry_run=args.dry_run,
        finalizers=finalizers,
    )
