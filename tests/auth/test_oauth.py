"""`--auth oauth`: an OAuth 2.1 resource server. A loopback issuer publishes keys the test made (JWKS) or
answers introspection; tokens signed by it are valid, expired, for another audience, from another
issuer, short of a scope — and only the valid ones get in, each seeing what its scopes allow."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mcp_ledger import provenance
from tests.auth.conftest import (
    CALL,
    HEADERS,
    READ_TOOLS,
    WRITE_TOOLS,
    Served,
    assert_nothing_holds,
    bearer,
    connect,
    free_port,
    serve,
)
from tests.harness import result_text

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not published
SCOPES = "mcp-ledger:read mcp-ledger:write mcp-ledger:destructive"


def _jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    return {
        "keys": [
            {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
            {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
        ]
    }


class Issuer:
    def __init__(self, httpserver: HTTPServer, resource: str) -> None:
        self.url = httpserver.url_for("/").rstrip("/")
        self.resource = resource

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": self.resource,
            "sub": "user-42",
            "client_id": "claude-desktop",
            "scope": "mcp-ledger:read",
            "iat": now,
            "exp": now + 600,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: Any = RSA_KEY, algorithm: str = "RS256", kid: str | None = "rsa-1", **changes: Any) -> str:
        headers = {"kid": kid} if kid else {}
        return jwt.encode(self.claims(**changes), key, algorithm=algorithm, headers=headers)


@pytest.fixture(scope="module")
def oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Issuer]]:
    tmp = tmp_path_factory.mktemp("oauth")
    with HTTPServer(host="127.0.0.1") as httpserver:
        httpserver.expect_request("/jwks.json").respond_with_json(_jwks())
        port = free_port()
        issuer = Issuer(httpserver, f"http://127.0.0.1:{port}/mcp")
        flags = [
            *("--auth", "oauth", "--oauth-issuer", issuer.url, "--oauth-resource", issuer.resource),
            *("--oauth-jwks-url", httpserver.url_for("/jwks.json"), "--toolsets", "docker,prov", "--allow-destructive"),
        ]
        with serve(tmp, *flags, port=port) as served:
            yield served, issuer


async def test_the_protected_resource_metadata_is_served_and_linked_from_the_challenge(
    oauth_server: tuple[Served, Issuer],
) -> None:
    served, issuer = oauth_server
    metadata_url = served.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    async with httpx.AsyncClient(timeout=20) as http:
        metadata = await http.get(metadata_url)
        challenge = await http.post(served.url, content=CALL, headers=HEADERS)
    assert metadata.status_code == 200
    document = metadata.json()
    assert document["resource"] == issuer.resource
    assert document["authorization_servers"] == [issuer.url]
    assert document["scopes_supported"] == SCOPES.split()
    assert document["bearer_methods_supported"] == ["header"]
    assert challenge.status_code == 401
    assert f'resource_metadata="{metadata_url}"' in challenge.headers["www-authenticate"]
    assert f'scope="{SCOPES}"' in challenge.headers["www-authenticate"]


async def test_a_valid_token_gets_in_sees_its_scopes_tools_and_its_spans_say_who(
    oauth_server: tuple[Served, Issuer],
) -> None:
    served, issuer = oauth_server
    token = issuer.token()
    async with connect(served.url, token) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        ok = await client.call_tool("prov_stats", {})
        refused = await client.call_tool("docker_container_stop", {"container": "web"})
    assert listed == READ_TOOLS
    assert not ok.is_error
    assert refused.is_error and "it needs mcp-ledger:write (OAuth)" in result_text(refused)
    writer = issuer.token(key=EC_KEY, algorithm="ES256", kid="ec-1", scope="mcp-ledger:write")
    async with connect(served.url, writer) as c:
        assert {tool.name for tool in (await c.list_tools()).tools} == READ_TOOLS | WRITE_TOOLS
    by_id = {span["span_id"]: span for span in served.spans()}
    assert ok.meta is not None and refused.meta is not None
    for result in (ok, refused):
        attributes = by_id[result.meta[provenance.SPAN_ID_META_KEY]]["attributes"]  # type: ignore[index]
        assert attributes["enduser.id"] == "user-42"
        assert attributes["mcp-ledger.auth.method"] == "oauth"
        assert attributes["mcp-ledger.auth.client_id"] == "claude-desktop"
        assert attributes["enduser.scope"] == "mcp-ledger:read"
        assert attributes["mcp-ledger.auth.token_fingerprint"].startswith("sha256:")
    assert_nothing_holds([token, token.split(".")[2]], served.ledger)


def _invalid_tokens(issuer: Issuer) -> dict[str, str]:
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(issuer.claims()).encode()).rstrip(b"=").decode()
        + "."
    )
    return {
        "expired": issuer.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "wrong audience": issuer.token(aud="https://other-server.example/mcp"),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "no expiry": issuer.token(exp=None),
        "signed by another key": issuer.token(key=OTHER_KEY),
        "unknown key id": issuer.token(kid="rsa-9"),
        "alg none": unsigned,
        "HS256 keyed with the public key": _hs256(issuer.claims(), public_pem),
        "not a JWT": "x" * 40,
    }


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """The algorithm-confusion attack: HMAC keyed with the public key (PyJWT refuses to make one, so by hand)."""
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","kid":"rsa-1","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    return signing + "." + part(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


async def test_expired_foreign_forged_and_unsigned_tokens_get_401_and_run_nothing(
    oauth_server: tuple[Served, Issuer],
) -> None:
    served, issuer = oauth_server
    before = len(served.spans())
    invalid = _invalid_tokens(issuer)
    async with httpx.AsyncClient(timeout=20) as http:
        for why, token in invalid.items():
            response = await http.post(served.url, content=CALL, headers=bearer(token))
            assert response.status_code == 401, why
            assert 'error="invalid_token"' in response.headers["www-authenticate"], why
    assert len(served.spans()) == before
    assert_nothing_holds(list(invalid.values()), served.stderr)


async def test_a_token_without_any_mcp_ledger_scope_gets_403_insufficient_scope(
    oauth_server: tuple[Served, Issuer],
) -> None:
    served, issuer = oauth_server
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(served.url, content=CALL, headers=bearer(issuer.token(scope="openid email")))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{SCOPES}"' in challenge


async def test_introspection_admits_only_active_tokens_for_this_resource(tmp_path: Path) -> None:
    seen: list[str | None] = []
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"

    def introspect(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        token = request.form.get("token", "")
        now = int(time.time())
        answers: dict[str, dict[str, Any]] = {
            "tok-active-" + "a" * 20: {"active": True, "sub": "svc-ci", "scope": "mcp-ledger:write", "exp": now + 60},
            "tok-inactive-" + "a" * 20: {"active": False},
            "tok-foreign-" + "a" * 20: {"active": True, "sub": "x", "scope": "mcp-ledger:read", "exp": now + 60},
        }
        answer = dict(answers.get(token, {"active": False}))
        if answer.get("active"):
            answer.update(iss=issuer, aud=resource if "foreign" not in token else "https://elsewhere.example/mcp")
        return Response(json.dumps(answer), content_type="application/json")

    secret = tmp_path / "client-secret"
    secret.write_text("s3cret-of-the-resource-server\n")
    with HTTPServer(host="127.0.0.1") as httpserver:
        httpserver.expect_request("/introspect", method="POST").respond_with_handler(introspect)
        issuer = httpserver.url_for("/").rstrip("/")
        flags = [
            *("--auth", "oauth", "--oauth-issuer", issuer, "--oauth-resource", resource),
            *("--oauth-introspection-url", httpserver.url_for("/introspect"), "--oauth-client-id", "mcp-ledger"),
            *("--oauth-client-secret-file", str(secret), "--toolsets", "prov"),
        ]
        with serve(tmp_path, *flags, port=port) as served:
            async with connect(served.url, "tok-active-" + "a" * 20) as client:
                assert not (await client.call_tool("prov_stats", {})).is_error
            async with httpx.AsyncClient(timeout=20) as http:
                for token in ("tok-inactive-" + "a" * 20, "tok-foreign-" + "a" * 20, "tok-unknown-" + "a" * 20):
                    answer = await http.post(served.url, content=CALL, headers=bearer(token))
                    assert answer.status_code == 401, token
    expected = "Basic " + base64.b64encode(b"mcp-ledger:s3cret-of-the-resource-server").decode()
    assert seen and set(seen) == {expected}
    (span,) = served.spans()
    assert span["attributes"]["enduser.id"] == "svc-ci" and span["attributes"]["enduser.scope"] == "mcp-ledger:write"
    assert_nothing_holds(["s3cret-of-the-resource-server", "tok-active-"], served.ledger, served.stderr)
