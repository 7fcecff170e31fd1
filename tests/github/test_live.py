"""Opt-in: read a public repository on real GitHub (``pytest -m live`` with GITHUB_TOKEN set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.github.conftest import Connect
from tests.harness import call_ok, spans

pytestmark = pytest.mark.live
REPO = {"owner": os.environ.get("LIVE_GITHUB_OWNER", "python"), "repo": os.environ.get("LIVE_GITHUB_REPO", "cpython")}


@pytest.mark.skipif(not os.environ.get("GITHUB_TOKEN"), reason="needs GITHUB_TOKEN")
async def test_reads_runs_pulls_and_issues_of_a_public_repository(
    monkeypatch: pytest.MonkeyPatch, connect: Connect, ledger_dir: Path
) -> None:
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    async with connect() as client:
        runs = await call_ok(client, "github_run_list", {**REPO, "limit": 3})
        if runs["runs"]:
            run = await call_ok(client, "github_run_get", {**REPO, "run_id": runs["runs"][0]["id"]})
            assert run["run"]["id"] == runs["runs"][0]["id"]
        pulls = await call_ok(client, "github_pr_list", {**REPO, "limit": 3, "state": "all"})
        if pulls["pulls"]:
            await call_ok(
                client, "github_pr_get", {**REPO, "number": pulls["pulls"][0]["number"], "include": ["checks"]}
            )
        issues = await call_ok(client, "github_issue_list", {**REPO, "limit": 3, "state": "all"})
        assert issues["issues"]
    recorded = spans(ledger_dir)
    assert recorded and all(s["upstream"].get("github_request_id") for s in recorded)
