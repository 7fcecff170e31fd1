"""Opt-in: read a small public model on the real hub (``pytest -m live``; HF_TOKEN optional)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import call_ok, spans
from tests.hf.conftest import Connect

pytestmark = pytest.mark.live
MODEL = os.environ.get("LIVE_HF_MODEL", "sentence-transformers/all-MiniLM-L6-v2")


async def test_searches_reads_lists_and_downloads_a_public_model(
    monkeypatch: pytest.MonkeyPatch, connect: Connect, ledger_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    async with connect() as client:
        found = await call_ok(client, "hf_model_search", {"search": "MiniLM", "limit": 3})
        assert found["models"]
        info = await call_ok(client, "hf_model_info", {"repo": MODEL})
        assert info["sha"] and len(info["sha"]) == 40
        files = await call_ok(client, "hf_repo_files", {"repo": MODEL, "limit": 5})
        assert files["sha"] == info["sha"]
        read = await call_ok(client, "hf_file_read", {"repo": MODEL, "path": "config.json"})
        assert read["sha256"] and read["sha"] == info["sha"]
        got = await call_ok(client, "hf_file_download", {"repo": MODEL, "path": "config.json"})
        assert got["verified"] is True and got["sha256"] == read["sha256"]
    recorded = spans(ledger_dir)
    assert recorded and all(s["upstream"].get("hub_request_id") for s in recorded)
