"""The MCP TypeScript SDK's own client (tests/auth/ts_client, installed by `make pytest` with npm ci)
against a bearer-token server: no token and a wrong token are refused, a read-only caller sees and
calls what its policy allows, and its spans name it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mcp_ledger import provenance
from tests.auth.conftest import ALICE, CAROL, READ_TOOLS, READER, WRONG, assert_nothing_holds, serve, write_tokens

CLIENT = Path(__file__).parent / "ts_client"


def _ts_client(url: str, token: str | None, calls: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH (Debian: apt-get install nodejs npm)"
    assert (CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "the TypeScript SDK is not installed: make pytest runs npm ci in tests/auth/ts_client"
    )
    env = {key: value for key, value in os.environ.items() if key != "MCP_TOKEN"}
    if token is not None:
        env["MCP_TOKEN"] = token
    env["MCP_CALLS"] = json.dumps(calls or [])
    done = subprocess.run(
        [node, str(CLIENT / "client.mjs"), url], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def test_the_typescript_sdk_client_gets_in_only_with_a_listed_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, [f"alice {ALICE}", f"reader {READER} read-only"])
    flags = ["--auth", "bearer", "--auth-tokens-file", str(tokens), "--toolsets", "docker,prov"]
    with serve(tmp_path, *flags) as served:
        bare = _ts_client(served.url, None)
        wrong = _ts_client(served.url, WRONG)
        reader = _ts_client(served.url, READER, [("prov_stats", {}), ("docker_container_start", {"container": "web"})])
        before = _ts_client(served.url, CAROL)
        write_tokens(tokens, [f"carol {CAROL} read-only"])  # carol added, reader revoked: no restart
        after = _ts_client(served.url, CAROL, [("prov_stats", {})])
        revoked = _ts_client(served.url, READER)
    assert not bare["connected"] and bare["status"] == 401 and "a bearer token is required" in bare["error"]
    assert not wrong["connected"] and wrong["status"] == 401 and "unknown, expired" in wrong["error"]
    assert reader["connected"] and reader["error"] is None
    assert set(reader["tools"]) == READ_TOOLS
    stats, refused = reader["results"]
    assert not stats["isError"]
    assert refused["isError"] and refused["text"].startswith("forbidden: docker_container_start is a write tool")
    assert before["status"] == 401 and after["connected"] and revoked["status"] == 401
    spans = {span["span_id"]: span for span in served.spans()}
    assert set(spans) == {stats["spanId"], refused["spanId"], after["results"][0]["spanId"]}
    for span in (spans[stats["spanId"]], spans[refused["spanId"]]):
        assert span["attributes"]["enduser.id"] == "reader"
        assert span["attributes"]["mcp.client.name"] == "mcp-ledger-ts-test"
    assert provenance.Ledger(served.ledger).query(principal="reader")["spans"]
    assert_nothing_holds([ALICE, READER, WRONG, CAROL], served.ledger, served.stderr)
