"""Two loopback clusters behind one kubeconfig, and a server whose k8s tools use it.

``prod`` takes a bearer token (and the token an exec plugin prints); ``staging`` is HTTPS and takes a
client certificate. The token, the client key and the exec plugin's environment are canaries: plain
values no redaction rule would recognise, so finding none of them anywhere proves they never got there.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
import yaml
from mcp import Client
from mcp_types import CallToolResult

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.k8s import K8sSettings
from tests.k8s.fake import FakeCluster

TOKEN = "plainTokenCanary7f3a9c21"
EXEC_TOKEN = "execIssuedCanary55e1b0"
EXEC_ENV_SECRET = "execEnvCanary9d8c7b64"
PROD_NAMESPACE = "shop"


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes

    @property
    def key_canaries(self) -> list[str]:
        """Pieces of the client key as they could leak: base64 of the PEM (kubeconfig data) and PEM lines."""
        lines = [line for line in self.client_key_pem.decode().splitlines() if "-----" not in line]
        return [base64.b64encode(self.client_key_pem).decode()[:40], lines[1], lines[-2]]


def _make_certs(root: Path) -> Certs:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test-ca"))
        .issuer_name(name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(cn: str, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), pem_key(key)

    server_cert, server_key = issue("127.0.0.1", True)
    client_cert, client_key = issue("staging-admin", False)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (root / "ca.pem").write_bytes(ca_pem)
    (root / "server.pem").write_bytes(server_cert)
    (root / "server-key.pem").write_bytes(server_key)
    return Certs(root / "ca.pem", root / "server.pem", root / "server-key.pem", ca_pem, client_cert, client_key)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return _make_certs(tmp_path_factory.mktemp("k8s-certs"))


@dataclass
class Clusters:
    prod: FakeCluster
    staging: FakeCluster
    kubeconfig: Path
    certs: Certs

    @property
    def canaries(self) -> list[str]:
        return [TOKEN, EXEC_TOKEN, EXEC_ENV_SECRET, *self.certs.key_canaries]


EXEC_PLUGIN = """
import json, os, sys
if os.environ.get("EXEC_SECRET") != sys.argv[1]:
    sys.exit(3)
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": sys.argv[2]}}))
"""


def write_kubeconfig(path: Path, prod: FakeCluster, staging: FakeCluster, certs: Certs) -> None:
    plugin = path.parent / "exec_plugin.py"
    plugin.write_text(EXEC_PLUGIN)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "prod",
        "clusters": [
            {"name": "prod-cluster", "cluster": {"server": prod.url}},
            {
                "name": "staging-cluster",
                "cluster": {"server": staging.url, "certificate-authority-data": b64(certs.ca_pem)},
            },
        ],
        "contexts": [
            {"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-admin", "namespace": PROD_NAMESPACE}},
            {"name": "staging", "context": {"cluster": "staging-cluster", "user": "staging-admin"}},
            {"name": "prod-exec", "context": {"cluster": "prod-cluster", "user": "exec-user"}},
        ],
        "users": [
            {"name": "prod-admin", "user": {"token": TOKEN}},
            {
                "name": "staging-admin",
                "user": {
                    "client-certificate-data": b64(certs.client_cert_pem),
                    "client-key-data": b64(certs.client_key_pem),
                },
            },
            {
                "name": "exec-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": sys.executable,
                        "args": [str(plugin), EXEC_ENV_SECRET, EXEC_TOKEN],
                        "env": [{"name": "EXEC_SECRET", "value": EXEC_ENV_SECRET}],
                        "interactiveMode": "Never",
                    }
                },
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))


@pytest.fixture
def clusters(certs: Certs, tmp_path: Path) -> Iterator[Clusters]:
    prod = FakeCluster("prod", tokens={TOKEN, EXEC_TOKEN}).start()
    staging = FakeCluster("staging", tls=(certs.server_cert, certs.server_key, certs.ca)).start()
    prod.add_namespace(PROD_NAMESPACE)
    kubeconfig = tmp_path / "kube" / "config"
    kubeconfig.parent.mkdir()
    write_kubeconfig(kubeconfig, prod, staging, certs)
    try:
        yield Clusters(prod, staging, kubeconfig, certs)
    finally:
        prod.stop()
        staging.stop()
    for cluster in (prod, staging):
        assert not cluster.schema_errors, cluster.schema_errors
        assert not model_errors(cluster.served), model_errors(cluster.served)


def model_errors(bodies: list[dict[str, Any]]) -> list[str]:
    """Parse every object the fake served into kubernetes_asyncio's model types (V1Pod, V1DeploymentList, …)."""
    from kubernetes_asyncio.client import ApiClient

    async def parse() -> list[str]:
        errors = []
        async with ApiClient() as api:
            for body in bodies:
                version = str(body.get("apiVersion", "")).rpartition("/")[2].capitalize()
                model = f"{version}{body.get('kind')}"
                if not hasattr(__import__("kubernetes_asyncio.client", fromlist=["models"]).models, model):
                    continue  # a custom resource, or a kind the client has no model of

                class Raw:
                    data = json.dumps(body)

                try:
                    api.deserialize(Raw(), model)
                except (ValueError, TypeError) as exc:
                    errors.append(f"{model}: {exc}")
        return errors

    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # whatever loop the caller is in
        return thread.submit(anyio.run, parse).result()


@pytest.fixture
def app(clusters: Clusters, tmp_path: Path) -> Iterator[LedgerApp]:
    ledger_app = create_app(
        ServerSettings(ledger_dir=tmp_path / "ledger", allow_destructive=True),
        {"k8s": K8sSettings(kubeconfig=str(clusters.kubeconfig))},
    )
    try:
        yield ledger_app
    finally:
        ledger_app.close()


def result_text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


class Caller:
    """Calls tools through a real in-process MCP client (a fresh connection per call)."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app

    async def call(
        self, tool: str, arguments: dict[str, Any], *, mode: Literal["auto", "legacy"] = "auto"
    ) -> CallToolResult:
        async with Client(self.app.server, mode=mode) as client:
            return await client.call_tool(tool, arguments)

    async def ok(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        result = await self.call(tool, arguments, **kwargs)
        assert not result.is_error, result_text(result)
        assert isinstance(result.structured_content, dict)
        return dict(result.structured_content)

    async def error(self, tool: str, arguments: dict[str, Any], **kwargs: Any) -> str:
        result = await self.call(tool, arguments, **kwargs)
        assert result.is_error, f"{tool} succeeded: {result.structured_content}"
        return result_text(result)


@pytest.fixture
def client(app: LedgerApp) -> Caller:
    return Caller(app)


def spans(app: LedgerApp, tool: str | None = None) -> list[dict[str, Any]]:
    found = [s for s in provenance.Ledger(app.ledger_dir).scan() if s.get("type") == "span"]
    return [s for s in found if tool is None or s["name"] == f"tools/call {tool}"]


def last_span(app: LedgerApp, tool: str) -> dict[str, Any]:
    found = spans(app, tool)
    assert found, f"no span for {tool}"
    return found[-1]


def ledger_text(app: LedgerApp) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(app.ledger_dir.rglob("*")) if p.is_file())


# --- objects as a real cluster holds them (status written by the test, as a controller would) ----------


def pod(
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    containers: tuple[str, ...] = ("app",),
    ready: bool = True,
    waiting: str | None = None,
    restarts: int = 0,
    last_exit: tuple[int, str] | None = None,
    node: str = "node-1",
    phase: str = "Running",
) -> dict[str, Any]:
    started = "2026-12-03T07:00:00Z"
    statuses = []
    for c in containers:
        status: dict[str, Any] = {
            "name": c,
            "image": "registry.local/shop/web:1.2",
            "imageID": "registry.local/shop/web@sha256:" + "ab" * 32,
            "ready": ready,
            "restartCount": restarts,
            "started": ready,
            "state": {"waiting": {"reason": waiting, "message": f"back-off restarting failed container {c}"}}
            if waiting
            else {"running": {"startedAt": started}},
        }
        if last_exit:
            status["lastState"] = {
                "terminated": {
                    "exitCode": last_exit[0],
                    "reason": last_exit[1],
                    "startedAt": started,
                    "finishedAt": "2026-12-03T07:05:00Z",
                }
            }
        if not ready or waiting:
            status["containerID"] = "containerd://" + "cd" * 32
        statuses.append(status)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "containers": [{"name": c, "image": "registry.local/shop/web:1.2"} for c in containers],
            "nodeName": node,
        },
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
            "startTime": started,
        },
    }


def deployment(
    name: str, namespace: str, *, replicas: int = 3, ready: int = 3, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    selector = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"deployment.kubernetes.io/revision": "4"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "app", "image": "registry.local/shop/web:1.2"}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready == replicas else "False",
                    "reason": "MinimumReplicasAvailable",
                },
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    }


def event(
    name: str, namespace: str, *, kind: str, obj: str, reason: str, message: str, type_: str = "Warning", at: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": kind, "name": obj, "namespace": namespace, "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 3,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "source": {"component": "kubelet", "host": "node-1"},
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    }
