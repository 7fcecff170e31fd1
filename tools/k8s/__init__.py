"""k8s: Kubernetes clusters through kubeconfig contexts — resources of any kind, pod logs, events, a workload
diagnosis in one call, server-side apply, scale, rollout restart and delete.

Clusters come from ``--k8s-kubeconfig``, else ``KUBECONFIG`` (files merged as kubectl merges them), else
``~/.kube/config``, else the pod's service account; the file is read again when it changes. Every tool
takes an optional ``context``. Every span names the context, the cluster's server, the namespace, each
object's kind, name, uid and resourceVersion, and the API server's ``Audit-Id`` for each request.
Credentials (tokens, client keys, exec-plugin environments) never reach a result, an error or the ledger;
a Secret shows its keys and sizes, never its values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from mcp_ledger.tools.group import GroupSettings, ToolGroup

if TYPE_CHECKING:
    from mcp_ledger.tools.k8s._backend import K8sClients

__all__ = ["SETTINGS", "K8sSettings", "register"]


class K8sSettings(GroupSettings):
    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig file(s), colon-separated; default KUBECONFIG, then ~/.kube/config, "
        "then the in-cluster service account",
    )
    context: str | None = Field(default=None, description="default context; default: the kubeconfig's current-context")
    contexts: list[str] = Field(
        default_factory=list, description="the only contexts the tools may use (default: every context)"
    )
    denied_resources: list[str] = Field(
        default_factory=list,
        description="resources the tools never touch: secrets, deployments.apps, rbac.authorization.k8s.io/*",
    )
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per API request")


SETTINGS = K8sSettings


def register() -> ToolGroup[K8sClients]:
    # The tool modules (models and functions) load here, on first use, not when settings are read.
    from mcp_ledger.tools.k8s import _backend, pods, resources, workloads

    group = ToolGroup(
        "k8s",
        "Kubernetes: resources, pod logs, events, workload diagnosis, apply, scale, restart, delete",
        settings=K8sSettings,
        connect=_backend.connect,
        requires=("kubernetes_asyncio",),
    )
    for module in (resources, pods, workloads):
        group.add_module(module)
    return group
