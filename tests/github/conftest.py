"""Fixtures: a spec-checked loopback GitHub, and the server connected to it through a real MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pytest_httpserver import HTTPServer

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.github import GitHubSettings
from tests.github.fake import FakeGitHub
from tests.harness import connected

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
        async with connected(app, mode) as client:
            yield client

    return _connect
