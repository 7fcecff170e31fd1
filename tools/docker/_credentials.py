"""Registry credentials for ``docker_image_push``, found as the Docker CLI finds them — and never shown.

The Docker config is ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``. For a registry the
CLI asks, in order, its ``credHelpers`` entry, the ``credsStore`` helper, then the ``auths`` entry
(``auth``: base64 ``user:password``, or ``identitytoken``). A helper is the program
``docker-credential-<name>``, given the server address on stdin, answering ``{"Username", "Secret"}``
(``<token>`` as the user: an identity token). Docker Hub's key is ``https://index.docker.io/v1/``.

What comes back is only ever put into the engine's ``X-Registry-Auth`` header. A failing helper's
output (stderr included) is dropped, never logged or quoted: it may echo what it was given.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from mcp_ledger.tools.group import UpstreamError

__all__ = ["DOCKER_HUB", "RegistryAuth", "find_auth", "registry_of"]

DOCKER_HUB = "https://index.docker.io/v1/"
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HELPER_TIMEOUT = 20.0


@dataclass(frozen=True)
class RegistryAuth:
    """The header for the engine, and where the credential came from (a fact safe to record)."""

    header: str = field(repr=False)
    source: str  # "none", "config auths", "credential helper <name>"
    secrets: tuple[str, ...] = field(default=(), repr=False)  # values to cut from any text shown


def registry_of(name: str) -> str:
    """The registry of a repository name, as the Docker CLI decides it (docker.io when none is named)."""
    first, slash, _ = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _config_dir(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else home / ".docker"


def _key_host(key: str) -> str:
    """A config key (``https://host/v1/``, ``host:port``, ``http://host``) as a bare host[:port]."""
    key = key.split("://", 1)[-1]
    return key.split("/", 1)[0]


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise UpstreamError(f"the Docker config {path} cannot be read as JSON; fix it or set DOCKER_CONFIG") from None
    return config if isinstance(config, dict) else {}


def _header(payload: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


async def find_auth(registry: str, environ: Mapping[str, str], home: Path) -> RegistryAuth:
    """The X-Registry-Auth header for ``registry`` (host[:port] or docker.io); anonymous when none is configured."""
    path = _config_dir(environ, home) / "config.json"
    config = await anyio.to_thread.run_sync(_read_config, path)
    server = DOCKER_HUB if registry == "docker.io" else registry
    helpers: dict[str, Any] = config["credHelpers"] if isinstance(config.get("credHelpers"), dict) else {}
    helper = helpers.get(registry) or helpers.get(server) or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = await _from_helper(helper, server)
        if found is not None:
            return found
    auths: dict[str, Any] = config["auths"] if isinstance(config.get("auths"), dict) else {}
    wanted = "index.docker.io" if registry == "docker.io" else registry
    for key, entry in auths.items():
        if isinstance(entry, dict) and _key_host(str(key)) in (wanted, registry):
            return _from_entry(entry, server)
    return RegistryAuth(_header({}), "none")


def _from_entry(entry: dict[str, Any], server: str) -> RegistryAuth:
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        token = entry["identitytoken"]
        return RegistryAuth(_header({"identitytoken": token, "serveraddress": server}), "config auths", (token,))
    try:
        user, _, password = base64.b64decode(str(entry.get("auth") or ""), validate=False).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(f"the Docker config's auth entry for {server} is not base64 user:password") from None
    if not user and not password:
        return RegistryAuth(_header({}), "none")
    header = _header({"username": user, "password": password, "serveraddress": server})
    return RegistryAuth(header, "config auths", tuple(s for s in (password, entry.get("auth")) if s))


async def _from_helper(name: str, server: str) -> RegistryAuth | None:
    """``docker-credential-<name> get``; None when it has no credential for the server."""
    label = f"credential helper {name}"
    if not _HELPER_NAME.fullmatch(name):
        raise UpstreamError(
            f"the Docker config names a credential helper that is not a plain program name ({label[:80]})"
        )
    try:
        process = await asyncio.create_subprocess_exec(
            f"docker-credential-{name}",
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ},
        )
    except OSError:
        raise UpstreamError(
            f"the Docker config names {label}, but docker-credential-{name} is not on PATH; "
            "install it or fix the config"
        ) from None
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(server.encode()), _HELPER_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise UpstreamError(f"{label} did not answer in {_HELPER_TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        # "credentials not found in native keychain" and the like: no credential, not a failure.
        return None
    try:
        answer = json.loads(stdout)
        user, secret = str(answer.get("Username") or ""), str(answer.get("Secret") or "")
    except (ValueError, AttributeError):
        raise UpstreamError(f"{label} answered something other than its JSON") from None
    if not secret:
        return None
    if user == "<token>":
        return RegistryAuth(_header({"identitytoken": secret, "serveraddress": server}), label, (secret,))
    header = _header({"username": user, "password": secret, "serveraddress": server})
    return RegistryAuth(header, label, (secret,))
