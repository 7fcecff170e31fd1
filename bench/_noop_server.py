"""The benchmark's no-op server over stdio: ``python -m bench._noop_server --provenance on|off``.

Built like ``mcp-ledger serve`` builds the stdio server (its guarded transport, pipe, one connection id per
process). stdout belongs to the protocol: nothing else may write to it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio

from bench._noop import build_app
from mcp_ledger import provenance
from mcp_ledger.server.transport import serve_stdio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._noop_server", description=__doc__)
    parser.add_argument("--provenance", choices=["on", "off"], required=True)
    parser.add_argument("--fsync", choices=["batch", "never"], default="batch")
    parser.add_argument(
        "--ledger-dir",
        type=Path,
        default=Path(os.environ["MCP_LEDGER_DIR"]) if os.environ.get("MCP_LEDGER_DIR") else None,
        help="ledger directory (default $MCP_LEDGER_DIR)",
    )
    parser.add_argument(
        "--cpu", type=int, default=None, help="run on this CPU only (the benchmark pins client and server apart)"
    )
    args = parser.parse_args(argv)
    if args.ledger_dir is None:
        parser.error("--ledger-dir or MCP_LEDGER_DIR is required")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    app = build_app(
        args.ledger_dir,
        provenance_enabled=args.provenance == "on",
        fsync=args.fsync,
        network_transport="pipe",
        process_connection_id=provenance.ProvenanceMiddleware.new_process_connection_id(),
    )
    try:
        anyio.run(serve_stdio, app)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
