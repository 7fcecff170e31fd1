"""Which engine the group talks to: flag, DOCKER_HOST (with TLS), CLI context, default socket."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from mcp import Client

from mcp_ledger.server.app import create_app
from mcp_ledger.server.settings import ServerSettings
from mcp_ledger.tools.docker import DockerSettings
from mcp_ledger.tools.docker._backend import DEFAULT_SOCKET, EngineAddress, _client_url, resolve_address
from mcp_ledger.tools.group import NotConfigured
from tests.conftest import URL_USER_PASSWORD
from tests.harness import ledger_bytes, result_text


def test_flag_wins_over_docker_host(tmp_path: Path) -> None:
    address = resolve_address("unix:///a.sock", {"DOCKER_HOST": "unix:///b.sock"}, tmp_path)
    assert address == EngineAddress("unix:///a.sock", "--docker-host")


def test_docker_host_wins_over_the_cli_context(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    address = resolve_address(None, {"DOCKER_HOST": "tcp://127.0.0.1:2375"}, tmp_path)
    assert address == EngineAddress("tcp://127.0.0.1:2375", "DOCKER_HOST")
    assert address is not None and _client_url(address, tls=False) == "http://127.0.0.1:2375"


def test_docker_tls_verify_uses_the_cert_path(tmp_path: Path) -> None:
    environ = {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    address = resolve_address(None, environ, Path("/nonexistent"))
    assert address is not None
    assert address.tls == (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    assert _client_url(address, tls=True) == "https://127.0.0.1:2376"


def test_docker_context_env_names_the_context(tmp_path: Path) -> None:
    meta = tmp_path / ".docker" / "contexts" / "meta" / hashlib.sha256(b"lab").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Endpoints": {"docker": {"Host": "tcp://127.0.0.1:2999"}}}))
    address = resolve_address(None, {"DOCKER_CONTEXT": "lab"}, tmp_path)
    assert address == EngineAddress("tcp://127.0.0.1:2999", "Docker CLI context 'lab'")


def test_a_context_without_metadata_is_not_configured(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="context 'gone'"):
        resolve_address(None, {"DOCKER_CONTEXT": "gone"}, tmp_path)


@pytest.mark.skipif(Path(DEFAULT_SOCKET).exists(), reason="this machine has a default Docker socket")
def test_nothing_to_talk_to_is_none(tmp_path: Path) -> None:
    assert resolve_address(None, {}, tmp_path) is None


async def test_a_password_in_docker_host_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://dockeruser:{URL_USER_PASSWORD}@127.0.0.1:{port}")
    ledger = tmp_path / "ledger"
    app = create_app(ServerSettings(ledger_dir=ledger), {"docker": DockerSettings()})
    try:
        async with Client(app.server) as client:
            result = await client.call_tool("docker_system_info", {})
            listing = await client.read_resource("provenance://spans?limit=10")
    finally:
        app.close()
    text = result_text(result)
    assert result.is_error and f"tcp://[REDACTED:url-userinfo]@127.0.0.1:{port} (from DOCKER_HOST)" in text
    for where, blob in [
        ("error text", text),
        ("resource", getattr(listing.contents[0], "text", "")),
        ("ledger", ledger_bytes(ledger).decode("latin-1")),  # the index is binary
        ("stderr", capfd.readouterr().err),
    ]:
        assert URL_USER_PASSWORD not in blob, where
