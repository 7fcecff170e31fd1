"""A loopback Kubernetes API server for the k8s tool tests: the real REST/JSON protocol, in a thread.

kmock 0.8 ignores label and field selectors, ``limit``/``continue`` and ``dryRun``, never bumps
resourceVersion and 404s a server-side apply that creates: closing all of that in a layer over it
would be most of this file anyway, so this is a small API server of its own that behaves as a real one
does for what the tools use — discovery (core, groups, a CRD, metrics.k8s.io's ``pods``), list with
label/field selectors and paging, get, create, server-side apply (field managers, conflicts, force,
dry run), merge and strategic-merge patches, the scale subresource, delete (dry run, preconditions,
finalizers), pod logs (tailLines, limitBytes, previous, timestamps, sinceSeconds) — with bearer-token
or client-certificate authentication, an ``Audit-Id`` header on every response, 401/403/404/409 as
``Status`` bodies, and a record of every request for tests to assert what the tool *sent*.

Every object it serves (and every Status) is validated against the Kubernetes v1.37 JSON schemas in
``tests/specs/`` where the vendored subset has the kind, and every object is parsed into
kubernetes_asyncio's model types: a failure is kept in ``schema_errors``, which the fixtures require
to be empty. Controllers do not run:
tests write the status a controller would.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema

SCHEMAS_PATH = Path(__file__).resolve().parents[1] / "specs" / "kubernetes-v1.37-schemas.json"

# kind -> the schema of that kind in the vendored subset
SCHEMA_OF = {
    "Pod": "io.k8s.api.core.v1.Pod",
    "PodList": "io.k8s.api.core.v1.PodList",
    "Namespace": "io.k8s.api.core.v1.Namespace",
    "NamespaceList": "io.k8s.api.core.v1.NamespaceList",
    "Event": "io.k8s.api.core.v1.Event",
    "EventList": "io.k8s.api.core.v1.EventList",
    "Deployment": "io.k8s.api.apps.v1.Deployment",
    "DeploymentList": "io.k8s.api.apps.v1.DeploymentList",
    "Scale": "io.k8s.api.autoscaling.v1.Scale",
    "Status": "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
}


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
RESOURCES = [
    Res("", "v1", "pods", "Pod", True, ("po",), ("log", "status")),
    Res("", "v1", "services", "Service", True, ("svc",)),
    Res("", "v1", "nodes", "Node", False, ("no",)),
    Res("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Res("", "v1", "events", "Event", True, ("ev",)),
    Res("", "v1", "secrets", "Secret", True),
    Res("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Res("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("scale", "status")),
    Res("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("scale",)),
    Res("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",)),
    Res("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("scale",)),
    Res("batch", "v1", "jobs", "Job", True),
    Res("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Res("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True),
    Res("example.com", "v1", "widgets", "Widget", True, ("wd",)),
]
GENERATION_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Widget"}
SCALE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}


def now_text(offset: float = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def merge(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): null deletes; lists are replaced (a strategic merge of the fields
    the tools patch — annotations, replicas — is the same)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(leaves(item, f"{prefix}.{key}"))
        return found
    return {prefix: value}


def label_match(labels: dict[str, str], selector: str) -> bool:
    """Equality, set-based (in, notin), exists and !exists requirements, comma-separated."""
    for requirement in re.split(r",(?![^()]*\))", selector):
        requirement = requirement.strip()
        if not requirement:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", requirement):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (op == "in" and labels.get(key) not in values) or (op == "notin" and labels.get(key) in values):
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", requirement):
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
        elif requirement.startswith("!"):
            if requirement[1:] in labels:
                return False
        elif requirement not in labels:
            return False
    return True


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_match(obj: dict[str, Any], selector: str) -> bool:
    for requirement in selector.split(","):
        if not requirement.strip():
            continue
        m = re.fullmatch(r"\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*", requirement)
        if m is None:
            raise ValueError(requirement)
        path, op, value = m.groups()
        if (field_value(obj, path) == value) != (op != "!="):
            return False
    return True


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    audit_id: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LogEntry:
    at: str
    text: str


@dataclass
class FakeCluster:
    """One API server. ``tokens``: bearer tokens it accepts; ``tls``: (cert, key, client CA) files, and
    then a verified client certificate is accepted as well."""

    name: str
    tokens: set[str] = field(default_factory=set)
    tls: tuple[Path, Path, Path] | None = None
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    logs: dict[tuple[str, str, str, bool], list[LogEntry]] = field(default_factory=dict)
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (verb, resource)
    owners: dict[tuple[str, str, str, str], dict[str, str]] = field(default_factory=dict)  # field -> manager
    schema_errors: list[str] = field(default_factory=list)
    served: list[dict[str, Any]] = field(default_factory=list)
    user: str = "alice"
    _rv: int = 100
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeCluster:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                cluster.handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            cert, key, ca = self.tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert), str(key))
            context.load_verify_locations(str(ca))
            context.verify_mode = ssl.CERT_OPTIONAL
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name=f"fake-k8s-{self.name}", daemon=True).start()
        self.add_namespace("default")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # --- arranging state (what controllers and kubelets would do) --------------------------------

    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as the API server would after a create (uid, resourceVersion, timestamps)."""
        with self._lock:
            res = self.res_of_kind(obj["kind"], obj["apiVersion"])
            meta = obj.setdefault("metadata", {})
            if res.namespaced:
                meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_text(-3600))
            if res.kind in GENERATION_KINDS:
                meta.setdefault("generation", 1)
            meta["resourceVersion"] = self.next_rv()
            self.objects[self.key(res, meta.get("namespace", ""), meta["name"])] = obj
            return obj

    def add_namespace(self, name: str) -> None:
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}})

    def get(self, kind: str, namespace: str, name: str, api_version: str = "") -> dict[str, Any]:
        res = self.res_of_kind(kind, api_version)
        return self.objects[self.key(res, namespace if res.namespaced else "", name)]

    def set_log(self, namespace: str, pod: str, container: str, lines: list[str], *, previous: bool = False) -> None:
        start = time.time() - len(lines)
        self.logs[(namespace, pod, container, previous)] = [
            LogEntry(dt.datetime.fromtimestamp(start + i, dt.UTC).isoformat().replace("+00:00", "Z"), line)
            for i, line in enumerate(lines)
        ]

    def res_of_kind(self, kind: str, api_version: str = "") -> Res:
        for res in RESOURCES:
            if res.kind == kind and (not api_version or res.api_version == api_version):
                return res
        raise KeyError(kind)

    @staticmethod
    def key(res: Res, namespace: str, name: str) -> tuple[str, str, str, str]:
        return (res.group, res.name, namespace if res.namespaced else "", name)

    def sent(self, method: str | None = None, path_part: str = "") -> list[Recorded]:
        """Requests the tools sent (discovery left out unless asked for)."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and path_part in r.path
            and r.path not in ("/api/v1", "/apis")
            and not re.fullmatch(r"/apis/[^/]+/[^/]+", r.path)
        ]

    # --- serving ---------------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        record = Recorded(
            h.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in h.headers.items()}, body
        )
        record.audit_id = str(uuid.uuid4())
        with self._lock:
            self.requests.append(record)
            try:
                if not self._authenticated(h, record):
                    code, payload, ctype = 401, status_body(401, "Unauthorized", "Unauthorized"), "application/json"
                else:
                    code, payload, ctype = self.route(record)
            except Exception as exc:  # a bug in the fake: shown to the test, never hidden
                code, payload, ctype = 500, status_body(500, "InternalError", f"fake: {exc!r}"), "application/json"
            if ctype == "application/json":
                self._check_schema(payload)
                data = json.dumps(payload).encode()
            else:
                data = payload if isinstance(payload, bytes) else str(payload).encode()
        record.status = code
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Audit-Id", record.audit_id)
        h.end_headers()
        h.wfile.write(data)

    def _authenticated(self, h: BaseHTTPRequestHandler, record: Recorded) -> bool:
        auth = record.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:] in self.tokens:
            return True
        if self.tls is not None and not auth:
            connection = h.connection
            if isinstance(connection, ssl.SSLSocket) and connection.getpeercert():
                return True
        return False

    def _check_schema(self, payload: Any) -> None:
        bodies = [payload]
        if isinstance(payload, dict) and isinstance(payload.get("items"), list):
            bodies += payload["items"]
        for body in bodies:
            if not isinstance(body, dict) or "kind" not in body:
                continue
            self.served.append(body)
            name = SCHEMA_OF.get(str(body.get("kind")))
            if name is None:
                continue
            try:
                validate(name, body)
            except jsonschema.ValidationError as exc:
                self.schema_errors.append(f"{body.get('kind')}: {exc.message} at {list(exc.absolute_path)}")

    def route(self, r: Recorded) -> tuple[int, Any, str]:
        segments = [s for s in r.path.split("/") if s]
        if segments == ["api"]:
            return (
                200,
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
                "application/json",
            )
        if segments == ["apis"]:
            return 200, self._groups(), "application/json"
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 3:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return (
                404,
                status_body(404, "NotFound", "the server could not find the requested resource"),
                "application/json",
            )
        served = [res for res in RESOURCES if res.group == group and res.version == version]
        if not served:
            return (
                404,
                status_body(404, "NotFound", "the server could not find the requested resource"),
                "application/json",
            )
        if not rest:
            return 200, self._resource_list(group, version, served), "application/json"
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        res = next((x for x in served if x.name == rest[0]), None)
        if res is None:
            return (
                404,
                status_body(404, "NotFound", "the server could not find the requested resource"),
                "application/json",
            )
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        verb = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PATCH": "patch",
            "PUT": "update",
            "DELETE": "delete",
        }[r.method]
        if (verb, res.name) in self.forbidden:
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            message = (
                f'{res.name} "{name or ""}" is forbidden: User "{self.user}" cannot {verb} resource "{res.name}" '
                f'in API group "{res.group}"{where}'
            )
            return (
                403,
                status_body(403, "Forbidden", message, {"name": name or "", "kind": res.name}),
                "application/json",
            )
        if name is None:
            if r.method == "GET":
                return self._list(res, namespace, r)
            if r.method == "POST":
                return self._create(res, namespace, r.json(), r)
        elif sub is None:
            if r.method == "GET":
                return self._get(res, namespace, name)
            if r.method == "PATCH":
                return self._patch(res, namespace, name, r)
            if r.method == "DELETE":
                return self._delete(res, namespace, name, r)
        elif sub == "scale" and res.kind in SCALE_KINDS:
            return self._scale(res, namespace, name, r)
        elif sub == "log" and res.kind == "Pod" and r.method == "GET":
            return self._log(namespace, name, r)
        return 405, status_body(405, "MethodNotAllowed", f"{r.method} is not supported here"), "application/json"

    def _groups(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for res in RESOURCES:
            if res.group and res.version not in groups.setdefault(res.group, []):
                groups[res.group].append(res.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]},
                }
                for g, versions in groups.items()
            ],
        }

    @staticmethod
    def _resource_list(group: str, version: str, served: list[Res]) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for res in served:
            resources.append(
                {
                    "name": res.name,
                    "singularName": res.kind.lower(),
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": VERBS,
                    **({"shortNames": list(res.short)} if res.short else {}),
                }
            )
            for sub in res.subresources:
                resources.append(
                    {
                        "name": f"{res.name}/{sub}",
                        "singularName": "",
                        "namespaced": res.namespaced,
                        "kind": res.kind,
                        "verbs": ["get"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _not_found(self, res: Res, name: str) -> tuple[int, Any, str]:
        return (
            404,
            status_body(
                404,
                "NotFound",
                f'{res.name}{"." + res.group if res.group else ""} "{name}" not found',
                {"name": name, "kind": res.name},
            ),
            "application/json",
        )

    def _list(self, res: Res, namespace: str, r: Recorded) -> tuple[int, Any, str]:
        items = [
            obj
            for (group, plural, ns, _), obj in sorted(self.objects.items())
            if group == res.group and plural == res.name and (not namespace or ns == namespace)
        ]
        labels = r.query.get("labelSelector", [""])[0]
        fields = r.query.get("fieldSelector", [""])[0]
        if labels:
            items = [o for o in items if label_match(o.get("metadata", {}).get("labels") or {}, labels)]
        if fields:
            try:
                items = [o for o in items if field_match(o, fields)]
            except ValueError:
                return (
                    400,
                    status_body(400, "BadRequest", f'unable to parse requirement: "{fields}"'),
                    "application/json",
                )
        start = 0
        if r.query.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(r.query["continue"][0]))["start"])
            except (ValueError, KeyError):
                return 400, status_body(400, "BadRequest", "continue key is not valid"), "application/json"
        limit = int(r.query.get("limit", ["0"])[0] or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if limit and start + limit < len(items):
            meta["continue"] = base64.b64encode(json.dumps({"start": start + limit, "rv": self._rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        listing: dict[str, Any] = {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": meta,
            "items": copy.deepcopy(page),
        }
        for item in listing["items"]:  # lists carry their items without kind/apiVersion, as the real server does
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return 200, listing, "application/json"

    def _get(self, res: Res, namespace: str, name: str) -> tuple[int, Any, str]:
        obj = self.objects.get(self.key(res, namespace, name))
        if obj is None:
            return self._not_found(res, name)
        return 200, copy.deepcopy(obj), "application/json"

    def _create(self, res: Res, namespace: str, obj: dict[str, Any], r: Recorded) -> tuple[int, Any, str]:
        name = obj["metadata"]["name"]
        if self.key(res, namespace, name) in self.objects:
            return 409, status_body(409, "AlreadyExists", f'{res.name} "{name}" already exists'), "application/json"
        if namespace:
            obj["metadata"]["namespace"] = namespace
        return 201, copy.deepcopy(self.put(obj)), "application/json"

    def _patch(self, res: Res, namespace: str, name: str, r: Recorded) -> tuple[int, Any, str]:
        key = self.key(res, namespace, name)
        content_type = r.headers.get("content-type", "")
        dry_run = r.query.get("dryRun") == ["All"]
        patch = r.json()
        current = self.objects.get(key)
        if content_type.startswith("application/apply-patch+yaml"):
            manager = r.query.get("fieldManager", [""])[0]
            if not manager:
                return 400, status_body(400, "BadRequest", "PATCH apply requires fieldManager"), "application/json"
            owners = dict(self.owners.get(key, {}))
            applied = {
                k: v
                for k, v in leaves(patch).items()
                if not k.startswith((".apiVersion", ".kind", ".metadata.name", ".metadata.namespace"))
            }
            if current is not None and r.query.get("force") != ["true"]:
                conflicts = [
                    path
                    for path, value in applied.items()
                    if owners.get(path, manager) != manager and leaves(current).get(path) != value
                ]
                if conflicts:
                    causes = [
                        {"reason": "FieldManagerConflict", "message": f'conflict with "{owners[p]}"', "field": p}
                        for p in conflicts
                    ]
                    message = f"Apply failed with {len(conflicts)} conflict(s): " + ", ".join(
                        f'conflict with "{owners[p]}": {p}' for p in conflicts
                    )
                    return (
                        409,
                        status_body(409, "Conflict", message, {"causes": causes, "name": name, "kind": res.name}),
                        "application/json",
                    )
            for path in applied:
                owners[path] = manager
            if current is None:
                new = copy.deepcopy(patch)
                if res.namespaced:
                    new["metadata"]["namespace"] = namespace
                if dry_run:
                    new["metadata"].setdefault("uid", str(uuid.uuid4()))
                    new["metadata"]["creationTimestamp"] = now_text()
                    if res.kind in GENERATION_KINDS:
                        new["metadata"]["generation"] = 1
                    return 201, new, "application/json"
                self.owners[key] = owners
                return 201, copy.deepcopy(self.put(new)), "application/json"
            new = merge(current, patch)
        else:
            if current is None:
                return self._not_found(res, name)
            new = merge(current, patch)
            owners = self.owners.get(key, {})
        return self._update(res, key, current, new, dry_run, owners)

    def _update(
        self,
        res: Res,
        key: tuple[str, str, str, str],
        current: dict[str, Any],
        new: dict[str, Any],
        dry_run: bool,
        owners: dict[str, str],
    ) -> tuple[int, Any, str]:
        if new == current:
            return 200, copy.deepcopy(current), "application/json"
        new = copy.deepcopy(new)
        if new.get("spec") != current.get("spec") and res.kind in GENERATION_KINDS:
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if dry_run:
            return 200, new, "application/json"
        new["metadata"]["resourceVersion"] = self.next_rv()
        self.objects[key] = new
        self.owners[key] = owners
        return 200, copy.deepcopy(new), "application/json"

    def _scale(self, res: Res, namespace: str, name: str, r: Recorded) -> tuple[int, Any, str]:
        key = self.key(res, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return self._not_found(res, name)
        if r.method == "PATCH":
            replicas = (r.json().get("spec") or {}).get("replicas")
            if not isinstance(replicas, int):
                return 422, status_body(422, "Invalid", "spec.replicas: Invalid value"), "application/json"
            _, obj, _ = self._update(
                res, key, obj, merge(obj, {"spec": {"replicas": replicas}}), False, self.owners.get(key, {})
            )
        elif r.method != "GET":
            return 405, status_body(405, "MethodNotAllowed", "scale: GET or PATCH"), "application/json"
        meta = obj["metadata"]
        selector = ",".join(
            f"{k}={v}"
            for k, v in sorted(((obj.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items())
        )
        scale = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
            "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0)), "selector": selector},
        }
        return 200, scale, "application/json"

    def _delete(self, res: Res, namespace: str, name: str, r: Recorded) -> tuple[int, Any, str]:
        key = self.key(res, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return self._not_found(res, name)
        options = r.json() if r.body else {}
        expected = (options.get("preconditions") or {}).get("uid")
        if expected and expected != obj["metadata"]["uid"]:
            message = (
                f"Precondition failed: UID in precondition: {expected}, UID in object meta: {obj['metadata']['uid']}"
            )
            return 409, status_body(409, "Conflict", message), "application/json"
        if r.query.get("dryRun") == ["All"] or options.get("dryRun") == ["All"]:
            return 200, copy.deepcopy(obj), "application/json"
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = now_text()
            obj["metadata"]["resourceVersion"] = self.next_rv()
            return 200, copy.deepcopy(obj), "application/json"
        del self.objects[key]
        return 200, copy.deepcopy(obj), "application/json"

    def _log(self, namespace: str, name: str, r: Recorded) -> tuple[int, Any, str]:
        pod = self.objects.get(self.key(RESOURCES[0], namespace, name))
        if pod is None:
            return self._not_found(RESOURCES[0], name)
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = r.query.get("container", [""])[0]
        if not container:
            if len(containers) != 1:
                message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                return 400, status_body(400, "BadRequest", message), "application/json"
            container = containers[0]
        previous = r.query.get("previous") == ["true"]
        entries = self.logs.get((namespace, name, container, previous))
        if entries is None:
            if previous:
                message = f'previous terminated container "{container}" in pod "{name}" not found'
                return 400, status_body(400, "BadRequest", message), "application/json"
            entries = []
        if r.query.get("sinceSeconds"):
            cutoff = time.time() - int(r.query["sinceSeconds"][0])
            entries = [
                e for e in entries if dt.datetime.fromisoformat(e.at.replace("Z", "+00:00")).timestamp() >= cutoff
            ]
        if r.query.get("tailLines"):
            entries = entries[-int(r.query["tailLines"][0]) :] if int(r.query["tailLines"][0]) else []
        stamped = r.query.get("timestamps") == ["true"]
        data = "".join(f"{e.at} {e.text}\n" if stamped else f"{e.text}\n" for e in entries).encode()
        if r.query.get("limitBytes"):
            data = data[: int(r.query["limitBytes"][0])]
        return 200, data, "text/plain"


_SCHEMAS: dict[str, Any] | None = None


def validate(name: str, body: Any) -> None:
    """Validate against the vendored v1.37 JSON schema (strict: unknown fields are errors)."""
    global _SCHEMAS
    if _SCHEMAS is None:
        _SCHEMAS = json.loads(SCHEMAS_PATH.read_text())
    schema = {"$defs": _SCHEMAS["$defs"], "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator(schema).validate(body)
