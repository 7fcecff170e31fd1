"""Segment files on disk: naming, discovery, liveness (flock) and torn-tail recovery.

A ledger directory holds one or more *chains*, one per writer process. A chain is a sequence of
segment files named ``<chain>.<index>.jsonl`` (index zero-padded), each starting with a header line.
A writer holds an exclusive ``flock`` on the segment it is appending to, so a segment that can be
locked by someone else belongs to a writer that is gone. That holds from a segment's first moment: it
is created as ``<name>.new``, locked, given its header and only then renamed into place, so a crash
while creating it never leaves a segment without a header (only a ``.new`` file, never read).

An open segment is reserved ahead of its last line and that space reads as zero bytes (see
``_store``): a reader's data ends at the first zero byte (no JSON line contains one; JSON escapes
it), and a dead writer's zero tail is cut by torn-tail recovery.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import re
import time
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
    "unfinished_name",
]

logger = logging.getLogger("mcp_ledger.store")

SEGMENT_SUFFIX = ".jsonl"
TORN_SUFFIX = ".torn"
UNFINISHED_SUFFIX = ".new"  # a segment being created: its header goes in before it is renamed into place
_SEGMENT_RE = re.compile(r"^(?P<chain>[A-Za-z0-9_-]+)\.(?P<index>\d{6})\.jsonl$")
_UNFINISHED_RE = re.compile(r"^[A-Za-z0-9_-]+\.\d{6}\.jsonl\.new$")


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


def unfinished_name(chain: str, index: int) -> str:
    return segment_name(chain, index) + UNFINISHED_SUFFIX


def list_chains(directory: Path) -> dict[str, list[Segment]]:
    """Every chain in ``directory`` with its segments in order."""
    return _scan_directory(directory)[0]


def _scan_directory(directory: Path) -> tuple[dict[str, list[Segment]], list[Path]]:
    """The chains in ``directory``, and the segments being created (or left unfinished by a crash)."""
    chains: dict[str, list[Segment]] = {}
    unfinished: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return chains, unfinished
    for path in entries:
        segment = Segment.parse(path)
        if segment is not None:
            chains.setdefault(segment.chain, []).append(segment)
        elif _UNFINISHED_RE.match(path.name):
            unfinished.append(path)
    for segments in chains.values():
        segments.sort()
    return dict(sorted(chains.items())), sorted(unfinished)


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
    """Offset where a torn last line starts, or None when the data ends cleanly.

    A crash can leave a partial line (no newline) or, after a power loss, a last line whose bytes are
    garbage although the size persisted: both count as torn. Only the last line is examined. ``data``
    is the end of a segment without its reserved zero tail: the whole segment, or a window holding at
    least two line breaks.
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


_TAIL_WINDOW = 64 * 1024


def _read_tail(fd: int, size: int) -> tuple[int, bytes]:
    """``(offset, data)``: the end of a segment's written data, without its reserved zero tail, from
    offset 0 or from far enough back to hold two line breaks. Reads the tail only, never the history."""
    end = size
    window = _TAIL_WINDOW
    while end > 0:  # back over the zero tail (a dead writer's reserved space: a few hundred KiB at most)
        start = max(0, end - window)
        chunk = os.pread(fd, end - start, start)
        stripped = len(chunk.rstrip(b"\x00"))
        if stripped:
            end = start + stripped
            break
        end = start
    start = max(0, end - window)
    data = os.pread(fd, end - start, start)
    while start > 0 and data.count(b"\n", 0, len(data)) < 2:  # a last line longer than the window
        window *= 4
        wider = max(0, end - window)
        data = os.pread(fd, start - wider, wider) + data
        start = wider
    return start, data


def recover_torn_tails(directory: Path) -> list[Path]:
    """Repair what writers that are gone left at the end of their chains; return the files repaired.

    Only the last two segments of a chain can still be open (a writer opens the next segment before
    it closes the one before), so only their tails are read, never the history: start-up costs the
    same on any ledger size. A torn last line is appended to ``<segment>.torn`` and the segment cut
    back to its last good line, so its chain ends, verifiably, there; the zero bytes a writer had
    reserved ahead are cut; a last segment left with no line at all (a power loss while it was
    created) is removed; a segment its writer never finished creating (``.new``, see ``_store``) is
    removed. Files locked by a live writer are never touched.
    """
    repaired: list[Path] = []
    chains, unfinished = _scan_directory(Path(directory))
    for segments in chains.values():
        repaired += _recover_chain(segments)
    for path in unfinished:
        if _remove_unfinished(path):
            repaired.append(path)
    return repaired


def _recover_chain(segments: list[Segment]) -> list[Path]:
    repaired: list[Path] = []
    last = True
    examined = 0
    for segment in reversed(segments):
        outcome = _recover_one(segment.path, last=last)
        if outcome is _Outcome.LIVE:
            break  # a live writer's chain is its own business
        if outcome is not _Outcome.CLEAN:
            repaired.append(segment.path)
        if outcome is _Outcome.REMOVED:
            continue  # the segment before is now the chain's last
        examined += 1
        last = False
        if examined == 2:
            break
    return repaired


class _Outcome(enum.Enum):
    LIVE = "live"
    CLEAN = "clean"
    REPAIRED = "repaired"
    REMOVED = "removed"


def _recover_one(path: Path, *, last: bool) -> _Outcome:
    """Repair one segment of a dead writer: cut its zero tail and, when it is its chain's ``last``
    segment, set aside a torn last line (a segment left with nothing is removed)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return _Outcome.CLEAN
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _Outcome.LIVE
            raise
        size = os.fstat(fd).st_size
        offset, data = _read_tail(fd, size)
        written = offset + len(data)
        cut = _torn_tail_start(data) if last else None
        if cut is None:
            if written == size:
                return _Outcome.CLEAN
            if written == 0:  # no line at all: a dead writer's last segment goes; elsewhere it is damage
                return _remove(path, size) if last else _Outcome.CLEAN
            # No fsync: a cut lost to a power loss comes back as zeros, and is cut again.
            os.ftruncate(fd, written)
            logger.info("ledger segment %s: cut the space its writer had reserved (it is gone)", path.name)
            return _Outcome.REPAIRED
        cut += offset
        torn_path = path.with_name(path.name + TORN_SUFFIX)
        with open(torn_path, "ab") as torn:
            torn.write(data[cut - offset :])
            torn.flush()
            os.fsync(torn.fileno())
        logger.warning(
            "ledger segment %s ended with a torn line (%d bytes) from a writer that is gone; "
            "moved it to %s and ended the chain at the last good line",
            path.name,
            written - cut,
            torn_path.name,
        )
        if cut == 0:
            return _remove(path, size)
        os.ftruncate(fd, cut)
        return _Outcome.REPAIRED
    finally:
        os.close(fd)


def _remove(path: Path, size: int) -> _Outcome:
    """Remove a dead writer's last segment that holds no line (the caller holds its lock)."""
    path.unlink(missing_ok=True)
    logger.warning(
        "ledger segment %s held no line (%d zero bytes; its writer died while creating it): removed it",
        path.name,
        size,
    )
    return _Outcome.REMOVED


UNFINISHED_MAX_AGE = 60.0  # seconds; a live writer renames its new segment into place within milliseconds


def _remove_unfinished(path: Path) -> bool:
    """Remove a ``.new`` segment whose writer is gone; it was never part of a chain."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # Between creating the file and locking it a live writer holds no lock: only old files count.
        if time.time() - os.fstat(fd).st_mtime < UNFINISHED_MAX_AGE:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    logger.info("removed %s: a segment its writer never finished creating (it is gone)", path.name)
    return True
