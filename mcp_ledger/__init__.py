"""mcp-ledger: an MCP server whose every tool call is a provenance span in a hash-chained ledger.

The repository keeps ``server/``, ``tools/`` and ``provenance/`` at its top level; an install puts them
under this one name (``mcp_ledger.server``, ``mcp_ledger.tools``, ``mcp_ledger.provenance``), so the
distribution adds exactly one top-level import package.
"""
