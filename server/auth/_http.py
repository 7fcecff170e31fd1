"""The ASGI layer in front of streamable HTTP that admits only authenticated callers.

It is the outermost layer, before the JSON-RPC guard: a request without a valid token is answered
401 here, with a ``WWW-Authenticate`` challenge, and nothing behind it runs, so strangers leave no
span and cannot fill the ledger. An admitted request carries its caller the way the MCP SDK's own
auth middleware does (``scope["user"]``, ``scope["auth"]`` and the SDK's auth context variable), so
the SDK binds sessions to that caller, ``get_access_token()`` works in tools, and the provenance
middleware writes who called into the span.

Why not the SDK's ``RequireAuthMiddleware``: it sits inside the SDK's app, behind the guard; its
challenge names no ``scope``; and a verifier that raises becomes a 500.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials

from mcp_ledger.server.auth._caller import SCOPES, Caller

__all__ = ["HttpAuth", "is_loopback", "require_auth"]

logger = logging.getLogger("mcp_ledger.auth")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Verifier(Protocol):
    async def verify(self, token: str) -> Caller | None: ...


def is_loopback(host: str) -> bool:
    """Only an address no other machine can reach (a name other than localhost may resolve anywhere)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class HttpAuth:
    """How HTTP requests are authenticated: ``method`` (bearer, oauth) and the verifier of a token."""

    method: str
    verifier: Verifier
    resource: str | None = None  # oauth: this server's URL (RFC 9728 ``resource``)
    issuer: str | None = None
    scopes: list[str] = field(default_factory=lambda: list(SCOPES.values()))
    _metadata: tuple[str, ASGIApp] | None = None

    def __post_init__(self) -> None:
        if self.resource is not None and self.issuer is not None:
            # Given as text, the metadata model keeps the URLs as configured (an issuer is compared exactly,
            # RFC 8414); AnyHttpUrl() on its own would add a slash to a URL without a path.
            route = create_protected_resource_routes(
                resource_url=cast(AnyHttpUrl, self.resource),
                authorization_servers=[cast(AnyHttpUrl, self.issuer)],
                scopes_supported=self.scopes,
                resource_name="mcp-ledger",
            )[0]
            self.metadata_url = str(build_resource_metadata_url(AnyHttpUrl(self.resource)))
            self._metadata = (route.path, route)

    def challenge(self, error: str | None, description: str | None) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 §3; MCP: ``resource_metadata`` and every scope needed)."""
        parts = ['realm="mcp-ledger"']
        if error is not None:
            parts.append(f'error="{error}"')
        if description is not None:
            parts.append(f'error_description="{description}"')
        if self._metadata is not None:
            parts.append(f'resource_metadata="{self.metadata_url}"')
            parts.append(f'scope="{" ".join(self.scopes)}"')
        return "Bearer " + ", ".join(parts)


def _authorization(scope: Scope) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            return bytes(value)
    return None


def require_auth(auth: HttpAuth, inner: ASGIApp) -> ASGIApp:
    """``inner`` behind authentication: every HTTP request needs a valid bearer token, except the protected
    resource metadata document, which tells clients where to get one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await inner(scope, receive, send)
            return  # websockets: not served
        metadata = auth._metadata
        if metadata is not None and scope["path"] == metadata[0]:
            await metadata[1](scope, receive, send)
            return
        header = _authorization(scope)
        if header is None or header[:7].lower() != b"bearer ":
            await _refuse(send, auth, 401, None, "a bearer token is required")
            return
        token = header[7:].strip().decode("latin-1")
        try:
            caller = await auth.verifier.verify(token) if token else None
        except Exception:  # a verifier bug must refuse the request, never admit it or answer 500
            logger.exception("verifying a bearer token failed")
            caller = None
        if caller is None:
            logger.info("refused a request from %s: invalid token", _client(scope))
            await _refuse(send, auth, 401, "invalid_token", "the token is unknown, expired or for another resource")
            return
        if not caller.classes:
            await _refuse(send, auth, 403, "insufficient_scope", f"the token holds none of {', '.join(auth.scopes)}")
            return
        admitted = {**scope, "user": caller, "auth": AuthCredentials(caller.scopes)}
        reset = auth_context_var.set(caller)
        try:
            await inner(admitted, receive, send)
        finally:
            auth_context_var.reset(reset)

    return app


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


async def _refuse(send: Send, auth: HttpAuth, status: int, error: str | None, description: str) -> None:
    body = orjson.dumps({"error": error or "unauthorized", "error_description": description})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", auth.challenge(error, description).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
