"""The Kubernetes backend: one API client per context, discovery, and the requests the tools make.

kubernetes_asyncio is imported here, lazily. Requests go through ``ApiClient.call_api`` with the raw
response kept (``_preload_content=False``): its ``Audit-Id`` header is read from that response, not
from the shared ``ApiClient.last_response`` another call may have replaced, and a 404 or 409 ``Status``
body is an error here, never an object. Messages name the context and the server, never what the
kubeconfig says about credentials: the library's own exceptions and log lines can quote a user entry
or an exec plugin's stderr, so none of their text is passed on and its logger is kept quiet.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from mcp_ledger.provenance import annotate
from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools.group import (
    GroupEnvironment,
    InvalidArguments,
    NotConfigured,
    TargetClients,
    ToolFailure,
    UpstreamError,
)
from mcp_ledger.tools.k8s import K8sSettings
from mcp_ledger.tools.k8s._config import ContextInfo, KubeConfig, config_paths, file_stamp, read_config

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

__all__ = [
    "ApiResource",
    "Cluster",
    "Conflict",
    "ContextSource",
    "K8sClients",
    "NotFound",
    "UnknownContext",
    "connect",
]

FIELD_MANAGER = "mcp-ledger"
DISCOVERY_TTL = 300.0
MAX_BODY = 8 * 1024 * 1024
VERSION_RE = re.compile(r"^v\d+((alpha|beta)\d+)?$")
# OpenTelemetry has k8s.<kind>.name / .uid for these kinds; every object also gets the generic keys.
OTEL_KINDS = frozenset(
    {"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Node", "Namespace"}
)


class UnknownContext(ToolFailure):
    """The call names a context the kubeconfig does not have, or one the server may not use."""


class NotFound(UpstreamError):
    """The API server has no such object."""


class Conflict(UpstreamError):
    """409: the object changed, exists already, or its fields belong to another manager."""


@dataclass(frozen=True)
class ApiResource:
    """One resource type as discovery lists it."""

    group: str
    version: str
    resource: str  # plural, the URL segment
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` (``pods`` for the core group), as kubectl names it."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.resource}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise UpstreamError(f"the API server answered {self.status} with a body that is not JSON") from None


@dataclass
class _Discovery:
    resources: list[ApiResource]
    served: dict[str, list[str]]  # group -> versions
    unavailable: dict[str, str]  # group/version -> why
    at: float


def _status_message(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if not isinstance(status, dict):
        text = body[:500].decode("utf-8", "replace").strip()
        return redact_text(text)[0], {}
    message = str(status.get("message") or status.get("reason") or "")
    if len(message) > 1000:
        message = message[:999] + "…"
    details: dict[str, Any] = status["details"] if isinstance(status.get("details"), dict) else {}
    return redact_text(message)[0], details


def _denied(patterns: tuple[str, ...], resource: ApiResource) -> bool:
    """``secrets`` (any group), ``deployments.apps``, ``apps/deployments``, ``rbac.authorization.k8s.io/*``."""
    names = {resource.resource, resource.singular, resource.kind.lower()}
    for raw in patterns:
        pattern = raw.strip().lower()
        if not pattern:
            continue
        if "/" in pattern:
            group, _, name = pattern.rpartition("/")
            group = "" if group in ("core", "v1") else group
            if group == resource.group and (name == "*" or name in names):
                return True
        elif "." in pattern:
            name, _, group = pattern.partition(".")
            if group == resource.group and name in names:
                return True
        elif pattern in names:
            return True
    return False


class Cluster:
    """One context's API client: requests with errors mapped for agents, discovery, span facts."""

    def __init__(self, info: ContextInfo, api: ApiClient, denied: tuple[str, ...], timeout: float) -> None:
        self.info = info
        self.api = api
        self.denied = denied
        self.timeout = timeout
        self._discovery: _Discovery | None = None
        self._discovery_lock = anyio.Lock()

    @property
    def context(self) -> str:
        return self.info.name

    @property
    def default_namespace(self) -> str:
        return self.info.namespace or "default"

    async def aclose(self) -> None:
        await self.api.close()

    def scope(self, namespace: str | None, *, namespaced: bool = True, everywhere: bool = False) -> str | None:
        """The call's namespace (the context's when the call names none; None for a cluster-scoped kind or
        all namespaces); the span names the cluster, its server and the namespace ("*": all of them)."""
        annotate(**{"k8s.cluster.name": self.info.cluster, "k8s.cluster.server": self.info.server})
        if not namespaced:
            return None
        if everywhere:
            annotate(**{"k8s.namespace.name": "*"})
            return None
        chosen = namespace or self.default_namespace
        annotate(**{"k8s.namespace.name": chosen})
        return chosen

    # --- requests -------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        what: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        record: bool = True,
        max_bytes: int = MAX_BODY,
        ok_statuses: tuple[int, ...] = (),
    ) -> Response:
        """One request; a status >= 300 (other than ``ok_statuses``) becomes a failure naming ``verb`` ``what``."""
        import aiohttp

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            raw = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            try:
                chunks: list[bytes] = []
                size = 0
                while size < max_bytes:
                    chunk = await raw.content.read(min(65536, max_bytes - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                response = Response(raw.status, b"".join(chunks), {k.lower(): v for k, v in raw.headers.items()})
            finally:
                raw.release()
        except TimeoutError:
            raise UpstreamError(
                f"the API server {self.info.server} (context {self.context}) did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise self._unreachable("TLS failed: " + type(exc).__name__ + _reason(exc)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(type(exc).__name__ + _reason(exc)) from None
        except ToolFailure:
            raise
        except Exception as exc:  # the library's config errors can quote kubeconfig entries: never their text
            from kubernetes_asyncio.config.config_exception import ConfigException

            if isinstance(exc, ConfigException):
                raise UpstreamError(
                    f"the credentials of context {self.context} could not be loaded (an exec plugin or token "
                    "file failed); run the plugin by hand or check the kubeconfig's user entry"
                ) from None
            raise
        if record:
            annotate(**{"http.response.status_code": response.status, "k8s.audit_id": response.headers.get("audit-id")})
        if response.status >= 300 and response.status not in ok_statuses:
            raise self._failure(response, verb, what)
        return response

    async def get_json(self, path: str, *, verb: str, what: str, **kwargs: Any) -> Any:
        return (await self.request("GET", path, verb=verb, what=what, **kwargs)).json()

    def _unreachable(self, reason: str) -> UpstreamError:
        return UpstreamError(
            f"cannot reach the API server {self.info.server} (context {self.context}): {redact_text(reason)[0]}. "
            "Check that the cluster is up and the kubeconfig's server URL, or pick another context."
        )

    def _failure(self, response: Response, verb: str, what: str) -> UpstreamError:
        message, details = _status_message(response.body)
        status = response.status
        if status == 401:
            return UpstreamError(
                f"the API server {self.info.server} rejected the credentials of context {self.context} "
                "(401 Unauthorized): renew them (a new token or login) or use another context"
            )
        if status == 403:
            return UpstreamError(
                f"forbidden (403): the identity of context {self.context} may not {verb} {what}. "
                f"The API server said: {message}"
            )
        if status == 404:
            return NotFound(f"{what} not found (context {self.context}): {message}")
        if status == 409:
            causes: list[Any] = details["causes"] if isinstance(details.get("causes"), list) else []
            managers = sorted(
                {m for c in causes if isinstance(c, dict) for m in re.findall(r'conflict with "([^"]+)"', str(c))}
            )
            fields = [str(c.get("field")) for c in causes if isinstance(c, dict) and c.get("field")][:20]
            if managers:
                return Conflict(
                    f"conflict (409) applying {what}: the field(s) {', '.join(fields) or '?'} are managed by "
                    f"{', '.join(managers)}. Leave them out of the manifest, or apply with force=true to take them "
                    "over."
                )
            return Conflict(f"conflict (409) on {what}: {message}. Read the object again and retry.")
        if status == 422:
            return UpstreamError(f"the API server refused {what} as invalid (422): {message}")
        return UpstreamError(f"the API server answered {status} to {verb} {what}: {message}")

    # --- discovery ------------------------------------------------------------------------------

    async def _discover(self, *, force: bool = False) -> _Discovery:
        async with self._discovery_lock:
            found = self._discovery
            if found is not None and not force and time.monotonic() - found.at < DISCOVERY_TTL:
                return found
            what = "API discovery"
            core = await self.get_json("/api/v1", verb="get", what=what, record=False)
            groups = await self.get_json("/apis", verb="get", what=what, record=False)
            resources = _parse_resources(core, "", "v1")
            served: dict[str, list[str]] = {"": ["v1"]}
            preferred: list[tuple[str, str]] = []
            for group in groups.get("groups") or []:
                name = str(group.get("name") or "")
                versions = [str(v.get("version")) for v in group.get("versions") or [] if v.get("version")]
                served[name] = versions
                choice = (group.get("preferredVersion") or {}).get("version") or (versions[0] if versions else None)
                if name and choice:
                    preferred.append((name, str(choice)))
            unavailable: dict[str, str] = {}
            by_group: dict[str, list[ApiResource]] = {}

            async def fetch(group: str, version: str) -> None:
                try:
                    listing = await self.get_json(f"/apis/{group}/{version}", verb="get", what=what, record=False)
                except UpstreamError as exc:
                    unavailable[f"{group}/{version}"] = str(exc)
                    return
                by_group[group] = _parse_resources(listing, group, version)

            async with anyio.create_task_group() as tasks:
                for group, version in preferred:
                    tasks.start_soon(fetch, group, version)
            for group, _ in preferred:  # in the server's order of groups: kubectl's priority
                resources.extend(by_group.get(group, []))
            self._discovery = _Discovery(resources, served, unavailable, time.monotonic())
            return self._discovery

    async def resolve(self, text: str) -> ApiResource:
        """``pods``, ``Pod``, ``po``, ``deployments.apps``, ``apps/v1/Deployment``, ``v1/Pod`` -> one resource type.

        Core resources win over same-named ones of other groups (``pods`` is never metrics.k8s.io's)."""
        text = text.strip()
        try:
            found = await self._find(text, await self._discover())
        except InvalidArguments:
            found = None
        if found is None:  # a CRD created since the last discovery
            found = await self._find(text, await self._discover(force=True))
        if found is None:
            discovery = await self._discover()
            raise InvalidArguments(self._unknown_kind(text, discovery))
        return self.allowed(found)

    def allowed(self, resource: ApiResource) -> ApiResource:
        """The resource, unless --k8s-denied-resources hides it (then a failure naming the setting)."""
        if _denied(self.denied, resource):
            raise ToolFailure(
                f"{resource.qualified} are hidden by --k8s-denied-resources on this server; ask its operator"
            )
        return resource

    async def _find(self, text: str, discovery: _Discovery) -> ApiResource | None:
        group: str | None = None
        version: str | None = None
        name = text
        parts = text.split("/")
        if len(parts) == 3:
            group, version, name = parts
        elif len(parts) == 2:
            if VERSION_RE.match(parts[0]):
                group, version, name = "", parts[0], parts[1]
            else:
                group, name = parts
        elif "." in text:
            name, _, rest = text.partition(".")
            first, _, after = rest.partition(".")
            if VERSION_RE.match(first) and after:
                version, group = first, after
            else:
                group = rest
        if version is not None and group is not None:
            pool = [r for r in discovery.resources if r.group == group and r.version == version]
            if not pool:
                pool = await self._group_version(group, version, discovery)
        else:
            pool = [r for r in discovery.resources if group is None or r.group == group]
        lowered = name.lower()
        for resource in pool:
            if lowered in (resource.resource, resource.singular, resource.kind.lower(), *resource.short_names):
                return resource
        return None

    async def _group_version(self, group: str, version: str, discovery: _Discovery) -> list[ApiResource]:
        """A version other than the preferred one; InvalidArguments when the cluster does not serve it."""
        if version not in discovery.served.get(group, []):
            served = discovery.served.get(group)
            if served is None:
                raise InvalidArguments(
                    f"the API group {group or 'core'} is not served by the cluster of context {self.context} "
                    "(is its CustomResourceDefinition installed?)"
                )
            raise InvalidArguments(
                f"the API {group}/{version} is not served by the cluster of context {self.context}; "
                f"served versions of {group}: {', '.join(served)}"
            )
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = await self.get_json(base, verb="get", what=f"the API {group}/{version}", record=False)
        return _parse_resources(listing, group, version)

    def _unknown_kind(self, text: str, discovery: _Discovery) -> str:
        names: set[str] = set()
        for r in discovery.resources:
            names.update((r.resource, r.kind, r.qualified, *r.short_names))
        close = difflib.get_close_matches(text, sorted(names), n=5, cutoff=0.6)
        close += [n for n in difflib.get_close_matches(text.lower(), sorted(names), n=5, cutoff=0.6) if n not in close]
        message = f"unknown kind {text!r} in the cluster of context {self.context}"
        if close:
            message += f"; closest: {', '.join(close[:5])}"
        if discovery.unavailable:
            message += f"; APIs not available now: {', '.join(sorted(discovery.unavailable)[:10])}"
        return message

    async def kind_resource(self, api_version: str, kind: str) -> ApiResource:
        """The resource of a manifest's apiVersion and kind."""
        group, _, version = api_version.rpartition("/")
        return await self.resolve(f"{group}/{version}/{kind}")


def _parse_resources(listing: Any, group: str, version: str) -> list[ApiResource]:
    found = []
    for item in (listing or {}).get("resources") or []:
        name = str(item.get("name") or "")
        if not name or "/" in name:  # subresources (pods/log, deployments/scale)
            continue
        found.append(
            ApiResource(
                group=group,
                version=version,
                resource=name,
                kind=str(item.get("kind") or ""),
                namespaced=bool(item.get("namespaced")),
                verbs=tuple(item.get("verbs") or ()),
                short_names=tuple(item.get("shortNames") or ()),
                singular=str(item.get("singularName") or "") or str(item.get("kind") or "").lower(),
            )
        )
    return found


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f" ({text[:300]})" if text else ""


def annotate_object(obj: Any, *, suffix: str = "") -> None:
    """The span names the object: kind, name, uid, resourceVersion, generation (``suffix``: _before/_after)."""
    if not isinstance(obj, dict):
        return
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    kind = str(obj.get("kind") or "")
    facts: dict[str, Any] = {}
    if not suffix:
        facts["k8s.object.kind"] = kind
        facts["k8s.object.name"] = meta.get("name")
        facts["k8s.object.uid"] = meta.get("uid")
        if kind in OTEL_KINDS:
            facts[f"k8s.{kind.lower()}.name"] = meta.get("name")
            facts[f"k8s.{kind.lower()}.uid"] = meta.get("uid")
    facts[f"k8s.object.resource_version{suffix}"] = meta.get("resourceVersion")
    if meta.get("generation") is not None:
        facts[f"k8s.object.generation{suffix}"] = meta.get("generation")
    annotate(**facts)


class ContextSource:
    """The kubeconfig's contexts (re-read when a file changes) and a client for one of them."""

    def __init__(self, settings: K8sSettings, environ: dict[str, str], home: Path) -> None:
        self.settings = settings
        self.environ = environ
        self.paths, self.chosen_by = config_paths(settings.kubeconfig, environ, home)
        self._stamp: tuple[Any, ...] | None = None
        self._config: KubeConfig | None = None
        self.version = 0  # counts the times the files were (re-)read
        self._temp = tempfile.mkdtemp(prefix="mcp-ledger-k8s-")  # client keys the library writes to files

    def config(self) -> KubeConfig:
        stamp = file_stamp(self.paths)
        if self._config is None or stamp != self._stamp:
            self._config = read_config(self.paths, self.chosen_by, self.environ)
            self._stamp = stamp
            self.version += 1
        return self._config

    def allowed(self, config: KubeConfig) -> list[str]:
        names = sorted(config.contexts)
        return [n for n in names if n in self.settings.contexts] if self.settings.contexts else names

    async def default_target(self) -> str:
        config = self.config()
        name = self.settings.context or config.current
        if not name:
            raise NotConfigured(f"--k8s-context (the kubeconfig {config.source} has no current-context)")
        return name

    async def open(self, target: str) -> Cluster:
        config = self.config()
        allowed = self.allowed(config)
        if target not in allowed:
            raise UnknownContext(
                f"unknown context {target!r}; the contexts this server may use: {', '.join(allowed) or 'none'}"
            )
        info = config.contexts[target]
        from kubernetes_asyncio.client import ApiClient, Configuration

        configuration = type.__call__(Configuration)  # not a copy of the library's process-wide default
        try:
            if config.in_cluster:
                from kubernetes_asyncio.config.incluster_config import load_incluster_config

                from mcp_ledger.tools.k8s import _config

                load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration,
                    token_filename=str(_config.SERVICE_ACCOUNT / "token"),
                    cert_filename=str(_config.SERVICE_ACCOUNT / "ca.crt"),
                    environ=self.environ,
                )
            else:
                await self._load(config, target, configuration)
        except ToolFailure:
            raise
        except Exception:  # ConfigException and friends quote kubeconfig entries: never their text
            raise NotConfigured(
                f"usable credentials for context {target} in {config.source}: its cluster or user entry could not "
                "be loaded (a missing file, a malformed entry or a failing exec plugin)"
            ) from None
        api = ApiClient(configuration)
        api.user_agent = "mcp-ledger"
        return Cluster(info, api, tuple(self.settings.denied_resources), self.settings.timeout)

    async def _load(self, config: KubeConfig, target: str, configuration: Any) -> None:
        from kubernetes_asyncio.config.kube_config import ConfigNode, KubeConfigLoader

        tree = {
            kind: [ConfigNode(f"{path}: {kind}[{entry['name']}]", entry, str(path)) for entry, path in entries]
            for kind, entries in config.raw.items()
        }
        tree["current-context"] = target  # type: ignore[assignment]
        loader = KubeConfigLoader(
            ConfigNode("kubeconfig", tree), active_context=target, config_base_path=None, temp_file_path=self._temp
        )
        await loader.load_and_set(configuration)
        if loader._user is not None and "exec" in loader._user:

            async def refresh(conf: Any) -> None:
                # Run the plugin again only once the credential it gave has expired.
                if hasattr(loader, "exec_plugin_expiry"):
                    await loader.load_from_exec_plugin()
                    conf.api_key["BearerToken"] = loader.token

            configuration.refresh_api_key_hook = refresh

    async def close(self, client: Cluster) -> None:
        await client.aclose()


class K8sClients(TargetClients[Cluster]):
    """One :class:`Cluster` per context; all are retired when a kubeconfig file changes."""

    source: ContextSource

    def __init__(self, source: ContextSource) -> None:
        super().__init__(source)
        self._version = source.version  # the kubeconfig the open clients were made from

    @asynccontextmanager
    async def lease(self, target: str | None) -> AsyncIterator[tuple[str, Cluster]]:
        self.source.config()  # read again if a file changed
        if self.source.version != self._version:
            self._version = self.source.version
            await self.reload()
        async with super().lease(target) as held:
            yield held


async def connect(environment: GroupEnvironment[K8sSettings]) -> K8sClients:
    # The library logs response bodies at DEBUG and an exec plugin's stderr at ERROR: neither may reach stderr.
    logging.getLogger("kubernetes_asyncio").setLevel(logging.CRITICAL + 1)
    source = ContextSource(environment.settings, dict(os.environ), Path.home())
    source.config()  # a missing kubeconfig is reported by the first call, in its span
    return K8sClients(source)
