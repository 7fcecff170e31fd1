"""Who is calling: an authenticated caller, the classes of tools it may use, and what its spans say about it.

Tools come in three classes, read off their annotations: ``read`` (read-only), ``write`` (changes
something, or reads credentials out), ``destructive`` (deletes what no call brings back). A caller
holds classes through OAuth scopes (``mcp-ledger:read``, ``mcp-ledger:write``,
``mcp-ledger:destructive``; each implies the ones before it) or a tokens-file policy (``read-only``,
``read-write``, ``all``). :class:`CallerGate` narrows ``tools/list`` and refuses ``tools/call`` to
what the caller holds, on top of the server's own gating; the refusal is an error result, so the
provenance middleware around it records the call's span.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp_types import CallToolResult, TextContent

__all__ = [
    "CLASSES",
    "SCOPES",
    "Caller",
    "CallerGate",
    "caller_span_attributes",
    "classes_from_scopes",
    "local_principal",
    "token_fingerprint",
    "tool_class",
]

READ, WRITE, DESTRUCTIVE = "read", "write", "destructive"
CLASSES = (READ, WRITE, DESTRUCTIVE)
SCOPES = {cls: f"mcp-ledger:{cls}" for cls in CLASSES}
_IMPLIED = {READ: (READ,), WRITE: (READ, WRITE), DESTRUCTIVE: CLASSES}
POLICIES = {"read-only": READ, "read-write": WRITE, "all": DESTRUCTIVE}

# Span attribute keys (OpenTelemetry's enduser.* where one exists).
ENDUSER_ID = "enduser.id"
ENDUSER_SCOPE = "enduser.scope"
AUTH_METHOD = "mcp-ledger.auth.method"
TOKEN_FINGERPRINT = "mcp-ledger.auth.token_fingerprint"
CLIENT_ID = "mcp-ledger.auth.client_id"

_ATTRIBUTE_CHARS = 256


def token_fingerprint(token: str | bytes) -> str:
    """A short digest that tells tokens apart in spans and logs; the token cannot be read back from it."""
    raw = token.encode() if isinstance(token, str) else token
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def classes_from_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The tool classes a set of OAuth scopes grants (a scope implies the classes below it)."""
    granted: set[str] = set()
    for cls in CLASSES:
        if SCOPES[cls] in scopes:
            granted.update(_IMPLIED[cls])
    return frozenset(granted)


def tool_class(read_only: bool, destructive: bool, exports_credentials: bool = False) -> str:
    """A tool's class from its annotations; reading credentials out counts as a write (as --read-only has it)."""
    if destructive:
        return DESTRUCTIVE
    if not read_only or exports_credentials:
        return WRITE
    return READ


def _bounded(text: str) -> str:
    return text if len(text) <= _ATTRIBUTE_CHARS else text[: _ATTRIBUTE_CHARS - 1] + "…"


class Caller(AuthenticatedUser):
    """An authenticated caller as the SDK's auth middleware would set it (``scope["user"]``), plus its
    tool classes and the attributes its spans carry. ``access_token.token`` holds the token's
    fingerprint, never the token."""

    def __init__(
        self,
        *,
        principal: str,
        method: str,
        fingerprint: str,
        classes: frozenset[str],
        scopes: list[str],
        client_id: str | None = None,
        expires_at: int | None = None,
        resource: str | None = None,
        issuer: str | None = None,
    ) -> None:
        access = AccessToken(
            token=fingerprint,
            client_id=client_id or principal,
            scopes=scopes,
            expires_at=expires_at,
            resource=resource,
            subject=principal,
            claims={"iss": issuer} if issuer else None,
        )
        super().__init__(access)
        self.principal = _bounded(principal)
        self.method = method
        self.classes = classes
        attributes: dict[str, Any] = {
            ENDUSER_ID: self.principal,
            AUTH_METHOD: method,
            TOKEN_FINGERPRINT: fingerprint,
            ENDUSER_SCOPE: _bounded(" ".join(scopes)),
        }
        if client_id:
            attributes[CLIENT_ID] = _bounded(client_id)
        self.span_attributes: Mapping[str, Any] = attributes

    def allows(self, cls: str) -> bool:
        return cls in self.classes

    def describe(self) -> str:
        held = ", ".join(SCOPES[cls] for cls in CLASSES if cls in self.classes) or "no mcp-ledger scope"
        return f"{self.principal!r} ({self.method}; holds {held})"


def current_caller() -> Caller | None:
    user = auth_context_var.get()
    return user if isinstance(user, Caller) else None


def caller_span_attributes() -> Mapping[str, Any] | None:
    """The current request's caller as span attributes (``ProvenanceMiddleware(caller=...)``)."""
    user = auth_context_var.get()
    return user.span_attributes if isinstance(user, Caller) else None


def local_principal() -> dict[str, Any]:
    """Who calls a stdio server: the OS user that runs it (the client launched it as that user).

    Read from the process's user id, not from $USER, which the client's configuration sets."""
    try:
        import pwd

        name = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        try:
            name = getpass.getuser()
        except Exception:
            name = f"uid:{os.geteuid()}"
    return {ENDUSER_ID: _bounded(name), AUTH_METHOD: "local"}


def _refusal(caller: Caller | None, tool: str, cls: str) -> dict[str, Any]:
    if caller is None:
        text = f"forbidden: {tool} needs an authenticated caller"
    else:
        text = (
            f"forbidden: {tool} is a {cls} tool and the caller {caller.describe()} may not call it; "
            f"it needs {SCOPES[cls]} (OAuth) or a tokens-file policy of "
            f"{'read-write or all' if cls == WRITE else 'all'}"
        )
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


class CallerGate(ServerMiddleware[Any]):
    """Each caller sees and calls only the tools of its classes (installed when HTTP has authentication).

    It sits after the provenance middleware, so a refused call still gets its one span. Without an
    authenticated caller in the request it offers nothing: the HTTP layer admits no one without one.
    """

    def __init__(self, classes: Mapping[str, str]) -> None:
        """``classes``: each served tool's class (:func:`tool_class`)."""
        self.classes = dict(classes)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        method = ctx.method
        if method == "tools/call":
            name = (ctx.params or {}).get("name")
            cls = self.classes.get(name) if isinstance(name, str) else None
            if cls is None:  # not a tool this server serves: the SDK answers "Unknown tool"
                return await call_next(ctx)
            caller = current_caller()
            if caller is None or not caller.allows(cls):
                return _refusal(caller, str(name), cls)
            return await call_next(ctx)
        if method != "tools/list":
            return await call_next(ctx)
        result = await call_next(ctx)
        caller = current_caller()
        # A listing made for one caller must not be served to another from a shared cache (2026-07-28 era).
        if isinstance(result, dict):
            result["tools"] = [t for t in result.get("tools") or () if self._visible(caller, t.get("name"))]
            if "cacheScope" in result:
                result["cacheScope"] = "private"
            return result
        tools = getattr(result, "tools", None)
        if tools is None:
            return result
        visible = [t for t in tools if self._visible(caller, t.name)]
        update: dict[str, Any] = {"tools": visible}
        if hasattr(result, "cache_scope"):
            update["cache_scope"] = "private"
        return result.model_copy(update=update)  # type: ignore[union-attr]

    def _visible(self, caller: Caller | None, name: Any) -> bool:
        cls = self.classes.get(name) if isinstance(name, str) else None
        return caller is not None and cls is not None and caller.allows(cls)
