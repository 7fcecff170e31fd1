"""hf_repo_files, hf_file_read, hf_file_download against the loopback hub and its CDN."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest

from mcp_ledger.tools.group import abandoned_workers
from mcp_ledger.tools.hf import HfSettings
from tests.harness import call_error, call_ok, ledger_bytes, only_span, spans
from tests.hf.conftest import (
    CARD,
    CONFIG,
    DATASET,
    MODEL,
    SPACE,
    TOKEN,
    V1,
    V2,
    WEIGHTS,
    Connect,
    blob_of,
    commit,
    read_local,
)
from tests.hf.fake import Blob, FakeHub, git_sha1


async def test_repo_files_lists_one_commit_with_sizes_lfs_sha256_and_pages(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path
) -> None:
    hub_env.page_size = 3  # the hub's tree pages (1000 in life) are followed with its Link cursor
    async with connect() as client:
        first = await call_ok(client, "hf_repo_files", {"repo": MODEL, "limit": 2})
        assert first["sha"] == V2
        rows = list(first["files"])
        cursor = first["next_cursor"]
        while cursor:
            page = await call_ok(client, "hf_repo_files", {"repo": MODEL, "limit": 2, "cursor": cursor})
            assert page["sha"] == V2
            rows += page["files"]
            cursor = page["next_cursor"]
    assert sorted(r["path"] for r in rows) == sorted(
        [
            "README.md",
            "config.json",
            "tokenizer_config.json",
            "model.safetensors",
            "onnx/model.onnx",
            "onnx/config.json",
        ]
    )
    weights = next(r for r in rows if r["path"] == "model.safetensors")
    assert weights == {
        "path": "model.safetensors",
        "size": len(WEIGHTS),
        "lfs_sha256": hashlib.sha256(WEIGHTS).hexdigest(),
    }
    # The revision is resolved once; every page is listed at that commit, never at the moving branch.
    trees = [s.path for s in hub_env.requests() if "/tree/" in s.path]
    assert trees and all(path.startswith(f"/api/models/{MODEL}/tree/{V2}") for path in trees)
    assert all(s["upstream"]["resolved_revision"] == V2 for s in spans(ledger_dir, "hf_repo_files"))


async def test_repo_files_prefix_lists_under_its_folder(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        onnx = await call_ok(client, "hf_repo_files", {"repo": MODEL, "prefix": "onnx/model"})
        data = await call_ok(client, "hf_repo_files", {"repo": DATASET, "repo_type": "dataset", "prefix": "data/"})
        space = await call_ok(client, "hf_repo_files", {"repo": SPACE, "repo_type": "space"})
        assert "prefix" in await call_error(client, "hf_repo_files", {"repo": MODEL, "prefix": "../x"})
        assert "cursor" in await call_error(client, "hf_repo_files", {"repo": MODEL, "cursor": "nope"})
    assert [f["path"] for f in onnx["files"]] == ["onnx/model.onnx"]
    assert sorted(f["path"] for f in data["files"]) == ["data/test.parquet", "data/train.parquet"]
    assert [f["path"] for f in space["files"]] == ["app.py"] and space["sha"] == commit("space")
    assert any(s.path == f"/api/models/{MODEL}/tree/{V2}/onnx" for s in hub_env.requests())


async def test_file_read_returns_the_text_the_commit_the_etag_and_the_sha256(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path
) -> None:
    async with connect() as client:
        read = await call_ok(client, "hf_file_read", {"repo": MODEL, "path": "config.json", "revision": "v1.0"})
    assert read == {
        "path": "config.json",
        "sha": V1,
        "size": len(CONFIG),
        "etag": git_sha1(CONFIG),
        "sha256": hashlib.sha256(CONFIG).hexdigest(),
        "truncated": False,
        "untrusted_text": CONFIG.decode(),
    }
    span = only_span(ledger_dir, "hf_file_read")
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True
    upstream = span["upstream"]
    assert upstream["requested_revision"] == "v1.0" and upstream["resolved_revision"] == V1
    assert upstream["file_sha256"] == hashlib.sha256(CONFIG).hexdigest() and upstream["file_etag"] == git_sha1(CONFIG)
    assert len(upstream["hub_request_id"]) == 2  # HEAD, then GET at the commit the HEAD resolved
    assert [s.path for s in hub_env.requests(method="GET")] == [f"/{MODEL}/resolve/{V1}/config.json"]


async def test_file_read_is_bounded_and_refuses_binary(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        cut = await call_ok(client, "hf_file_read", {"repo": MODEL, "path": "README.md", "max_bytes": 10})
        assert cut["untrusted_text"] == CARD[:10].decode() and cut["truncated"] is True and cut["sha256"] is None
        assert cut["size"] == len(CARD)
        error = await call_error(client, "hf_file_read", {"repo": MODEL, "path": "model.safetensors"})
        assert "binary" in error and "hf_file_download" in error
        for path in ("../x", "/etc/passwd", "a//b", "a\\b", "a/./b"):
            assert "path" in await call_error(client, "hf_file_read", {"repo": MODEL, "path": path})
    # The LFS file was read from the CDN, with a Range, and no token went there.
    cdn = hub_env.requests("cdn")
    assert cdn and all(s.authorization is None for s in cdn)


async def test_file_download_follows_the_lfs_redirect_verifies_sha256_and_reports_progress(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path, hf_home: Path
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with connect() as client:
        got = await call_ok(
            client, "hf_file_download", {"repo": MODEL, "path": "model.safetensors"}, progress_callback=on_progress
        )
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    local = Path(got["local_path"])
    # The standard cache layout: other tools (transformers, hf_hub_download) find the file here.
    assert local == hf_home / "hub" / "models--acme--tiny-model" / "snapshots" / V2 / "model.safetensors"
    assert read_local(local) == WEIGHTS
    assert blob_of(local).name == sha256
    assert got == {
        "path": "model.safetensors",
        "sha": V2,
        "size": len(WEIGHTS),
        "etag": sha256,
        "sha256": sha256,
        "verified": True,
        "cached": False,
        "local_path": str(local),
    }
    assert any(total == len(WEIGHTS) and done == len(WEIGHTS) for done, total, _ in progress), progress
    upstream = only_span(ledger_dir, "hf_file_download")["upstream"]
    assert upstream["file_sha256"] == sha256 and upstream["file_etag"] == sha256 and upstream["file_verified"] is True
    assert upstream["resolved_revision"] == V2 and upstream["local_path"] == str(local)
    heads = hub_env.requests(method="HEAD")
    assert heads and heads[0].path == f"/{MODEL}/resolve/main/model.safetensors"
    assert all(s.authorization == f"Bearer {TOKEN}" for s in hub_env.requests())
    cdn = hub_env.requests("cdn")
    assert [s.method for s in cdn] == ["GET"] and all(s.authorization is None for s in cdn)
    assert TOKEN.encode() not in ledger_bytes(ledger_dir)


async def test_a_second_download_is_answered_from_the_cache_and_checked_again(
    hub_env: FakeHub, connect: Connect
) -> None:
    args = {"repo": MODEL, "path": "config.json", "revision": "v1.0"}
    async with connect() as client:
        first = await call_ok(client, "hf_file_download", args)
        again = await call_ok(client, "hf_file_download", args)
    assert first["cached"] is False and again["cached"] is True
    assert first["sha256"] == again["sha256"] == hashlib.sha256(CONFIG).hexdigest()
    assert first["etag"] == git_sha1(CONFIG) and again["verified"] is True and again["sha"] == V1
    assert len([s for s in hub_env.requests(method="GET") if "/resolve/" in s.path]) == 1


async def test_a_cached_file_that_no_longer_matches_its_etag_is_reported(hub_env: FakeHub, connect: Connect) -> None:
    args = {"repo": MODEL, "path": "config.json"}
    async with connect() as client:
        first = await call_ok(client, "hf_file_download", args)
        tamper(first["local_path"])
        error = await call_error(client, "hf_file_download", args)
    assert "does not match the hub's etag" in error and first["local_path"] in error


async def test_download_over_the_size_limit_is_refused_before_fetching(hub_env: FakeHub, connect: Connect) -> None:
    big = Blob(b"x" * (2 * 2**20), lfs=True)
    hub_env.repos[("model", MODEL)].commits[V2]["big.bin"] = big
    async with connect(hf=HfSettings(max_download_mb=1)) as client:
        error = await call_error(client, "hf_file_download", {"repo": MODEL, "path": "big.bin"})
    assert "2.0 MiB, over the 1 MiB limit" in error
    assert hub_env.requests("cdn") == []


async def test_offline_downloads_come_from_the_cache_and_hub_reads_are_refused(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch, ledger_dir: Path
) -> None:
    async with connect() as client:
        online = await call_ok(client, "hf_file_download", {"repo": MODEL, "path": "model.safetensors"})
    before = len(hub_env.seen)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    async with connect() as client:
        offline = await call_ok(client, "hf_file_download", {"repo": MODEL, "path": "model.safetensors"})
        missing = await call_error(client, "hf_file_download", {"repo": MODEL, "path": "config.json"})
        refused = await call_error(client, "hf_model_info", {"repo": MODEL})
    assert len(hub_env.seen) == before  # nothing reached the hub
    assert {k: offline[k] for k in ("sha", "sha256", "etag", "local_path", "verified")} == {
        k: online[k] for k in ("sha", "sha256", "etag", "local_path", "verified")
    }
    assert offline["cached"] is True
    assert "not in the hub cache" in missing and "HF_HUB_OFFLINE" in missing
    assert refused.startswith("offline: HF_HUB_OFFLINE is set")


async def test_downloads_of_dataset_and_space_files_use_their_repo_types(
    hub_env: FakeHub, connect: Connect, hf_home: Path
) -> None:
    async with connect() as client:
        data = await call_ok(
            client, "hf_file_download", {"repo": DATASET, "repo_type": "dataset", "path": "data/test.parquet"}
        )
        app = await call_ok(client, "hf_file_download", {"repo": SPACE, "repo_type": "space", "path": "app.py"})
    assert "datasets--acme--tiny-dataset" in data["local_path"] and data["verified"] is True
    assert "spaces--acme--demo-space" in app["local_path"] and read_local(app["local_path"]) == b"print('hi')\n"
    assert hub_env.requests(method="HEAD")[0].path == f"/datasets/{DATASET}/resolve/main/data/test.parquet"


def tamper(local_path: str) -> None:
    blob_of(local_path).write_bytes(b'{"tampered": true}')


async def test_a_cancelled_download_stops_its_worker_and_leaves_no_file_in_the_cache(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path, hf_home: Path
) -> None:
    big = Blob(bytes(range(256)) * 8192, lfs=True)  # 2 MiB from a CDN that sends 64 KiB every 50 ms
    hub_env.repos[("model", MODEL)].commits[V2]["big.bin"] = big
    hub_env.cdn_seconds_per_chunk = 0.05
    async with connect() as client:
        with anyio.move_on_after(0.5):
            await client.call_tool("hf_file_download", {"repo": MODEL, "path": "big.bin"})
        with anyio.fail_after(15):  # the thread stops at its next progress step and leaves no worker behind
            while abandoned_workers():
                await anyio.sleep(0.05)
    span = only_span(ledger_dir, "hf_file_download")
    assert span["attributes"]["error.type"] == "cancelled"
    assert span["upstream"]["worker_thread"] == "abandoned" and span["upstream"]["repo_id"] == MODEL
    repo_dir = hf_home / "hub" / "models--acme--tiny-model"
    assert not exists(repo_dir / "snapshots" / V2 / "big.bin")
    assert not exists(repo_dir / "blobs" / big.sha256)  # only the resumable .incomplete part, if any


def exists(path: Path) -> bool:
    return path.exists()
