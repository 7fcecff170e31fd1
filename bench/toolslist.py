"""What ``tools/list`` costs an agent's context: bytes and estimated tokens per group and in total.

Every byte of the tool list is read by a model in every session. This lists the tools of a server
through an MCP client three ways: as before issue 9 ("pydantic": schemas as pydantic writes them,
output schemas listed, every annotation hint explicit), compact with ``--output-schemas``
(``server/schema.py``), and as served by default (compact, no output schemas, hints equal to MCP's
defaults left out), for the default gating of ``--toolsets docker,github`` and for every group on
(with and without ``--allow-destructive``). A stdio server's raw ``tools/list`` response is measured
too, so the in-process number is checked against what really crosses the pipe.

Bytes are the compact JSON of the list (``{"tools": [...]}``, as the SDK sends it); a group's bytes
are its tools' objects. Tokens are estimated as bytes / 4 (JSON with English descriptions runs at
3.5-4.5 bytes per token in common BPE tokenizers); no tokenizer is a dependency.

    python -m bench.toolslist [--no-write]

Prints a markdown table and writes ``bench/results/toolslist-<UTC stamp>.json`` and
``toolslist-latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import orjson
from mcp import Client
from mcp_types import ToolAnnotations

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.server.toolbridge import ToolEntry
from mcp_ledger.tools import REGISTRY, load_groups

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
BYTES_PER_TOKEN = 4
TARGET_BYTES = 30_300  # issue 9: <= 40 % of 75.7 KB for --toolsets docker,github
BUDGET_ALL_BYTES = 48_000  # issue 9: five groups on by default, later


@dataclass(frozen=True)
class Case:
    name: str
    toolsets: list[str] | None
    allow_destructive: bool
    exclude_tools: tuple[str, ...] = ()


# Issue 9's target is for the 34 tools of its day; tools added since are left out of that row.
ADDED_SINCE_ISSUE_9 = (
    "github_runner_list",
    "github_cache_list",
    "docker_volume_list",
    "docker_network_list",
    "prov_errors",
)

CASES = [
    Case("issue 9's 34 tools (docker,github, default gating)", ["docker", "github"], False, ADDED_SINCE_ISSUE_9),
    Case("--toolsets docker,github (default gating)", ["docker", "github"], False),
    Case("all groups", None, False),
    Case("all groups, --allow-destructive", None, True),
]


@dataclass
class Row:
    case: str
    schemas: str
    tools: int
    total_bytes: int
    groups: dict[str, int]
    # Where the bytes go: the tools' inputSchema, outputSchema and description values.
    parts: dict[str, int]

    @property
    def tokens(self) -> int:
        return round(self.total_bytes / BYTES_PER_TOKEN)


VARIANTS = ("pydantic", "compact, --output-schemas", "compact (default)")


def _explicit_hints(entry: ToolEntry) -> ToolAnnotations:
    """Every hint explicit, as tools were listed before issue 9."""
    return ToolAnnotations(
        title=entry.title,
        read_only_hint=entry.read_only,
        destructive_hint=entry.destructive,
        idempotent_hint=entry.idempotent,
        open_world_hint=entry.open_world,
    )


async def list_tools(case: Case, variant: str) -> list[dict[str, Any]]:
    """The tool list as a client receives it, in one of the three ``VARIANTS``."""
    before = variant == "pydantic"
    with contextlib.ExitStack() as patches, tempfile.TemporaryDirectory() as ledger:
        if before:  # the entries carry pydantic's schemas, as every server did before server/schema.py
            patches.enter_context(mock.patch("mcp_ledger.server.toolbridge.compact_schema", lambda s: s))
            patches.enter_context(mock.patch.object(ToolEntry, "annotations", property(_explicit_hints)))
        settings = ServerSettings(
            ledger_dir=Path(ledger),
            toolsets=case.toolsets,
            allow_destructive=case.allow_destructive,
            exclude_tools=list(case.exclude_tools),
            output_schemas=variant != "compact (default)",
        )
        # Built from the groups' code (not the catalog), so both sides come from the same models.
        app = create_app(settings, groups=load_groups())
        try:
            async with Client(app.server) as client:
                tools = (await client.list_tools()).tools
        finally:
            app.close()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


def measure(case: Case, variant: str) -> Row:
    tools = anyio.run(list_tools, case, variant)
    groups = {
        group: sum(len(orjson.dumps(tool)) for tool in tools if tool["name"].startswith(f"{group}_"))
        for group in REGISTRY
    }
    return Row(
        case.name,
        variant,
        len(tools),
        len(orjson.dumps({"tools": tools})),
        {group: size for group, size in groups.items() if size},
        {
            part: sum(len(orjson.dumps(tool[part])) for tool in tools if part in tool)
            for part in ("inputSchema", "outputSchema", "description")
        },
    )


def stdio_tools_list_bytes(toolsets: str) -> int:
    """Bytes of the ``result`` of a stdio server's ``tools/list`` response, as it crossed the pipe."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "b", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    with tempfile.TemporaryDirectory() as ledger:
        env = {**os.environ, "MCP_LEDGER_DIR": ledger, "MCP_LEDGER_TOOLSETS": toolsets}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_ledger.server", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=REPO_ROOT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"".join(orjson.dumps(m) + b"\n" for m in messages))
            proc.stdin.flush()
            for line in proc.stdout:
                message = orjson.loads(line)
                if message.get("id") == 2:
                    return len(orjson.dumps(message["result"]))
            raise RuntimeError("the stdio server closed without answering tools/list")
        finally:
            proc.kill()
            proc.wait()


def markdown_table(rows: Sequence[Row]) -> str:
    groups = [g for g in REGISTRY if any(g in row.groups for row in rows)]
    head = (
        "| tools/list | schemas | tools | " + " | ".join(f"{g} bytes" for g in groups) + " | total bytes | ≈ tokens |"
    )
    lines = [head, "|---|---|---:|" + "---:|" * len(groups) + "---:|---:|"]
    for row in rows:
        cells = [f"{row.groups[g]:,}" if g in row.groups else "—" for g in groups]
        lines.append(
            f"| {row.case} | {row.schemas} | {row.tools} | "
            + " | ".join(cells)
            + f" | {row.total_bytes:,} | {row.tokens:,} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.toolslist", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    rows = [measure(case, variant) for case in CASES for variant in VARIANTS]
    stdio = stdio_tools_list_bytes("docker,github")
    default = next(row for row in rows if row.case == CASES[0].name and row.schemas == VARIANTS[2])
    before = next(row for row in rows if row.case == CASES[0].name and row.schemas == "pydantic")
    toolsets = next(row for row in rows if row.case == CASES[1].name and row.schemas == VARIANTS[2])
    everything = next(row for row in rows if row.case == CASES[2].name and row.schemas == VARIANTS[2])
    print(markdown_table(rows))
    print(
        f"\nstdio server, --toolsets docker,github: {stdio:,} bytes on the pipe (in-process: {toolsets.total_bytes:,})"
        f"\nserved / before: {default.total_bytes / before.total_bytes:.1%}; target <= {TARGET_BYTES:,} bytes: "
        f"{'met' if default.total_bytes <= TARGET_BYTES else 'not met'}; all groups {everything.total_bytes:,} bytes "
        f"(budget for five groups <= {BUDGET_ALL_BYTES:,})"
        f"\nof the served list of issue 9's 34 tools: "
        + ", ".join(f"{part} {size:,}" for part, size in default.parts.items())
        + f", the rest (names, annotations, JSON) {default.total_bytes - sum(default.parts.values()):,}"
    )
    if not args.no_write:
        document = {
            "benchmark": "tools-list-size",
            "date": started.isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "bytes_per_token": BYTES_PER_TOKEN,
            "target_bytes": TARGET_BYTES,
            "budget_all_groups_bytes": BUDGET_ALL_BYTES,
            "stdio_docker_github_bytes": stdio,
            "rows": [{**asdict(row), "tokens": row.tokens} for row in rows],
        }
        args.results_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        path = args.results_dir / f"toolslist-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(text)
        (args.results_dir / "toolslist-latest.json").write_text(text)
        print(f"\nwrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
