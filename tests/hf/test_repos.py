"""hf_model_search, hf_dataset_search, hf_model_info, hf_dataset_info against the loopback hub."""

from __future__ import annotations

from pathlib import Path

from tests.harness import call_error, call_ok, ledger_bytes, only_span
from tests.hf.conftest import DATASET, MODEL, TOKEN, V1, V2, WEIGHTS, Connect
from tests.hf.fake import Blob, FakeHub


async def test_model_search_pages_with_the_hubs_cursor_most_downloaded_first(
    hub_env: FakeHub, connect: Connect
) -> None:
    async with connect() as client:
        first = await call_ok(client, "hf_model_search", {"author": "acme", "limit": 2})
        assert [m["id"] for m in first["models"]] == [MODEL, "acme/other-model"]
        assert first["models"][0] == {
            "id": MODEL,
            "task": "sentence-similarity",
            "library": "sentence-transformers",
            "downloads": 5000,
            "likes": 40,
        }
        assert first["next_cursor"]
        second = await call_ok(client, "hf_model_search", {"limit": 2, "cursor": first["next_cursor"]})
    # The private repo is not listed to the search; the last page has no cursor.
    assert [m["id"] for m in second["models"]] == ["acme/third-model", "acme/gated-model"]
    assert second["next_cursor"] is None


async def test_model_search_sends_task_library_tags_and_sort_as_the_hub_names_them(
    hub_env: FakeHub, connect: Connect
) -> None:
    async with connect() as client:
        found = await call_ok(
            client,
            "hf_model_search",
            {
                "search": "model",
                "task": "text-generation",
                "library": "transformers",
                "tags": ["transformers"],
                "sort": "trending",
            },
        )
    assert [m["id"] for m in found["models"]] == ["acme/other-model"]
    assert found["next_cursor"] is None
    query = hub_env.requests(method="GET")[-1].query
    assert ("pipeline_tag", "text-generation") in query
    assert ("filter", "transformers") in query
    assert ("sort", "trendingScore") in query


async def test_dataset_search_returns_compact_rows(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        found = await call_ok(client, "hf_dataset_search", {"tags": ["language:en"], "sort": "likes"})
    assert found["datasets"] == [
        {"id": DATASET, "downloads": 321, "likes": 5, "gated": None, "last_modified": "2026-11-20T10:00:00Z"}
    ]


async def test_model_info_reports_the_resolved_commit_files_lfs_sha256_parameters_and_an_untrusted_card(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path
) -> None:
    async with connect() as client:
        info = await call_ok(client, "hf_model_info", {"repo": MODEL})
    assert info["sha"] == V2 and info["revision"] == "main"
    assert info["task"] == "sentence-similarity" and info["library"] == "sentence-transformers"
    assert info["license"] == "apache-2.0" and info["parameters"] == 22713216 and info["gated"] is None
    files = {f["path"]: f for f in info["files"]}
    assert files["model.safetensors"]["size"] == len(WEIGHTS)
    assert files["model.safetensors"]["lfs_sha256"] == Blob(WEIGHTS, lfs=True).sha256
    assert files["config.json"]["lfs_sha256"] is None and info["files_total"] == 6
    assert info["untrusted_card"].startswith("# tiny-model") and "license:" not in info["untrusted_card"]
    span = only_span(ledger_dir, "hf_model_info")
    upstream = span["upstream"]
    assert upstream["repo_type"] == "model" and upstream["repo_id"] == MODEL
    assert upstream["requested_revision"] == "main" and upstream["resolved_revision"] == V2
    assert upstream["hub_auth"] == "HF_TOKEN" and upstream["hub_endpoint"] == hub_env.url
    assert len(upstream["hub_request_id"]) == 2 and all(i.startswith("Root=1-") for i in upstream["hub_request_id"])
    assert span["attributes"]["mcp-ledger.untrusted_content"] is True
    assert TOKEN.encode() not in ledger_bytes(ledger_dir)
    # The card is read at the resolved commit, never at a branch that may move between the two requests.
    assert any(s.path == f"/{MODEL}/resolve/{V2}/README.md" for s in hub_env.requests())


async def test_model_info_at_a_tag_resolves_to_that_tags_commit(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path
) -> None:
    async with connect() as client:
        info = await call_ok(client, "hf_model_info", {"repo": MODEL, "revision": "v1.0"})
    assert info["sha"] == V1 and info["revision"] == "v1.0"
    upstream = only_span(ledger_dir, "hf_model_info")["upstream"]
    assert (upstream["requested_revision"], upstream["resolved_revision"]) == ("v1.0", V1)


async def test_dataset_info_reports_configs_and_splits_from_the_card(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        info = await call_ok(client, "hf_dataset_info", {"repo": DATASET})
    assert info["configs"] == [
        {"name": "default", "splits": [{"name": "train", "examples": 800}, {"name": "test", "examples": 200}]}
    ]
    assert info["license"] == "cc-by-4.0" and info["untrusted_card"] == "A tiny dataset."
    assert {f["path"] for f in info["files"]} == {"README.md", "data/train.parquet", "data/test.parquet"}


async def test_bad_repo_ids_and_revisions_are_refused_before_any_request(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        for repo in ("../etc", "acme/../x", "a/b/c", "acme/x--y", "acme/x.", "", "acme/" + "x" * 97):
            assert "repo" in await call_error(client, "hf_model_info", {"repo": repo})
        for revision in ("../main", "main/", "a b", "refs//pr"):
            assert "revision" in await call_error(client, "hf_model_info", {"repo": MODEL, "revision": revision})
        assert "tags" in await call_error(client, "hf_model_search", {"tags": ["a&b=c"]})
    assert hub_env.requests() == []
