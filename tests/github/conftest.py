"""Fixtures: a spec-checked loopback GitHub, and the server connected to it through a real MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pytest_httpserver import HTTPServer

import provenance
from server.app import create_app
from server.settings import ServerSettings
from tests.github.fake import FakeGitHub
from tools.github import GitHubSettings

# The token the server is configured with, planted in the environment: it must never reach the ledger.
ENV_TOKEN = "ghp_" + "EnvPlanted0123456789abcdefghijKLMNOP"
OWNER, REPO = "octo-org", "hello"
REPO_PATH = f"/repos/{OWNER}/{REPO}"


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeGitHub]:
    github = FakeGitHub(httpserver, ENV_TOKEN)
    yield github
    assert github.violations == [], "the loopback saw traffic that GitHub's OpenAPI description does not allow"


@pytest.fixture
def github_env(monkeypatch: pytest.MonkeyPatch, fake: FakeGitHub) -> FakeGitHub:
    monkeypatch.setenv("GITHUB_TOKEN", ENV_TOKEN)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
    return fake


Connect = Callable[..., Any]


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    return tmp_path / "ledger"


@pytest.fixture
def connect(ledger_dir: Path) -> Connect:
    """``async with connect(mode="auto", github=GitHubSettings(...), **server_settings) as client``."""

    @asynccontextmanager
    async def _connect(
        mode: str = "auto", github: GitHubSettings | None = None, **settings: Any
    ) -> AsyncIterator[Client]:
        app = create_app(
            ServerSettings(ledger_dir=ledger_dir, **settings),
            {"github": github or GitHubSettings(max_rate_limit_wait=3, timeout=20)},
        )
        try:
            async with Client(app.server, mode=mode) as client:
                yield client
        finally:
            app.close()

    return _connect


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, error_text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def call_error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return error_text(result).removeprefix(f"Error executing tool {tool}: ")


def error_text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def spans(ledger_dir: Path, tool: str | None = None) -> list[dict[str, Any]]:
    found = list(provenance.Ledger(ledger_dir).scan())
    return [s for s in found if tool is None or s["name"] == f"tools/call {tool}"]


def only_span(ledger_dir: Path, tool: str) -> dict[str, Any]:
    found = spans(ledger_dir, tool)
    assert len(found) == 1, [s["name"] for s in spans(ledger_dir)]
    return found[0]


def ledger_bytes(ledger_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(ledger_dir.rglob("*")) if p.is_file())
