"""mcp-ledger server: settings, app factory, gating, CLI, transports."""
