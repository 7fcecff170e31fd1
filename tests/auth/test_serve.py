"""Fail closed on the network; say who called over stdio; the settings of each mode checked at start."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mcp_ledger import provenance
from mcp_ledger.server.auth import http_auth, is_loopback
from mcp_ledger.server.settings import ServerSettings, SettingsError
from tests.auth.conftest import CALL, HEADERS, connect, free_port, serve, write_tokens
from tests.server.test_stdio import server_params, stdio_session


def _serve_and_exit(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "mcp_ledger.server",
        "serve",
        "--transport",
        "http",
        "--port",
        str(free_port()),
        *flags,
    ]
    env = {**os.environ, "MCP_LEDGER_DIR": str(tmp_path / "ledger")}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.internal"])
def test_a_non_loopback_bind_without_authentication_is_refused(tmp_path: Path, host: str) -> None:
    done = _serve_and_exit(tmp_path, "--host", host)
    assert done.returncode == 2
    assert f"--host {host} is not a loopback address and no authentication is configured" in done.stderr
    assert "--auth bearer --auth-tokens-file FILE" in done.stderr and "--allow-unauthenticated" in done.stderr
    assert not (tmp_path / "ledger").exists()


def test_the_environment_twins_configure_the_same(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, ["alice short"])
    env = {**os.environ, "MCP_LEDGER_AUTH": "bearer", "MCP_LEDGER_AUTH_TOKENS_FILE": str(tokens)}
    args = [
        sys.executable,
        "-m",
        "mcp_ledger.server",
        "serve",
        "--transport",
        "http",
        "--host",
        "0.0.0.0",
        "--port",
        "1",
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--auth-tokens-file: {tokens}, line 1: the token must be at least 24 characters" in done.stderr
    assert "alice short" not in done.stderr


async def test_allow_unauthenticated_starts_warns_and_records_that_no_one_was_authenticated(tmp_path: Path) -> None:
    with serve(tmp_path, "--allow-unauthenticated", host="0.0.0.0") as served:
        async with connect(served.url, None) as client:
            assert not (await client.call_tool("prov_stats", {})).is_error
    assert "WARNING: serving 0.0.0.0:" in served.stderr.read_text()
    assert "without authentication (--allow-unauthenticated)" in served.stderr.read_text()
    (span,) = served.spans()
    assert span["attributes"]["mcp-ledger.auth.method"] == "none" and "enduser.id" not in span["attributes"]


async def test_loopback_without_authentication_starts_quietly(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        async with httpx.AsyncClient(timeout=20) as http:
            response = await http.post(served.url, content=CALL, headers=HEADERS)
        assert response.status_code != 401
    assert "without authentication" not in served.stderr.read_text()


async def test_stdio_spans_name_the_local_os_user(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    async with stdio_session(server_params(ledger, env={"USER": "someone-else"})) as client:
        assert not (await client.call_tool("prov_stats", {})).is_error
    (span,) = provenance.Ledger(ledger).scan()
    assert span["attributes"]["enduser.id"] == pwd.getpwuid(os.geteuid()).pw_name  # not what $USER claims
    assert span["attributes"]["mcp-ledger.auth.method"] == "local"
    page = provenance.Ledger(ledger).query(principal=pwd.getpwuid(os.geteuid()).pw_name)
    assert [s["span_id"] for s in page["spans"]] == [span["span_id"]]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("myhost", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth": "bearer"}, "--auth bearer needs --auth-tokens-file"),
        ({"auth": "bearer", "auth_tokens_file": "/nonexistent/tokens"}, "cannot read /nonexistent/tokens"),
        ({"auth": "oauth"}, "--oauth-issuer is required"),
        ({"auth": "oauth", "oauth_issuer": "https://id.example", "oauth_resource": "https://mcp.example/mcp"},
         "exactly one of --oauth-jwks-url and --oauth-introspection-url"),
        ({"auth": "oauth", "oauth_issuer": "http://id.example", "oauth_resource": "https://mcp.example/mcp",
          "oauth_jwks_url": "https://id.example/jwks"}, "--oauth-issuer: use https"),
        ({"auth": "oauth", "oauth_issuer": "https://id.example", "oauth_resource": "https://mcp.example/mcp",
          "oauth_jwks_url": "https://id.example/jwks", "oauth_algorithms": ["HS256", "none"]},
         "--oauth-algorithms: HS256, none not accepted"),
    ],
)  # fmt: skip
def test_auth_settings_that_cannot_work_stop_the_start(settings: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        http_auth(ServerSettings(transport="http", **settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice", "expected 'NAME TOKEN' or 'NAME TOKEN POLICY'"),
        ("al ice tok" + "x" * 30 + " read-only extra", "expected 'NAME TOKEN'"),
        ("-alice " + "x" * 30, "the name must be"),
        ("alice " + "x" * 30 + " admin", "unknown policy"),
        ("alice " + "x" * 20, "at least 24 characters"),
        ("alice " + "x" * 29 + "\u00e9", "at least 24 characters"),
    ],
)
def test_a_bad_tokens_file_line_is_named_by_number_never_by_its_text(tmp_path: Path, line: str, problem: str) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, ["# comment", "", line])
    with pytest.raises(SettingsError) as caught:
        http_auth(ServerSettings(transport="http", auth="bearer", auth_tokens_file=tokens))
    assert f"{tokens}, line 3: " in str(caught.value) and problem in str(caught.value)
    assert "x" * 20 not in str(caught.value)


def test_the_same_token_for_two_names_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, ["alice " + "y" * 30, "bob " + "y" * 30])
    with pytest.raises(SettingsError, match=r"line 2: the same token as line 1;"):
        http_auth(ServerSettings(transport="http", auth="bearer", auth_tokens_file=tokens))
