"""Who may call over HTTP, and who called: authentication, per-caller gating, who-called span attributes.

``http_auth`` turns the settings into the HTTP layer's configuration (refusing to serve a
non-loopback address without authentication); ``require_auth`` is that layer; ``CallerGate`` narrows
the tools per caller; ``caller_span_attributes`` and ``local_principal`` say who called in each span.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from mcp_ledger.server.auth._caller import (
    CLASSES,
    SCOPES,
    Caller,
    CallerGate,
    caller_span_attributes,
    classes_from_scopes,
    local_principal,
    token_fingerprint,
    tool_class,
)
from mcp_ledger.server.auth._http import HttpAuth, is_loopback, require_auth
from mcp_ledger.server.auth._tokens import TokensFile, TokensFileError
from mcp_ledger.server.settings import ServerSettings, SettingsError

__all__ = [
    "CLASSES",
    "SCOPES",
    "UNAUTHENTICATED_WARNING",
    "Caller",
    "CallerGate",
    "HttpAuth",
    "TokensFile",
    "caller_span_attributes",
    "classes_from_scopes",
    "http_auth",
    "is_loopback",
    "local_principal",
    "require_auth",
    "token_fingerprint",
    "tool_class",
]

logger = logging.getLogger("mcp_ledger.auth")

UNAUTHENTICATED_WARNING = (
    "mcp-ledger serve: WARNING: serving {host}:{port} without authentication (--allow-unauthenticated): "
    "anyone who can reach this port can call every offered tool with this server's credentials and read "
    "its ledger"
)


def _url(value: str | None, flag: str, *, https_unless_loopback: bool = True) -> str:
    if not value:
        raise SettingsError(f"{flag} is required with --auth oauth")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"{flag}: expected an http(s) URL, got {value[:80]!r}")
    if https_unless_loopback and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(f"{flag}: use https (plain http is accepted for loopback addresses only)")
    return value


def http_auth(settings: ServerSettings) -> HttpAuth | None:
    """The HTTP authentication the settings ask for (None: none), checked now so that a bad setting stops the start.

    A non-loopback ``--host`` without authentication is refused unless ``--allow-unauthenticated``."""
    if settings.auth == "none":
        if not is_loopback(settings.host) and not settings.allow_unauthenticated:
            raise SettingsError(
                f"--host {settings.host} is not a loopback address and no authentication is configured: anyone "
                "who could reach the port could run every tool with this server's credentials. Configure "
                "--auth bearer --auth-tokens-file FILE (lines of 'NAME TOKEN [read-only|read-write|all]') or "
                "--auth oauth --oauth-issuer URL --oauth-resource URL --oauth-jwks-url URL; on a trusted "
                "network only, --allow-unauthenticated serves it open"
            )
        return None
    if settings.auth == "bearer":
        if settings.auth_tokens_file is None:
            raise SettingsError("--auth bearer needs --auth-tokens-file FILE (lines of 'NAME TOKEN [POLICY]')")
        try:
            return HttpAuth("bearer", TokensFile(settings.auth_tokens_file))
        except TokensFileError as exc:
            raise SettingsError(f"--auth-tokens-file: {exc}") from None
    # httpx and PyJWT load only for OAuth: a stdio server's start does not pay for them.
    from mcp_ledger.server.auth._oauth import ALLOWED_ALGORITHMS, IntrospectionVerifier, JwtVerifier

    issuer = _url(settings.oauth_issuer, "--oauth-issuer")
    resource = _url(settings.oauth_resource, "--oauth-resource")
    audiences = settings.oauth_audience or [resource]
    refused = sorted(set(settings.oauth_algorithms) - ALLOWED_ALGORITHMS)
    if refused:
        raise SettingsError(
            f"--oauth-algorithms: {', '.join(refused)} not accepted; use asymmetric ones: "
            f"{', '.join(sorted(ALLOWED_ALGORITHMS))}"
        )
    if bool(settings.oauth_jwks_url) == bool(settings.oauth_introspection_url):
        raise SettingsError("--auth oauth needs exactly one of --oauth-jwks-url and --oauth-introspection-url")
    verifier: JwtVerifier | IntrospectionVerifier
    if settings.oauth_jwks_url:
        verifier = JwtVerifier(
            issuer=issuer,
            audiences=audiences,
            jwks_url=_url(settings.oauth_jwks_url, "--oauth-jwks-url"),
            algorithms=settings.oauth_algorithms,
        )
    else:
        secret = None
        if settings.oauth_client_secret_file is not None:
            try:
                secret = settings.oauth_client_secret_file.expanduser().read_text().strip()
            except OSError as exc:
                raise SettingsError(f"--oauth-client-secret-file: cannot read it ({exc.strerror or exc})") from None
        verifier = IntrospectionVerifier(
            issuer=issuer,
            audiences=audiences,
            url=_url(settings.oauth_introspection_url, "--oauth-introspection-url"),
            client_id=settings.oauth_client_id,
            client_secret=secret,
        )
    return HttpAuth("oauth", verifier, resource=resource, issuer=issuer)
