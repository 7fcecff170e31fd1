"""The acceptance question, from the ledger alone: which revision of a model did I read, and which files
did I download with which sha256?"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.harness import call_ok
from tests.hf.conftest import CONFIG, MODEL, V1, V2, WEIGHTS, Connect
from tests.hf.fake import FakeHub


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prov_query_answers_which_revision_was_read_and_which_sha256_was_downloaded(
    hub_env: FakeHub, connect: Connect, mode: str
) -> None:
    async with connect(mode) as client:
        await call_ok(client, "hf_model_info", {"repo": MODEL, "revision": "v1.0"})
        await call_ok(client, "hf_file_download", {"repo": MODEL, "path": "model.safetensors"})
        await call_ok(client, "hf_file_download", {"repo": MODEL, "path": "config.json", "revision": "v1.0"})
        reads = await call_ok(client, "prov_query", {"tool": "hf_model_info"})
        downloads = await call_ok(client, "prov_query", {"tool": "hf_file_download"})
    (read,) = reads["spans"]
    assert read["upstream"]["repo_id"] == MODEL
    assert (read["upstream"]["requested_revision"], read["upstream"]["resolved_revision"]) == ("v1.0", V1)
    got = {
        (s["upstream"]["repo_id"], s["upstream"]["file_path"]): (
            s["upstream"]["resolved_revision"],
            s["upstream"]["file_sha256"],
        )
        for s in downloads["spans"]
    }
    assert got == {
        (MODEL, "model.safetensors"): (V2, hashlib.sha256(WEIGHTS).hexdigest()),
        (MODEL, "config.json"): (V1, hashlib.sha256(CONFIG).hexdigest()),
    }


async def test_prov_query_by_group_lists_every_hub_call_with_its_request_ids(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path
) -> None:
    async with connect() as client:
        await call_ok(client, "hf_model_search", {"limit": 1})
        await call_ok(client, "hf_repo_files", {"repo": MODEL})
        listed = await call_ok(client, "prov_query", {"group": "hf"})
    assert [s["tool"] for s in listed["spans"]] == ["hf_repo_files", "hf_model_search"]
    assert all(s["upstream"]["hub_request_id"] for s in listed["spans"])
