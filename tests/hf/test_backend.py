"""Where the hub, the token and offline mode come from, and the library internals the backend relies on."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from mcp_ledger.tools.hf import HfSettings
from mcp_ledger.tools.hf._backend import cache_dir, endpoint_url, etag_matches, find_credentials, is_offline
from tests.harness import call_error, call_ok, ledger_bytes, only_span
from tests.hf.conftest import MODEL, TOKEN, V2, Connect, write_token_file
from tests.hf.fake import FakeHub


async def test_the_endpoint_is_read_when_the_group_connects_not_when_huggingface_hub_is_imported(
    hub_env: FakeHub, connect: Connect
) -> None:
    # Imported with this module, before the fixture set HF_ENDPOINT: the library's constant points elsewhere.
    assert hub_env.url != huggingface_hub.constants.ENDPOINT
    async with connect() as client:
        info = await call_ok(client, "hf_model_info", {"repo": MODEL})
    assert info["sha"] == V2 and hub_env.requests()


async def test_the_hf_endpoint_setting_wins_over_the_environment(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    async with connect(hf=HfSettings(endpoint=hub_env.url + "/")) as client:
        await call_ok(client, "hf_model_info", {"repo": MODEL})


async def test_the_token_file_of_hf_auth_login_is_used_when_hf_token_is_unset(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch, hf_home: Path, ledger_dir: Path
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    write_token_file(hf_home, TOKEN)
    async with connect() as client:
        await call_ok(client, "hf_model_info", {"repo": MODEL})
    assert {s.authorization for s in hub_env.requests()} == {f"Bearer {TOKEN}"}
    assert only_span(ledger_dir, "hf_model_info")["upstream"]["hub_auth"] == "token file"
    assert TOKEN.encode() not in ledger_bytes(ledger_dir)


async def test_a_bad_endpoint_is_not_configured(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "ftp://user:pw@mirror.example")
    async with connect() as client:
        error = await call_error(client, "hf_model_info", {"repo": MODEL})
    assert error.startswith("not configured: set HF_ENDPOINT to the hub's http(s) URL") and "pw" not in error


def test_configuration_sources_in_the_hubs_order(tmp_path: Path) -> None:
    home = tmp_path
    assert endpoint_url(None, {}) == "https://huggingface.co"
    assert endpoint_url(None, {"HF_ENDPOINT": "https://mirror.example/"}) == "https://mirror.example"
    assert endpoint_url("http://a.example", {"HF_ENDPOINT": "https://b.example"}) == "http://a.example"
    assert cache_dir({}, home) == home / ".cache" / "huggingface" / "hub"
    assert cache_dir({"HF_HOME": "/h"}, home) == Path("/h/hub")
    assert cache_dir({"HF_HOME": "/h", "HF_HUB_CACHE": "/c"}, home) == Path("/c")
    assert find_credentials({"HF_TOKEN": " t1 ", "HUGGING_FACE_HUB_TOKEN": "t2"}, home).token == "t1"
    (home / "tok").write_text("t3")
    assert find_credentials({"HF_TOKEN_PATH": str(home / "tok")}, home).source == "token file"
    assert find_credentials({}, home).source == "none"
    assert is_offline({"HF_HUB_OFFLINE": "yes"}) and is_offline({"TRANSFORMERS_OFFLINE": "1"})
    assert not is_offline({"HF_HUB_OFFLINE": "0"})


def test_an_etag_is_checked_as_an_lfs_sha256_or_a_git_blob_sha1() -> None:
    assert etag_matches("a" * 64, "a" * 64, "b" * 40) is True
    assert etag_matches("b" * 40, "a" * 64, "b" * 40) is True
    assert etag_matches("c" * 40, "a" * 64, "b" * 40) is False
    assert etag_matches("W/abc", "a" * 64, "b" * 40) is None and etag_matches(None, "a", "b") is None


def test_the_library_internals_the_request_id_hook_relies_on() -> None:
    """huggingface_hub.utils._http.default_client_factory builds the client every hub call shares; the
    backend adds a response hook to it. If this moves, request ids silently stop reaching the ledger."""
    from huggingface_hub.utils._http import default_client_factory

    client = default_client_factory()
    try:
        assert set(client.event_hooks) >= {"request", "response"} and client.event_hooks["request"]
    finally:
        client.close()


async def test_no_request_goes_to_a_host_nobody_configured(
    hub_env: FakeHub, connect: Connect, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """huggingface_hub's User-Agent asks ``detect_agent()``, which on first use fetches ``/api/agent-harnesses``
    from the endpoint read at import. Here that endpoint is the loopback hub, so a fetch would be seen."""
    from huggingface_hub.utils import _detect_agent

    import mcp_ledger.tools.hf._backend

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub_env.url)
    monkeypatch.setattr(huggingface_hub.constants, "AGENT_HARNESSES_PATH", str(tmp_path / "harnesses.json"))
    monkeypatch.setattr(_detect_agent, "_registry", None)
    monkeypatch.setattr(mcp_ledger.tools.hf._backend, "_hook_installed", False)
    async with connect() as client:
        await call_ok(client, "hf_model_search", {"limit": 1})
    assert [s.path for s in hub_env.requests()] == ["/api/models"]
