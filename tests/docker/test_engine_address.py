"""Which engine the group talks to: flag, DOCKER_HOST (with TLS), CLI context, default socket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tools.docker._backend import DEFAULT_SOCKET, EngineAddress, _client_url, resolve_address
from tools.group import NotConfigured


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
