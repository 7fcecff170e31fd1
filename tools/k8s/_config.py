"""Which clusters exist: the kubeconfig files merged the way kubectl merges them, or the pod's service account.

kubectl's rules: ``KUBECONFIG`` lists files separated by ``:``; the first file that names a cluster,
context or user wins, and so does the first file that sets ``current-context``. Paths inside a file are
relative to that file. Nothing read here is ever put into a message as it was read: a kubeconfig holds
tokens and keys, and YAML errors quote the offending line, so errors name the file and line only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_ledger.provenance.redaction import redact_text
from mcp_ledger.tools.group import NotConfigured

__all__ = ["IN_CLUSTER", "ContextInfo", "KubeConfig", "config_paths", "file_stamp", "read_config"]

IN_CLUSTER = "in-cluster"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ContextInfo:
    """A context as agents may see it: no user section, no credential."""

    name: str
    cluster: str
    server: str
    namespace: str | None


@dataclass(frozen=True)
class KubeConfig:
    """The merged kubeconfig: contexts, the current one, and the raw entries (with their file) for the loader."""

    contexts: dict[str, ContextInfo]
    current: str | None
    source: str  # what it was read from, for messages
    raw: dict[str, list[tuple[dict[str, Any], Path]]] = field(default_factory=dict, repr=False)
    in_cluster: bool = False


def config_paths(configured: str | None, environ: Mapping[str, str], home: Path) -> tuple[list[Path], str]:
    """The kubeconfig files to read, and how they were chosen (as kubectl chooses them)."""
    if configured:
        return [Path(p).expanduser() for p in configured.split(os.pathsep) if p], "--k8s-kubeconfig"
    if environ.get("KUBECONFIG"):
        return [Path(p).expanduser() for p in environ["KUBECONFIG"].split(os.pathsep) if p], "KUBECONFIG"
    return [home / ".kube" / "config"], "~/.kube/config"


def file_stamp(paths: list[Path]) -> tuple[tuple[str, int, int] | None, ...]:
    """What changes when a kubeconfig file is written, replaced or removed."""
    stamps: list[tuple[str, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(stamps)


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotConfigured(f"a readable kubeconfig: {path} cannot be read ({exc.strerror})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise NotConfigured(f"a valid kubeconfig: {path} is not valid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise NotConfigured(f"a valid kubeconfig: {path} is not a mapping")
    return loaded


def read_config(paths: list[Path], source: str, environ: Mapping[str, str]) -> KubeConfig:
    """Merge the files that exist; with none, the in-cluster service account; else NotConfigured."""
    existing = [p for p in paths if p.is_file()]
    if not existing:
        if environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").is_file():
            return _in_cluster(environ)
        shown = ":".join(str(p) for p in paths)
        raise NotConfigured(f"--k8s-kubeconfig or KUBECONFIG (no kubeconfig at {shown}, from {source})")
    raw: dict[str, list[tuple[dict[str, Any], Path]]] = {"clusters": [], "contexts": [], "users": []}
    seen: dict[str, set[str]] = {kind: set() for kind in raw}
    current: str | None = None
    for path in existing:
        loaded = _load_yaml(path)
        for kind in raw:
            entries = loaded.get(kind) or []
            if not isinstance(entries, list):
                raise NotConfigured(f"a valid kubeconfig: {kind} in {path} is not a list")
            for entry in entries:
                name = entry.get("name") if isinstance(entry, dict) else None
                if not isinstance(name, str) or not isinstance(entry.get(kind[:-1]), dict):
                    raise NotConfigured(f"a valid kubeconfig: an entry of {kind} in {path} lacks its name or body")
                if name not in seen[kind]:
                    seen[kind].add(name)
                    raw[kind].append((entry, path))
        if current is None and isinstance(loaded.get("current-context"), str) and loaded["current-context"]:
            current = loaded["current-context"]
    clusters = {entry["name"]: entry["cluster"] for entry, _ in raw["clusters"]}
    contexts: dict[str, ContextInfo] = {}
    for entry, _ in raw["contexts"]:
        body = entry["context"]
        cluster_name = str(body.get("cluster") or "")
        server = str(clusters.get(cluster_name, {}).get("server") or "")
        namespace = body.get("namespace")
        contexts[entry["name"]] = ContextInfo(
            name=entry["name"],
            cluster=cluster_name,
            server=redact_text(server)[0],  # a server URL may carry user:password
            namespace=namespace if isinstance(namespace, str) and namespace else None,
        )
    return KubeConfig(contexts, current, ":".join(str(p) for p in existing), raw)


def _in_cluster(environ: Mapping[str, str]) -> KubeConfig:
    host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    try:
        namespace: str | None = (SERVICE_ACCOUNT / "namespace").read_text().strip() or None
    except OSError:
        namespace = None
    info = ContextInfo(IN_CLUSTER, IN_CLUSTER, f"https://{host}:{port}", namespace)
    return KubeConfig({IN_CLUSTER: info}, IN_CLUSTER, "the pod's service account", in_cluster=True)
