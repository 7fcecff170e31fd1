"""The build context of ``docker_image_build``: a directory the operator allowed, packed as the engine wants it.

The context directory is decided like a bind mount (``_binds``): it must lie under a directory allowed
with ``--docker-allow-build-contexts`` (resolved to its real path), with no ``..`` and no symbolic link
between that directory and the context. Inside the context, a link is packed as a link (never followed,
as the Docker CLI does) and only when it resolves inside the context: a link out of it is refused, so
nothing outside the allowed directory can reach the engine. Devices, fifos and sockets are refused.

``.dockerignore`` is honoured (the Docker CLI's rules: ``*``, ``?``, ``[…]``, ``**``, ``!`` exceptions,
the last matching line wins, a directory's pattern covers what is under it); the Dockerfile and
``.dockerignore`` themselves are always sent, as the CLI does. The tar is written in a worker thread to a
spooled temporary file (memory up to 8 MiB, then disk) and refused, with what to do, past
:data:`MAX_CONTEXT_BYTES`.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from mcp_ledger.tools.docker._binds import _real_roots
from mcp_ledger.tools.group import InvalidArguments, ToolFailure, WorkerCall

__all__ = ["MAX_CONTEXT_BYTES", "BuildContext", "ContextRefused", "DockerIgnore", "pack_context", "resolve_context"]

MAX_CONTEXT_BYTES = 512 * 1024 * 1024
MAX_CONTEXT_FILES = 100_000
_FLAG = "--docker-allow-build-contexts"


class ContextRefused(ToolFailure):
    """A build context (or a file in it) that would reach outside what the operator allowed."""


@dataclass(frozen=True)
class BuildContext:
    directory: str  # the real path of the context
    dockerfile: str  # relative to it, POSIX


def resolve_context(context: str, dockerfile: str, allowed_roots: Sequence[str]) -> BuildContext:
    """The real context directory and the Dockerfile in it; raise when either is not allowed."""
    path = PurePosixPath(context)
    if not context.startswith("/") or ".." in path.parts:
        raise InvalidArguments("context: an absolute path without '..'")
    directory = None
    for spelled, real in _real_roots(allowed_roots):
        for base in (spelled, real):
            if path == base or base in path.parents:
                directory = _walk(real, path.relative_to(base).parts, context)
                break
        if directory is not None:
            break
    if directory is None:
        shown = ", ".join(allowed_roots) or "none"
        raise ContextRefused(
            f"refused: build context {context} is not under a directory the operator allowed (allowed: {shown}); "
            f"the operator can allow directories with {_FLAG}"
        )
    if not stat.S_ISDIR(os.lstat(directory).st_mode):
        raise ContextRefused(f"refused: build context {context} is not a directory")
    relative = PurePosixPath(dockerfile)
    if dockerfile.startswith("/") or ".." in relative.parts or not relative.parts:
        raise InvalidArguments("dockerfile: a path inside the context, without '..'")
    target = _walk(PurePosixPath(directory), relative.parts, f"{context}/{dockerfile}")
    if not stat.S_ISREG(os.lstat(target).st_mode):
        raise ContextRefused(f"refused: dockerfile {dockerfile} is not a regular file in the context")
    return BuildContext(directory, str(relative))


def _walk(root: PurePosixPath, parts: Sequence[str], shown: str) -> str:
    """``root/parts``, refusing a link, a missing component or an unusable path on the way (as ``_binds``)."""
    current = root
    try:
        os.lstat(current)
        for part in parts:
            current = current / part
            if stat.S_ISLNK(os.lstat(current).st_mode):
                raise ContextRefused(
                    f"refused: {shown}: {current} is a symbolic link; the context and the Dockerfile are "
                    "named by paths without links"
                )
    except FileNotFoundError:
        raise ContextRefused(f"refused: {shown}: {current} does not exist") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a usable path"
        raise ContextRefused(f"refused: {shown[:256]}: {reason}") from None
    return str(current)


class DockerIgnore:
    """The Docker CLI's ``.dockerignore`` rules (moby ``patternmatcher``), for paths relative to the context."""

    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[re.Pattern[str], bool]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            line = line[1:].strip() if exclusion else line
            cleaned = os.path.normpath(line).lstrip("/") if line else ""
            if cleaned in ("", "."):
                continue
            self.patterns.append((re.compile(_glob_regex(cleaned)), exclusion))
        self.has_exceptions = any(exclusion for _, exclusion in self.patterns)

    def ignored(self, relative: str) -> bool:
        parents = [str(p) for p in PurePosixPath(relative).parents if str(p) != "."]
        result = False
        for pattern, exclusion in self.patterns:
            matched = pattern.fullmatch(relative) is not None or (
                not exclusion and any(pattern.fullmatch(parent) for parent in parents)
            )
            if matched:
                result = not exclusion
        return result


def _glob_regex(pattern: str) -> str:
    """Go's filepath.Match syntax plus ``**`` (any number of directories), as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # '**/' matches zero or more directories
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:] if body.startswith("^") else body
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def pack_context(context: BuildContext, call: WorkerCall) -> tuple[IO[bytes], int, int]:
    """The context as an uncompressed tar in a spooled file (rewound): (file, tar bytes, files packed).

    Runs in a worker thread; raises :class:`ContextRefused` for a link out of the context, an odd file,
    or a context past the limits."""
    root = context.directory
    ignore_path = os.path.join(root, ".dockerignore")
    try:
        with open(ignore_path, encoding="utf-8", errors="replace") as handle:
            ignore = DockerIgnore(handle.read(1 << 20))
    except FileNotFoundError:
        ignore = DockerIgnore("")
    always = {context.dockerfile, ".dockerignore"}
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (handed to the caller, who closes it)
    files = 0
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for current, dirs, names in os.walk(root, followlinks=False):
                call.check()
                relative_dir = os.path.relpath(current, root)
                kept_dirs = []
                for name in sorted(dirs):
                    relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                    full = os.path.join(current, name)
                    if os.path.islink(full):
                        names.append(name)  # a link to a directory is packed as a link, not walked
                    elif (
                        ignore.ignored(relative)
                        and not ignore.has_exceptions
                        and not context.dockerfile.startswith(relative + "/")
                    ):
                        continue  # pruned: nothing under it can come back
                    else:
                        kept_dirs.append(name)
                        if not ignore.ignored(relative):
                            files = _add(tar, root, full, relative, files)
                dirs[:] = kept_dirs
                for name in sorted(names):
                    relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                    if relative not in always and ignore.ignored(relative):
                        continue
                    files = _add(tar, root, os.path.join(current, name), relative, files)
                    if out.tell() > MAX_CONTEXT_BYTES:
                        raise _too_large()
        size = out.tell()
        if size > MAX_CONTEXT_BYTES:
            raise _too_large()
        out.seek(0)
        return out, size, files
    except BaseException:
        out.close()
        raise


def _too_large() -> ContextRefused:
    return ContextRefused(
        f"refused: the build context is over {MAX_CONTEXT_BYTES // (1024 * 1024)} MiB as a tar; "
        "leave out what the build does not need with a .dockerignore, or build a smaller directory"
    )


def _owned_by_root(info: tarfile.TarInfo) -> None:
    info.uid = info.gid = 0
    info.uname = info.gname = ""


def _add(tar: tarfile.TarFile, root: str, full: str, relative: str, files: int) -> int:
    if files >= MAX_CONTEXT_FILES:
        raise ContextRefused(
            f"refused: the build context has more than {MAX_CONTEXT_FILES} files; "
            "leave some out with a .dockerignore, or build a smaller directory"
        )
    try:
        mode = os.lstat(full).st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(full)
            resolved = os.path.realpath(os.path.join(os.path.dirname(full), target))
            if not (resolved == root or resolved.startswith(root + os.sep)):
                raise ContextRefused(
                    f"refused: {relative} in the build context is a symbolic link that leads out of it; "
                    "a context holds its own files only"
                )
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ContextRefused(f"refused: {relative} in the build context is not a file, directory or link")
        if stat.S_ISREG(mode):
            # O_NOFOLLOW: a file swapped for a link since the check is refused, not followed.
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as handle:
                info = tar.gettarinfo(arcname=relative, fileobj=handle)
                if not info.isreg():
                    raise ContextRefused(f"refused: {relative} in the build context changed while it was packed")
                if tar.fileobj is not None and tar.fileobj.tell() + info.size > MAX_CONTEXT_BYTES:
                    raise _too_large()
                _owned_by_root(info)
                tar.addfile(info, handle)
        else:
            info = tar.gettarinfo(full, arcname=relative)
            _owned_by_root(info)
            tar.addfile(info)
    except ContextRefused:
        raise
    except OSError as exc:
        raise ContextRefused(f"the build context's {relative} cannot be read: {exc.strerror or 'error'}") from None
    return files + 1
