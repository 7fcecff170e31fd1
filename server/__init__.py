"""mcp-ledger server: settings, app factory, gating, CLI, transports."""

# Kept here rather than read from package metadata at start-up (importlib.metadata costs ~10 ms);
# tests/test_readme.py checks it against pyproject.toml.
VERSION = "0.1.0"
