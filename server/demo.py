"""``mcp-ledger demo``: a real MCP client session against ``mcp-ledger serve`` over stdio, then what
the ledger recorded and whether it verifies."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_ledger import provenance

__all__ = ["run_demo"]

DEMO_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("docker_container_list", {"all": True, "limit": 5}, "what runs on the local Docker engine (if any)?"),
    ("github_run_list", {"owner": "octocat", "repo": "hello-world"}, "no token in the demo: says what to set"),
    (
        "infer_rank",
        {
            "query": "the container was killed: out of memory",
            "documents": [
                "GET /healthz 200 in 3 ms",
                "OOMKilled: memory limit 512Mi exceeded",
                "certificate expires in 12 days",
            ],
        },
        "which log line is most like this? the built-in model: no key, no network",
    ),
    ("prov_query", {"since": "last tuesday"}, "a bad argument: the error says what to fix"),
    ("prov_stats", {}, "what has been called so far?"),
    ("prov_query", {"status": "error", "limit": 5}, "which calls failed?"),
    ("prov_verify", {}, "is the ledger intact?"),
]


async def _session(ledger_dir: Path) -> list[str]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ledger.server", "serve"],
        # What an MCP client passes: a minimal environment (no tokens), plus the ledger directory.
        env={
            "MCP_LEDGER_DIR": str(ledger_dir),
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
        },
    )
    lines = []
    async with Client(stdio_client(params)) as client:
        tools = await client.list_tools()
        lines.append(f"server offers {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}")
        for name, arguments, why in DEMO_CALLS:
            result = await client.call_tool(name, arguments)
            span_id = (result.meta or {}).get(provenance.SPAN_ID_META_KEY)
            outcome = "error" if result.is_error else "ok"
            text = result.content[0].text if result.content and hasattr(result.content[0], "text") else ""
            lines.append(f"  {name}({arguments}) -> {outcome}, span {span_id}   # {why}")
            if result.is_error:
                lines.append(f"      {text[:300]}")
            elif name == "infer_rank":
                ranked = (result.structured_content or {}).get("ranked", [])
                best = [f"{arguments['documents'][r['index']]!r} {r['score']:.3f}" for r in ranked]
                lines.append(f"      ranked: {'; '.join(best)}")
    return lines


def run_demo(ledger_dir: Path) -> int:
    from mcp_ledger.server.cli import main as cli

    ledger_dir.mkdir(parents=True, exist_ok=True)
    print(f"== a client session against `mcp-ledger serve` (stdio), ledger in {ledger_dir}\n")
    for line in anyio.run(_session, ledger_dir):
        print(line)
    print("\n== what the ledger recorded (mcp-ledger query)\n")
    cli(["query", "--ledger-dir", str(ledger_dir)])
    span = next(provenance.Ledger(ledger_dir).scan(), None)
    if span is not None:
        print("\n== the first span in full (mcp-ledger query --json --full)\n")
        print(_pretty(span))
    ranked = next((s for s in provenance.Ledger(ledger_dir).scan() if s["name"] == "tools/call infer_rank"), None)
    if ranked is not None:
        print("\n== the infer_rank span: the model, its weights' revision and sha256, the tokens it read\n")
        print(_pretty(ranked))
    print("\n== mcp-ledger verify\n")
    return cli(["verify", "--ledger-dir", str(ledger_dir)])


def _pretty(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
