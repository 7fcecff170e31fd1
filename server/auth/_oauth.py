"""``--auth oauth``: this server as an OAuth 2.1 resource server (MCP authorization, RFC 9728).

A token is accepted only when its signature (or the issuer's introspection endpoint), expiry,
issuer and audience say it is for this server: a token issued for another resource is refused
(RFC 8707). JWTs are checked with PyJWT (the MCP SDK's own dependency, with ``cryptography``)
against the issuer's JWKS, fetched with httpx2 (the SDK's HTTP client) and cached; an unknown key id
re-fetches the set at most every 30 s, so forged key ids cannot make the server hammer the issuer.
Only asymmetric algorithms are accepted (never ``none`` or a shared-secret HMAC). The caller is the
token's ``sub``; its classes come from the ``mcp-ledger:*`` scopes in ``scope`` (or ``scp``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx2
import jwt
import orjson

from mcp_ledger.server.auth._caller import Caller, classes_from_scopes, token_fingerprint

__all__ = ["ALLOWED_ALGORITHMS", "IntrospectionVerifier", "JwtVerifier", "caller_from_claims"]

logger = logging.getLogger("mcp_ledger.auth")

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 30
_JWKS_TTL = 300.0
_JWKS_MIN_REFRESH = 30.0
_MAX_TOKEN_CHARS = 16 * 1024
_MAX_SCOPES = 64
_INTROSPECTION_CACHE = 1024
_INTROSPECTION_TTL = 30.0


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        items = raw.split()
    elif isinstance(raw, list):
        items = [item for item in raw if isinstance(item, str)]
    else:
        items = []
    return list(dict.fromkeys(items))[:_MAX_SCOPES]


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def caller_from_claims(claims: Mapping[str, Any], token: str, accepted: Sequence[str]) -> Caller | None:
    """The caller a validated token speaks for; None when it names no one."""
    subject = claims.get("sub")
    client_id = claims.get("client_id", claims.get("azp"))
    client_id = client_id if isinstance(client_id, str) and client_id else None
    principal = subject if isinstance(subject, str) and subject else client_id
    if principal is None:
        return None
    scopes = _scopes(claims)
    exp = claims.get("exp")
    resource = next((aud for aud in _audiences(claims) if aud in accepted), None)
    issuer = claims.get("iss")
    return Caller(
        principal=principal,
        method="oauth",
        fingerprint=token_fingerprint(token),
        classes=classes_from_scopes(scopes),
        scopes=scopes,
        client_id=client_id,
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        resource=resource,
        issuer=issuer if isinstance(issuer, str) else None,
    )


class _Jwks:
    """The issuer's signing keys by key id, fetched on first use and kept for five minutes."""

    def __init__(self, url: str, algorithms: Sequence[str]) -> None:
        self.url = url
        self.algorithms = set(algorithms)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched = 0.0
        self._lock = anyio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        now = time.monotonic()
        if not self._keys or now - self._fetched > _JWKS_TTL:
            await self._refresh()
        key = self._find(kid)
        if key is None and time.monotonic() - self._fetched > _JWKS_MIN_REFRESH:
            await self._refresh()  # the issuer may have rotated its keys
            key = self._find(kid)
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # A token without a key id is checked against the one key, if there is exactly one.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            # At most one fetch per 30 s, failed ones included: an issuer that is down is not asked per request.
            if self._fetched and time.monotonic() - self._fetched < _JWKS_MIN_REFRESH:
                return
            self._fetched = time.monotonic()
            try:
                async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
                    response = await http.get(self.url, headers={"accept": "application/json"})
                response.raise_for_status()
                data = response.json()
                keys: dict[str | None, jwt.PyJWK] = {}
                for item in data.get("keys", []) if isinstance(data, dict) else []:
                    if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                        continue
                    try:
                        key = jwt.PyJWK(item)
                    except jwt.PyJWTError:
                        continue  # a key type or algorithm this server does not take
                    if key.algorithm_name in self.algorithms or "alg" not in item:
                        keys[item.get("kid")] = key
            except (httpx2.HTTPError, ValueError) as exc:
                logger.warning("could not fetch the issuer's keys from %s: %s", self.url, type(exc).__name__)
                return
            self._keys = keys


def _jose_header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read only to pick the key and algorithm (PyJWT's reader costs ~20 µs more;
    ``jwt.decode`` reads it again and checks everything)."""
    head = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


class JwtVerifier:
    """Checks a JWT access token locally: signature (JWKS), ``exp``, ``iss``, ``aud``."""

    def __init__(self, *, issuer: str, audiences: Sequence[str], jwks_url: str, algorithms: Sequence[str]) -> None:
        self.issuer = issuer
        self.audiences = list(audiences)
        self.algorithms = list(algorithms)
        self._jwks = _Jwks(jwks_url, algorithms)

    async def verify(self, token: str) -> Caller | None:
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        header = _jose_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            return None
        kid = header.get("kid")
        try:
            key = await self._jwks.key(kid if isinstance(kid, str) else None)
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audiences,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            logger.info("refused a token (%s): %s", token_fingerprint(token), type(exc).__name__)
            return None
        return caller_from_claims(claims, token, self.audiences)


class IntrospectionVerifier:
    """Asks the issuer about each token (RFC 7662), authenticated as this resource server; answers are kept
    for up to 30 s (never past the token's expiry), by the token's digest."""

    def __init__(
        self, *, issuer: str, audiences: Sequence[str], url: str, client_id: str | None, client_secret: str | None
    ) -> None:
        self.issuer = issuer
        self.audiences = list(audiences)
        self.url = url
        self._auth = httpx2.BasicAuth(client_id, client_secret or "") if client_id else None
        self._cache: dict[bytes, tuple[float, Caller]] = {}

    async def verify(self, token: str) -> Caller | None:
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._cache.get(digest)
        now = time.time()
        if cached is not None and cached[0] > now:
            return cached[1]
        claims = await self._introspect(token)
        if claims is None or not self._valid(claims, now):
            return None
        caller = caller_from_claims(claims, token, self.audiences)
        if caller is not None:
            if len(self._cache) >= _INTROSPECTION_CACHE:
                self._cache.clear()
            until = now + _INTROSPECTION_TTL
            exp = claims.get("exp")
            self._cache[digest] = (min(until, float(exp)) if isinstance(exp, int | float) else until, caller)
        return caller

    async def _introspect(self, token: str) -> dict[str, Any] | None:
        try:
            async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
                response = await http.post(
                    self.url,
                    data={"token": token, "token_type_hint": "access_token"},
                    headers={"accept": "application/json"},
                    auth=self._auth or httpx2.USE_CLIENT_DEFAULT,
                )
            response.raise_for_status()
            data = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("token introspection at %s failed: %s", self.url, type(exc).__name__)
            return None
        return data if isinstance(data, dict) else None

    def _valid(self, claims: Mapping[str, Any], now: float) -> bool:
        if claims.get("active") is not True:
            return False
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS < now:
            return False
        if claims.get("iss") != self.issuer:
            return False
        return any(aud in self.audiences for aud in _audiences(claims))
