"""The cold-start baseline: a bare SDK ``MCPServer`` with one tool over stdio, nothing else.

``python -m bench._bare_server`` is launched exactly like ``python -m mcp_ledger.server serve`` by
``bench/store.py``, so the difference between the two is what mcp-ledger adds before it can answer.
stdout belongs to the protocol: nothing else may write to it.
"""

from __future__ import annotations

import contextlib
import sys

import anyio
from mcp.server import MCPServer

server: MCPServer = MCPServer("bare")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def main() -> int:
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(server.run_stdio_async)
    return 0


if __name__ == "__main__":
    sys.exit(main())
