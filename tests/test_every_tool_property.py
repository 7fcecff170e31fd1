"""Every tool the server lists, called with generated arguments through an in-process MCP client.

Arguments follow each tool's input schema as listed, with wrong types, unknown and missing keys mixed
in, and strings carrying planted secrets. Every call must get exactly one answer (a result or a
JSON-RPC error), add exactly one span, and leave no planted secret in the ledger. Backends are not
reachable (a Docker socket that does not exist, GitHub and the Hugging Face hub on closed loopback
ports): their errors are answers like any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_ledger import provenance
from mcp_ledger.server.app import LedgerApp, create_app
from mcp_ledger.server.gating import opt_in_tools
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools import group_headers, load_groups
from mcp_ledger.tools.docker import DockerSettings
from mcp_ledger.tools.github import GitHubSettings
from mcp_ledger.tools.hf import HfSettings
from mcp_ledger.tools.k8s import K8sSettings
from tests.conftest import (
    ALL_SECRETS,
    AWS,
    BASIC,
    BEARER_TOKEN,
    GH,
    GH_PAT,
    GHO,
    GHS,
    HF,
    JWT,
    KEYED_TOKEN,
    PASSWORD,
    PEM,
)

PLANTED = [GH, GH_PAT, GHO, GHS, HF, AWS, JWT, f"Bearer {BEARER_TOKEN}", BASIC, PEM]

planted_text = st.builds(
    lambda before, secret, after: f"{before} {secret} {after}",
    st.text(max_size=8),
    st.sampled_from(PLANTED),
    st.text(max_size=8),
)
adversarial_text = st.one_of(
    st.text(max_size=24),
    planted_text,
    st.sampled_from(["", " ", "\x00", "..", "../../etc/passwd", "-1", "9" * 40, "\u202e", "a" * 5000]),
)
# Secrets that only their key gives away go under secret-shaped keys.
keyed_secrets = st.sampled_from(
    [{"password": PASSWORD}, {"api_token": KEYED_TOKEN}, {"authorization": f"Bearer {BEARER_TOKEN}"}]
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False), adversarial_text
)
any_json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(adversarial_text, inner, max_size=3),
    max_leaves=6,
)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root.get("$defs", {}).get(ref, {})
    return schema


def value_for(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema allows (at and beyond its bounds), mixed with anything JSON at all."""
    schema = _resolve(schema, root)
    if depth > 3:
        return json_leaf
    options: list[st.SearchStrategy[Any]] = []
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        options.append(value_for(alternative, root, depth + 1))
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        options.append(st.just(schema["const"]))
    kind = schema.get("type")
    if kind == "string":
        options.append(adversarial_text)
    elif kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
        options.append(st.integers(low - 1, high + 1))
    elif kind == "number":
        options.append(st.floats(allow_nan=False, allow_infinity=False))
    elif kind == "boolean":
        options.append(st.booleans())
    elif kind == "array":
        options.append(st.lists(value_for(schema.get("items", {}), root, depth + 1), max_size=3))
    elif kind == "object" and "properties" in schema:
        options.append(arguments_for(schema, root, depth + 1))
    elif kind == "object":
        options.append(st.dictionaries(adversarial_text, adversarial_text, max_size=3))
        options.append(keyed_secrets)
    options.append(any_json)  # the wrong type now and then
    return st.one_of(options)


def arguments_for(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Each declared property present or not (so required ones go missing too), plus unknown keys."""
    properties = {name: value_for(sub, root, depth) for name, sub in schema.get("properties", {}).items()}
    chosen = st.fixed_dictionaries({}, optional=properties) if properties else st.just({})
    extra = st.one_of(st.just({}), keyed_secrets, st.dictionaries(adversarial_text, any_json, max_size=2))
    return st.builds(lambda a, b: {**b, **a}, chosen, extra)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerApp]:
    root = tmp_path_factory.mktemp("every-tool")
    saved = {name: os.environ.get(name) for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL")}
    os.environ.update({"GITHUB_TOKEN": "not-a-real-token", "GITHUB_API_URL": "http://127.0.0.1:9"})
    os.environ.pop("GH_TOKEN", None)
    groups: dict[str, Any] = {header.name: header.settings() for header in group_headers()}
    groups["docker"] = DockerSettings(host=f"unix://{root}/no-engine.sock", allow_binds=[str(root)])
    groups["github"] = GitHubSettings(timeout=5, max_rate_limit_wait=0)
    # Never a developer's own cluster: a kubeconfig whose only cluster is a closed loopback port.
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: not-a-real-token}}]\n"
    )
    groups["k8s"] = K8sSettings(kubeconfig=str(kubeconfig), timeout=5)
    groups["hf"] = HfSettings(endpoint="http://127.0.0.1:9", timeout=5)  # the hub on a closed loopback port
    every = ServerSettings(
        ledger_dir=root / "ledger", allow_destructive=True, call_timeout=30, tools=opt_in_tools(load_groups())
    )
    ledger_app = create_app(every, groups)
    try:
        yield ledger_app
    finally:
        ledger_app.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _listed_tools(app: LedgerApp) -> list[Any]:
    async def listing() -> list[Any]:
        async with Client(app.server) as client:
            return list((await client.list_tools()).tools)

    return anyio.run(listing)


def _span_count(ledger: Path) -> int:
    return sum(1 for _ in provenance.Ledger(ledger).scan()) if ledger.exists() else 0


def _call(app: LedgerApp, name: str, arguments: dict[str, Any], mode: Literal["auto", "legacy"]) -> str:
    """One call; returns what answered it ("result" or "error"): any other outcome fails the test."""

    async def call() -> str:
        async with Client(app.server, mode=mode) as client:
            try:
                result = await client.call_tool(name, arguments)
            except MCPError:
                return "error"
            assert result.content is not None
            return "result"

    return anyio.run(call)


def test_every_tool_answers_generated_arguments_once_with_one_span_and_no_secret(app: LedgerApp) -> None:
    tools = sorted(_listed_tools(app), key=lambda t: t.name)
    assert {"prov_query", "docker_container_run", "github_run_get", "k8s_resource_delete"} <= {
        t.name for t in tools
    }  # every group
    ledger = app.ledger_dir

    def calls_of(name: str, arguments: st.SearchStrategy[dict[str, Any]]) -> None:
        # No shrinking: each example is a client connection, and a failure's first example says enough.
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        @given(arguments=arguments, mode=st.sampled_from(["auto", "legacy"]))
        def one_call(arguments: dict[str, Any], mode: Literal["auto", "legacy"]) -> None:
            before = _span_count(ledger)
            _call(app, name, arguments, mode)
            spans = list(provenance.Ledger(ledger).scan())
            assert len(spans) == before + 1, f"{name}: {len(spans) - before} spans for one call"
            assert spans[-1]["name"].startswith("tools/call")
            recorded = orjson.dumps(spans[-1]).decode()
            leaked = [secret[:8] for secret in ALL_SECRETS if secret in recorded]
            assert not leaked, f"{name}: planted secrets reached the ledger: {leaked}"

        one_call()

    for tool in tools:
        calls_of(tool.name, arguments_for(tool.input_schema, tool.input_schema))
    calls_of(f"tool_{GH}", arguments_for({}, {}))  # a name the server does not serve
    stored = b"".join(path.read_bytes() for path in sorted(ledger.iterdir()) if path.is_file())
    assert not [secret[:8] for secret in ALL_SECRETS if secret.encode() in stored]
    assert provenance.Ledger(ledger).verify().ok


def test_a_lone_surrogate_from_an_in_process_caller_still_gets_its_span(app: LedgerApp) -> None:
    # The SDK's client cannot send one as JSON (the wire cases are in tests/server/test_malformed_stdio.py),
    # but an in-process caller hands the string over as it is; the ledger line must still be UTF-8.
    before = _span_count(app.ledger_dir)
    assert _call(app, "prov_query", {"tool": "cut \ud83d", "k\udead": 1}, "auto") == "result"
    spans = list(provenance.Ledger(app.ledger_dir).scan())
    assert len(spans) == before + 1 and '"tool":"cut \ufffd"' in spans[-1]["input"]["preview"]
