"""``--auth bearer``: callers named in a tokens file, one ``NAME TOKEN [POLICY]`` per line.

Only SHA-256 digests of the tokens are kept; a presented token is hashed and compared with every
entry in constant time (:func:`hmac.compare_digest`, no early exit). The file is checked for a change
(its size, modification time and inode) on every request and re-read when it changed, so adding or
revoking a caller needs no restart. At start a bad file stops the server; on a re-read a bad line is
left out (that caller is refused) and logged by line number — never with its text, which may hold a
token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from mcp_ledger.server.auth._caller import _IMPLIED, POLICIES, SCOPES, Caller, token_fingerprint

__all__ = ["TokensFile", "TokensFileError"]

logger = logging.getLogger("mcp_ledger.auth")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
# RFC 6750's b64token: what an Authorization: Bearer header can carry.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
MIN_TOKEN_CHARS = 24
_MAX_FILE_BYTES = 1024 * 1024
_HOW_TO_MAKE = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class TokensFileError(ValueError):
    """The tokens file cannot be used; the message names the line, never its text."""


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    caller: Caller


def _parse(text: str, path: Path) -> tuple[list[_Entry], list[str]]:
    """The entries and, for each line left out, why (by line number)."""
    entries: list[_Entry] = []
    problems: list[str] = []
    seen: dict[bytes, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        # "<path>, line N" rather than "<path>:N": the log's redaction would read "tokens:2" as a secret.
        where = f"{path}, line {number}"
        if len(fields) not in (2, 3):
            problems.append(f"{where}: expected 'NAME TOKEN' or 'NAME TOKEN POLICY' ({len(fields)} fields)")
            continue
        name, token = fields[0], fields[1]
        policy = fields[2] if len(fields) == 3 else "all"
        if not _NAME_RE.match(name):
            problems.append(f"{where}: the name must be 1-64 letters, digits or ._@+-, starting with a letter or digit")
            continue
        if policy not in POLICIES:
            problems.append(f"{where}: unknown policy; use one of {', '.join(POLICIES)}")
            continue
        if len(token) < MIN_TOKEN_CHARS or not _TOKEN_RE.match(token):
            problems.append(
                f"{where}: the token must be at least {MIN_TOKEN_CHARS} characters of A-Z a-z 0-9 - . _ ~ + / "
                f"(then = padding); {_HOW_TO_MAKE}"
            )
            continue
        digest = hashlib.sha256(token.encode()).digest()
        if digest in seen:
            problems.append(f"{where}: the same token as {seen[digest].rsplit(', ', 1)[-1]}; give each caller its own")
            continue
        seen[digest] = where
        classes = frozenset(_IMPLIED[POLICIES[policy]])
        scopes = [SCOPES[cls] for cls in ("read", "write", "destructive") if cls in classes]
        caller = Caller(
            principal=name, method="bearer", fingerprint=token_fingerprint(token), classes=classes, scopes=scopes
        )
        entries.append(_Entry(digest, caller))
    return entries, problems


class TokensFile:
    """The callers of a tokens file, kept as digests, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        """Read the file now; any problem raises :class:`TokensFileError` (the server does not start)."""
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        signature, text = self._read()
        entries, problems = _parse(text, self.path)
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise TokensFileError("; ".join(problems[:5]) + more)
        if not entries:
            raise TokensFileError(f"{self.path} names no callers; add lines of 'NAME TOKEN [POLICY]' ({_HOW_TO_MAKE})")
        self._entries = entries
        self._signature: tuple[int, int, int] | None = signature

    def _read(self) -> tuple[tuple[int, int, int], str]:
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise TokensFileError(f"{self.path} is not a regular file")
                data = f.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise TokensFileError(f"cannot read {self.path} ({exc.strerror or exc})") from None
        if len(data) > _MAX_FILE_BYTES:
            raise TokensFileError(f"{self.path} is larger than 1 MiB")
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise TokensFileError(f"{self.path} is not UTF-8 text") from None
        if info.st_mode & 0o077:
            logger.warning("%s can be read by other users; chmod 600 it", self.path)
        return (info.st_size, info.st_mtime_ns, info.st_ino), text

    def _signature_now(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_size, info.st_mtime_ns, info.st_ino)

    def refresh(self) -> None:
        """Re-read the file if it changed; a file that is gone or unreadable admits no one until it is back."""
        signature = self._signature_now()
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:
                return
            if signature is None:
                logger.error("%s is gone: every request is refused until it is back", self.path)
                self._entries, self._signature = [], None
                return
            try:
                signature, text = self._read()
            except TokensFileError as exc:
                logger.error("%s; every request is refused until it is fixed", exc)
                self._entries, self._signature = [], signature
                return
            entries, problems = _parse(text, self.path)
            for problem in problems:
                logger.error("tokens file re-read: %s; that line is left out", problem)
            self._entries, self._signature = entries, signature
            logger.info("re-read %s: %d caller token(s)", self.path, len(entries))

    async def verify(self, token: str) -> Caller | None:
        """The caller whose token this is, or None. Every entry is compared (constant time per entry).

        A change of the file is noticed by one ``stat`` (a re-read of a small file blocks the loop briefly)."""
        self.refresh()
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Caller | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.caller
        return found
