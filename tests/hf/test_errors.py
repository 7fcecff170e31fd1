"""What the hub's refusals become: messages that say what to do, one span each, with the hub's request id."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import call_error, ledger_bytes, only_span
from tests.hf.conftest import GATED, MODEL, OTHER_TOKEN, PRIVATE, TOKEN, Connect
from tests.hf.fake import FakeHub


async def test_a_gated_repo_without_a_token_says_to_set_one_and_accept_the_terms(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch, ledger_dir: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    async with connect() as client:
        error = await call_error(client, "hf_file_read", {"repo": GATED, "path": "README.md"})
    assert error == (
        f"gated: model {GATED} file README.md at main needs an account that accepted its terms: set HF_TOKEN "
        f"(or log in with `hf auth login`), then accept at {hub_env.url}/{GATED}"
    )
    span = only_span(ledger_dir, "hf_file_read")
    assert span["status"]["code"] == "ERROR" and span["upstream"]["hub_auth"] == "none"
    assert span["upstream"]["hub_request_id"][0].startswith("Root=1-")
    assert all(s.authorization is None for s in hub_env.requests())


async def test_a_gated_repo_whose_terms_the_token_did_not_accept_says_so(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        error = await call_error(client, "hf_file_download", {"repo": GATED, "path": "model.safetensors"})
    assert error.startswith(f"gated: model {GATED} file model.safetensors at main needs its terms accepted")
    assert f"{hub_env.url}/{GATED}" in error
    hub_env.repos[("model", GATED)].accepted.add(TOKEN)
    async with connect() as client:
        result = await client.call_tool("hf_file_download", {"repo": GATED, "path": "model.safetensors"})
    assert not result.is_error


async def test_a_private_repo_without_a_token_is_not_found_and_names_the_token(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    async with connect() as client:
        error = await call_error(client, "hf_model_info", {"repo": PRIVATE})
    assert error.startswith(f"not found: model {PRIVATE} at main does not exist (or it is private: set HF_TOKEN")


async def test_missing_repo_revision_and_file_are_named(hub_env: FakeHub, connect: Connect) -> None:
    async with connect() as client:
        repo = await call_error(client, "hf_model_info", {"repo": "acme/nothing"})
        revision = await call_error(client, "hf_model_info", {"repo": MODEL, "revision": "v9"})
        file = await call_error(client, "hf_file_read", {"repo": MODEL, "path": "nope.txt"})
        folder = await call_error(client, "hf_repo_files", {"repo": MODEL, "prefix": "nope/x"})
    assert repo.startswith("not found: model acme/nothing at main does not exist (or the token cannot see it)")
    assert revision.startswith(f"not found: no such revision for model {MODEL} at v9")
    assert file.startswith(f"not found: no such file or folder in model {MODEL} file nope.txt at main")
    assert folder.startswith(f"not found: no such file or folder in model {MODEL} at main")


async def test_a_rejected_token_is_a_401_that_names_its_source(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch, ledger_dir: Path
) -> None:
    bad = "hf_" + "Rejected0123456789abcdefghijKLMNOPq"
    monkeypatch.setenv("HF_TOKEN", bad)
    async with connect() as client:
        error = await call_error(client, "hf_model_search", {})
    assert (
        error.startswith("the hub rejected the token (401)")
        and "set HF_TOKEN to a valid token (from HF_TOKEN)" in error
    )
    assert bad not in error and bad.encode() not in ledger_bytes(ledger_dir)


@pytest.mark.parametrize("tool", ["hf_model_search", "hf_model_info", "hf_repo_files", "hf_file_download"])
async def test_a_rate_limit_is_reported_with_its_wait_and_not_slept_through(
    hub_env: FakeHub, connect: Connect, ledger_dir: Path, tool: str
) -> None:
    arguments = {"hf_model_search": {}, "hf_file_download": {"repo": MODEL, "path": "config.json"}}.get(
        tool, {"repo": MODEL}
    )
    with hub_env.rate_limit(count=10):
        async with connect() as client:
            error = await call_error(client, tool, arguments)
    assert "rate limited by the hub (429)" in error and "retry after 37 s" in error
    assert len(hub_env.requests()) == 1  # huggingface_hub's own backoff would have slept 38 s and asked again
    assert only_span(ledger_dir, tool)["upstream"]["hub_request_id"]


async def test_an_unreachable_hub_names_the_endpoint(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    async with connect() as client:
        error = await call_error(client, "hf_model_info", {"repo": MODEL})
    assert error.startswith("cannot reach the hub at http://127.0.0.1:9")


async def test_another_accounts_token_sees_the_gated_repo_only_after_accepting(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_env.repos[("model", GATED)].accepted.add(OTHER_TOKEN)
    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)
    async with connect() as client:
        result = await client.call_tool("hf_file_read", {"repo": GATED, "path": "README.md"})
    assert not result.is_error
