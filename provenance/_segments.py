"""Segment files on disk: naming, discovery, liveness (flock) and torn-tail recovery.

A ledger directory holds one or more *chains*, one per writer process. A chain is a sequence of
segment files named ``<chain>.<index>.jsonl`` (index zero-padded), each starting with a header line.
A writer holds an exclusive ``flock`` on the segment it is appending to, so a segment that can be
locked by someone else belongs to a writer that is gone.

An open segment is reserved ahead of its last line and that space reads as zero bytes (see
``_store``): a reader's data ends at the first zero byte (no JSON line contains one; JSON escapes
it), and a dead writer's zero tail is cut by torn-tail recovery.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = [
    "Segment",
    "content_end",
    "default_ledger_dir",
    "iter_lines",
    "list_chains",
    "recover_torn_tails",
    "segment_is_live",
]

logger = logging.getLogger("mcp_ledger.store")

SEGMENT_SUFFIX = ".jsonl"
TORN_SUFFIX = ".torn"
_SEGMENT_RE = re.compile(r"^(?P<chain>[A-Za-z0-9_-]+)\.(?P<index>\d{6})\.jsonl$")


def default_ledger_dir() -> Path:
    """``$MCP_LEDGER_DIR``, else ``$XDG_STATE_HOME/mcp-ledger``, else ``~/.local/state/mcp-ledger``."""
    explicit = os.environ.get("MCP_LEDGER_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state).expanduser() if state else Path.home() / ".local" / "state"
    return base / "mcp-ledger"


@dataclass(frozen=True, order=True)
class Segment:
    chain: str
    index: int
    path: Path

    @classmethod
    def parse(cls, path: Path) -> Segment | None:
        match = _SEGMENT_RE.match(path.name)
        if match is None:
            return None
        return cls(match["chain"], int(match["index"]), path)


def segment_name(chain: str, index: int) -> str:
    return f"{chain}.{index:06d}{SEGMENT_SUFFIX}"


def list_chains(directory: Path) -> dict[str, list[Segment]]:
    """Every chain in ``directory`` with its segments in order."""
    chains: dict[str, list[Segment]] = {}
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return chains
    for path in entries:
        segment = Segment.parse(path)
        if segment is not None:
            chains.setdefault(segment.chain, []).append(segment)
    for segments in chains.values():
        segments.sort()
    return dict(sorted(chains.items()))


def segment_is_live(path: Path) -> bool:
    """True while a writer holds the segment's lock (the writer may be this very process)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False


def content_end(data: bytes, start: int = 0) -> int:
    """Where the written data ends: the first zero byte at or after ``start`` (the reserved tail), or the end."""
    end = data.find(b"\x00", start)
    return len(data) if end < 0 else end


def iter_lines(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, line)`` for every newline-terminated line before the reserved zero tail; an
    unterminated last line (one being written) is not yielded."""
    pos = start
    limit = content_end(data, start)
    find = data.find
    while True:
        end = find(b"\n", pos, limit)
        if end < 0:
            return
        yield pos, data[pos:end]
        pos = end + 1


def _torn_tail_start(data: bytes) -> int | None:
    """Offset where a torn last line starts, or None when the file ends cleanly.

    A crash can leave a partial line (no newline) or, after a power loss, a last line whose bytes are
    garbage although the size persisted: both count as torn. Only the last line is examined. ``data``
    is the segment without its reserved zero tail.
    """
    if not data:
        return None
    last_nl = data.rfind(b"\n")
    if last_nl != len(data) - 1:
        return last_nl + 1
    prev_nl = data.rfind(b"\n", 0, last_nl)
    line = data[prev_nl + 1 : last_nl]
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        return prev_nl + 1
    return None if isinstance(parsed, dict) else prev_nl + 1


def recover_torn_tails(directory: Path) -> list[Path]:
    """Set aside torn last lines of segments whose writer is gone; return the segments repaired.

    The torn bytes are appended to ``<segment>.torn`` and the segment is cut back to its last good
    line, so its chain ends, verifiably, there. Segments locked by a live writer are never touched.
    """
    repaired: list[Path] = []
    for segments in list_chains(directory).values():
        for segment in segments:
            if _recover_one(segment.path):
                repaired.append(segment.path)
    return repaired


def _recover_one(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        # The space a writer that died had reserved ahead: zero bytes, not data.
        written = len(data.rstrip(b"\x00"))
        cut = _torn_tail_start(data[:written])
        if cut is None:
            if written == len(data):
                return False
            os.ftruncate(fd, written)
            os.fsync(fd)
            logger.info("ledger segment %s: cut the space its writer had reserved (it is gone)", path.name)
            return True
        torn_path = path.with_name(path.name + TORN_SUFFIX)
        with open(torn_path, "ab") as torn:
            torn.write(data[cut:written])
            torn.flush()
            os.fsync(torn.fileno())
        os.ftruncate(fd, cut)
        os.fsync(fd)
        logger.warning(
            "ledger segment %s ended with a torn line (%d bytes) from a writer that is gone; "
            "moved it to %s and ended the chain at the last good line",
            path.name,
            written - cut,
            torn_path.name,
        )
        return True
    finally:
        os.close(fd)
