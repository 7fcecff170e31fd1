"""A ledger of varied spans over three days in two chains, and the CLI run in-process."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from mcp_ledger import provenance
from mcp_ledger.server.cli import main

# 2026-11-20T00:00:00Z; the spans run from 20:00 on the 20th to about 04:00 on the 23rd.
DAY0_NS = 1_795_132_800_000_000_000
HOUR_NS = 3_600 * 1_000_000_000
SPANS = 240

TOOLS = (
    ("github_pr_get", "github"),
    ("github_job_logs", "github"),
    ("docker_container_logs", "docker"),
    ("docker_container_restart", "docker"),
    ("prov_query", "prov"),
)


def varied_span(i: int, rng: random.Random, parent: dict[str, Any] | None) -> dict[str, Any]:
    """A span as the middleware writes one, with the odd cases an export must carry: a parent, an error, an
    upstream list, redactions, an attribute without a column, a well-known attribute of an unexpected type."""
    tool, group = TOOLS[i % len(TOOLS)]
    start = DAY0_NS + 20 * HOUR_NS + i * (56 * HOUR_NS // SPANS) + rng.randrange(1_000_000)
    error = i % 7 == 3
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "jsonrpc.request.id": str(i + 1),
        "mcp-ledger.connection.id": f"c-{i % 3}",
        "mcp-ledger.tool.destructive": False,
        "mcp-ledger.tool.group": group,
        "mcp-ledger.tool.read_only": tool != "docker_container_restart",
        "mcp.client.name": "claude-code",
        "mcp.client.version": "2.1.4",
        "mcp.method.name": "tools/call",
        "mcp.protocol.version": "2025-11-25",
        "network.transport": "pipe",
        "enduser.id": "alice" if i % 2 else "bob",
    }
    if error:
        attrs["error.type"] = "tool_error"
    if i % 11 == 0:
        attrs["mcp-ledger.custom.note"] = {"kept": i}
    if i % 13 == 0:
        attrs["mcp-ledger.tool.read_only"] = "yes"  # not a bool: kept in other_attributes
    if group == "github":
        attrs["mcp-ledger.untrusted_content"] = True
    preview = '{"owner":"acme","token":"[REDACTED]"}' if i % 5 == 0 else '{"owner":"acme"}'
    return {
        "type": "span",
        "trace_id": parent["trace_id"] if parent else f"{rng.getrandbits(128):032x}",
        "span_id": f"{rng.getrandbits(64):016x}",
        "parent_span_id": parent["span_id"] if parent else None,
        "name": f"tools/call {tool}",
        "kind": "SERVER",
        "start_ns": str(start),
        "end_ns": str(start + rng.randrange(100_000, 900_000_000)),
        "status": {"code": "ERROR" if error else "OK", "message": "upstream said no" if error else None},
        "attributes": attrs,
        "input": {
            "sha256": f"{rng.getrandbits(256):064x}",
            "size": len(preview),
            "preview": preview,
            "truncated": False,
            "redactions": ["$.token"] if i % 5 == 0 else [],
        },
        "output": {"sha256": "0" * 64, "size": 4, "preview": "null", "truncated": False, "redactions": []},
        "upstream": {"request_id": ["r-1", f"r-{i}"], "object": "pr"} if group == "github" else {},
    }


def write_varied_ledger(directory: Path, spans: int = SPANS) -> None:
    """``spans`` spans in two chains written side by side (two servers sharing one ledger directory)."""
    rng = random.Random(13)
    stores = [provenance.SpanStore(directory, fsync="never") for _ in range(2)]
    parent: dict[str, Any] | None = None
    for i in range(spans):
        span = varied_span(i, rng, parent if i % 4 == 1 else None)
        stores[(i // 3) % 2].append(span)
        parent = span
    for store in stores:
        store.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    directory = tmp_path / "ledger"
    write_varied_ledger(directory)
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
