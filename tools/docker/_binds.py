"""Bind mounts for ``docker_container_run``, decided on the host path the engine will really mount.

The engine (dockerd, root on the host) follows symbolic links in a bind's source when it mounts it,
so the path a caller wrote says nothing by itself: a container given a writable bind of an allowed
directory can plant ``hostroot -> /`` there, and a later bind of ``<allowed>/hostroot/etc`` would
mount the host's ``/etc``. A host-path bind is therefore allowed only when

- the path, taken relative to an allowed root (as the operator spelled it, or its real path), has no
  ``..`` and exists, and no component below the root is a symbolic link (``lstat``, one by one);
- the root is resolved to its real path first (an operator may allow a path that is itself a link),
  and the target is a directory or a regular file (not a socket or a device);
- it is read-only, unless the operator allowed writable binds (``--docker-allow-bind-writes``).

The engine is given the resolved real path with the mode spelled out, never the caller's spelling.
A path that does not exist is refused: the engine would create it, as root, following links.

What remains (time of check to time of use): a container that already has a *writable* bind of an
allowed directory can swap a checked directory for a link after the check. ``docker_container_run``
checks again after the container is created and just before it is started, which leaves the
milliseconds between that second check and the engine's mount; ``docker_container_start`` and
``docker_container_restart`` check the binds of a container under an allowed root before the engine
mounts them again. Closing the window fully needs the engine to mount an opened file descriptor,
which its API cannot do. With writable binds off (the default) no container can plant a link at all.
The checks read this machine's filesystem: allow binds only for an engine on this machine.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from mcp_ledger.tools.group import InvalidArguments, ToolFailure

__all__ = ["Bind", "BindRefused", "check_mounted_binds", "resolve_binds"]

# Docker's own rule for volume names (daemon/names: RestrictedNamePattern).
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_FLAG = "--docker-allow-binds"
_WRITES_FLAG = "--docker-allow-bind-writes"


class BindRefused(ToolFailure):
    """A bind mount that would reach the host outside what the operator allowed."""


@dataclass(frozen=True)
class Bind:
    """One bind as the engine gets it: a real host path (or a volume name), a container path, a mode."""

    source: str
    target: str
    read_only: bool

    @property
    def spec(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


def resolve_binds(binds: Sequence[str], allowed_roots: Sequence[str], *, allow_writes: bool) -> list[Bind]:
    """Parse and decide every ``HOST_PATH:CONTAINER_PATH[:ro|rw]``; raise on the first that is not allowed."""
    roots = _real_roots(allowed_roots)
    return [_resolve(bind, roots, allowed_roots, allow_writes) for bind in binds]


def check_mounted_binds(binds: Iterable[str], allowed_roots: Sequence[str]) -> None:
    """Before the engine mounts an existing container's binds again (start, restart): a source under an
    allowed root must still be free of links. Binds outside every root were not made through this server
    (the operator's own containers) and are left to the operator."""
    roots = _real_roots(allowed_roots)
    for bind in binds:
        source = bind.split(":", 1)[0]
        if not source.startswith("/"):
            continue
        path = PurePosixPath(source)
        for _, real in roots:
            if path == real or real in path.parents:
                _walk(real, path.relative_to(real).parts, source)
                break


def _resolve(bind: str, roots: list[tuple[PurePosixPath, PurePosixPath]], allowed: Sequence[str], writes: bool) -> Bind:
    parts = bind.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise InvalidArguments("binds: each entry is HOST_PATH:CONTAINER_PATH[:ro|rw], the container path absolute")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "ro"
    if mode not in ("ro", "rw"):
        raise InvalidArguments(f"binds: the mode of {source} is ro or rw (got {mode[:16]!r})")
    if not source.startswith("/"):
        if not _VOLUME_NAME.fullmatch(source):
            raise InvalidArguments(f"binds: {source[:64]!r} is neither an absolute host path nor a volume name")
        return Bind(source, target, read_only=mode == "ro")  # a named volume: the engine's storage, not a host path
    if mode == "rw" and not writes:
        raise BindRefused(
            f"refused: writable bind of host path {source}; binds are read-only (:ro) unless the operator "
            f"allows writes with {_WRITES_FLAG}"
        )
    path = PurePosixPath(source)  # drops '.' and repeated slashes; keeps '..', refused below
    if ".." not in path.parts:
        for spelled, real in roots:
            for base in (spelled, real):
                if path == base or base in path.parents:
                    host = _walk(real, path.relative_to(base).parts, source)
                    return Bind(host, target, read_only=mode == "ro")
    shown = ", ".join(allowed) or "none"
    raise BindRefused(
        f"refused: bind mount of host path {source} is not allowed (allowed: {shown}); "
        f"the operator can allow paths with {_FLAG}"
    )


def _real_roots(allowed_roots: Sequence[str]) -> list[tuple[PurePosixPath, PurePosixPath]]:
    """(the operator's spelling, normalised; its real path) for each allowed root that exists."""
    roots = []
    for root in allowed_roots:
        if not root.startswith("/"):
            continue  # settings take absolute paths only; a relative one allows nothing
        real = os.path.realpath(root)
        if os.path.exists(real):
            roots.append((PurePosixPath(os.path.normpath(root)), PurePosixPath(real)))
    return roots


def _walk(root: PurePosixPath, parts: Sequence[str], source: str) -> str:
    """The real path of ``root/parts``; refuses a link, a missing component or an odd file type on the way."""
    current = root
    try:
        mode = os.lstat(current).st_mode
        for part in parts:
            current = current / part
            mode = os.lstat(current).st_mode
            if stat.S_ISLNK(mode):
                raise BindRefused(
                    f"refused: bind mount of host path {source}: {current} is a symbolic link, and binds follow "
                    "none (the engine would resolve it on the host, wherever it points); bind a path without links"
                )
    except FileNotFoundError:
        raise BindRefused(
            f"refused: bind mount of host path {source}: {current} does not exist; binds are only of existing "
            "paths (the engine would create it as root)"
        ) from None
    except (OSError, ValueError) as exc:  # ENOTDIR, ENAMETOOLONG, an embedded NUL …
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a usable path"
        raise BindRefused(f"refused: bind mount of host path {source[:256]}: {reason}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise BindRefused(f"refused: bind mount of host path {source}: only directories and regular files are bound")
    return str(current)
