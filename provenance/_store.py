"""The append-only, hash-chained span store: one chain per writer process.

Every line carries ``seq`` (gap-free within the chain) and ``prev`` (``sha256:`` of the previous
line's exact bytes, newline excluded). A chain starts with a header line (``seq`` 0, ``prev`` null);
each later segment starts with a header that continues the chain. Lines are in the kernel's page
cache before :meth:`SpanStore.append` returns, so a killed process loses nothing it acknowledged.

The open segment is written through a shared memory map rather than one ``write()`` per line: a
system call costs a few microseconds inside a busy server, more than everything else a span needs
but its digests. The file is reserved ahead with ``posix_fallocate`` (a full disk or a file-size
limit then fails the reservation, cleanly, instead of faulting a later store into the map) and its
pages are made writable in windows (``MADV_POPULATE_WRITE``), so most appends are a copy into memory.
Until the segment is closed, the file therefore ends in zero bytes after its last line; readers stop
at the first zero byte (``_segments.content_end``), and a writer that dies leaves that zero tail for
torn-tail recovery to cut. ``fsync``
follows the policy: ``always`` (the caller waits in :meth:`SpanStore.wait_durable`; concurrent callers
share one fsync — group commit), ``batch`` (at most every ``fsync_interval`` seconds), ``never``.

Every line takes one path into the chain, :meth:`SpanStore._write`: stamped (``v``, ``seq``,
``prev``), rotated into a new segment when the open one is full, copied in, and the chain advanced. A
line's own digest is not needed until the next line's ``prev``: it is taken then, or earlier by
:meth:`SpanStore.settle`, which a server calls once its answer has gone out.

Failures fail closed: a failed write leaves the store *failed* with the unrecorded spans held in
memory; :meth:`SpanStore.recover` retries them. The store owns a held record and decides what it
says: with ``on_failure="refuse"`` its call was answered with an error, and the record says so. A
failed fsync cannot be retried safely (the kernel may already have dropped the dirty pages), so it
fails the store for the life of the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from mcp_ledger.provenance._redact import canonical_json
from mcp_ledger.provenance._segments import recover_torn_tails, segment_name, unfinished_name
from mcp_ledger.provenance._span import mark_unrecorded

if TYPE_CHECKING:
    from mcp_ledger.provenance._checkpoint import CheckpointWriter

__all__ = ["SCHEMA_VERSION", "FsyncPolicy", "OnFailure", "RecordError", "SpanStore"]

logger = logging.getLogger("mcp_ledger.store")

SCHEMA_VERSION = 1
FsyncPolicy = Literal["always", "batch", "never"]
# What a failed write means for calls: refuse them until the ledger is writable, or run them unrecorded.
OnFailure = Literal["refuse", "allow"]
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_PENDING = 10_000


class RecordError(Exception):
    """A span could not be written to the ledger; the store is failed until it recovers."""


def line_digest(line: bytes) -> str:
    """A line's digest as the next line's ``prev`` holds it (OpenSSL's SHA-256: lines are ~1 KB or more)."""
    return "sha256:" + hashlib.sha256(line).hexdigest()


def new_chain_id() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-p{os.getpid()}-{secrets.token_hex(3)}"


# As canonical_json writes it, without OPT_NON_STR_KEYS (a third of the time of a line): a record with a
# key that is not a string fails here and takes canonical_json's path, which writes the same bytes. The
# newline comes with it (no copy of the line to add one).
_LINE_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_PAGE = mmap.PAGESIZE
_RESERVE_STEP = 256 * 1024  # file space reserved (and mapped) at a time
_POPULATE_WINDOW = 64 * 1024  # pages made writable at a time
_AHEAD = 16 * 1024  # what settle() keeps ready past the last line
# A copy of a fresh SHA-256 context skips OpenSSL's look-up of the algorithm by name and its set-up on every
# line (a fifth of the digest's time when the server's caches are cold); it is never updated itself.
_SHA256 = hashlib.sha256()
_ZEROS = memoryview(bytes(_RESERVE_STEP + _PAGE))
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14+; Python 3.11 lacks the name
_populate_supported = hasattr(mmap.mmap, "madvise")
# Reserving (posix_fallocate) and growing a mapping in place (mremap) are Linux's; elsewhere, and on a
# filesystem that cannot map files for writing, lines are appended with pwrite() (no reserved tail).
_mapping_supported = sys.platform.startswith("linux") and hasattr(os, "posix_fallocate")


class _OpenSegment:
    """The segment being written: its fd (under ``flock``), reserved and mapped ahead, filled front to back."""

    __slots__ = ("capacity", "fd", "map", "mapped", "populated", "size")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mapped = _mapping_supported
        self.map: mmap.mmap | None = None
        self.size = 0  # bytes of whole lines
        self.capacity = 0  # bytes reserved and mapped
        self.populated = 0  # end of the pages made writable ahead

    def append(self, data: bytes) -> None:
        """Copy ``data`` in after the last line; OSError (nothing written) when there is no space."""
        end = self.size + len(data)
        if end > self.capacity and self.mapped:
            self._reserve(end)
        if self.map is None:
            self._pwrite(data)
            return
        if end > self.populated:
            self._populate()
        self.map[self.size : end] = data
        self.size = end

    def ahead(self) -> None:
        """Reserve and make writable the space the next lines will take, before they need it.

        Appends do this themselves when they reach the end of what is ready; a server calls it between
        requests (``SpanStore.settle``) so that the system calls fall outside the requests.
        """
        if self.map is None:
            return
        want = self.size + _AHEAD
        if want > self.capacity:
            self._reserve(want)
        if want > self.populated:
            self._populate()

    def _pwrite(self, data: bytes) -> None:
        written = 0
        try:
            while written < len(data):  # a short write: rare (a limit or a full disk), so finish it here
                written += os.pwrite(self.fd, memoryview(data)[written:], self.size + written)
        except OSError:
            if written:  # cut the partial line, so the segment still ends on a whole line
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def _reserve(self, end: int) -> None:
        want = -(-(end + _RESERVE_STEP) // _PAGE) * _PAGE
        try:
            os.posix_fallocate(self.fd, 0, want)
        except OSError:
            # Near a limit (disk full, RLIMIT_FSIZE): take exactly what this line needs, or fail with
            # the real error.
            want = end
            os.posix_fallocate(self.fd, 0, want)
        # Write the reserved zeros once more through the page cache: ext4 then holds that space as
        # written rather than "unwritten" extents, and making its pages writable later costs a third.
        # The blocks are allocated already, so this cannot run out of space.
        if want > self.capacity:
            with contextlib.suppress(OSError):
                os.pwrite(self.fd, _ZEROS[: want - self.capacity], self.capacity)
        if self.map is not None:
            self.map.resize(want)
        else:
            self._map(want)
        self.capacity = want

    def _map(self, length: int) -> None:
        global _mapping_supported
        try:
            self.map = mmap.mmap(self.fd, length)
        except OSError as exc:
            if exc.errno not in (errno.ENODEV, errno.EINVAL, errno.EACCES, errno.EPERM):
                raise
            self.mapped = _mapping_supported = False
            logger.warning("the ledger's filesystem cannot map files (%s); writing with pwrite()", _describe(exc))

    def _populate(self) -> None:
        global _populate_supported
        start = self.size - self.size % _PAGE
        length = min(_POPULATE_WINDOW, self.capacity - start)
        self.populated = start + length
        if not _populate_supported:
            return
        assert self.map is not None
        try:
            self.map.madvise(_MADV_POPULATE_WRITE, start, length)
        except OSError:
            _populate_supported = False  # an older kernel: pages fault in one at a time instead

    def close(self, flush: Callable[[int], None] | None) -> None:
        """Unmap, cut the file back to its whole lines (the reserved zero tail goes), flush, close."""
        try:
            if self.map is not None:
                self.map.close()
                self.map = None
            os.ftruncate(self.fd, self.size)
            if flush is not None:
                flush(self.fd)
        finally:
            os.close(self.fd)


class _Syncer(threading.Thread):
    """Batch fsync: after a write, flush to disk within ``interval`` seconds, sharing one fsync."""

    def __init__(self, store: SpanStore, interval: float) -> None:
        super().__init__(name="mcp-ledger-fsync", daemon=True)
        self._store = store
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # True from a write until this thread has taken it up (before its wait): a write that finds it
        # true is covered by the flush already coming, so the store pokes only when it is false.
        self.due = False

    def poke(self) -> None:
        self.due = True
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            self.due = False  # a write from here on pokes again; one before is covered by the flush below
            if self._stopping.wait(self._interval):
                return  # close() does the final flush
            self._store.sync()


class SpanStore:
    """Appends spans to this process's chain in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: FsyncPolicy = "batch",
        fsync_interval: float = 1.0,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        writer: Mapping[str, Any] | None = None,
        fsync_fn: Callable[[int], None] | None = None,
        on_failure: OnFailure = "refuse",
        checkpoints: CheckpointWriter | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.fsync_policy = fsync
        self.on_failure = on_failure
        self.segment_bytes = segment_bytes
        self.chain = new_chain_id()
        self._writer = {"pid": os.getpid(), "host": socket.gethostname(), **(writer or {})}
        self._lock = threading.Lock()
        self._open: _OpenSegment | None = None
        self._segment_index = -1
        self._segment_lines = 0
        self._seq = 0
        self._prev: str | None = None
        self._unhashed: bytes | None = None  # the last line, until its digest is taken (``_chain_head``)
        self._pending: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.failure: str | None = None
        self._fatal = False
        self._closed = False
        self._syncer = _Syncer(self, fsync_interval) if fsync == "batch" else None
        self._recovery: threading.Thread | None = None
        self._fsync_fn = fsync_fn
        # Group commit (fsync "always"): one waiter at a time flushes everything written so far.
        self._durable = threading.Condition(threading.Lock())
        self._durable_seq = -1
        self._flushing = False
        # Signed checkpoints (``_checkpoint``): each line's digest is handed to their thread.
        self._checkpoints = checkpoints
        self._leaves: list[str] | None = [] if checkpoints is not None else None
        self._checkpoint_every = checkpoints.every if checkpoints is not None else 0
        self._synced_seq = -1  # the last line a successful flush covered

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def current_segment(self) -> Path | None:
        if self._segment_index < 0:
            return None
        return self.directory / segment_name(self.chain, self._segment_index)

    def append(self, record: dict[str, Any]) -> int:
        """Stamp ``record`` with ``v``/``seq``/``prev``, write it, and return its ``seq``.

        Raises :class:`RecordError` on failure. While the store is failed the record is held in memory
        (bounded) and written once :meth:`recover` succeeds.
        """
        with self._lock:
            if self._open is None or self.failure is not None or self._closed:
                if self._closed:
                    raise RecordError("the ledger is closed")
                if self.failure is not None:
                    self._hold(record)
                    raise RecordError(self.failure)
            try:
                self._write(record)
            except OSError as exc:
                self._fail(f"could not write to the ledger in {self.directory}: {_describe(exc)}")
                self._hold(record)
                raise RecordError(self.failure or "") from None
            seq = self._seq - 1
        syncer = self._syncer
        if syncer is not None and not syncer.due:
            syncer.poke()
        return seq

    def settle(self) -> None:
        """Do now what the next append would otherwise do first: take the chain digest of the last line
        (and hand it to the checkpoint thread) and make the space for the next lines ready.

        A server calls this once an answer has gone out (see ``server.transport``), so that this work is
        done while the client reads the answer instead of inside the next request.
        """
        with self._lock:
            if self._unhashed is not None:
                self._chain_head()
            segment = self._open
            if segment is not None and self.failure is None:
                with contextlib.suppress(OSError):  # the next append meets it too, and says so
                    segment.ahead()

    def wait_durable(self, seq: int) -> None:
        """Block until line ``seq`` is on disk (fsync "always"); concurrent waiters share one fsync.

        Raises :class:`RecordError` when the flush fails (the store is then failed for good).
        """
        with self._durable:
            while self._durable_seq < seq:
                if self.failure is not None and self._fatal:
                    raise RecordError(self.failure)
                if self._flushing:
                    self._durable.wait()
                    continue
                self._flushing = True
                try:
                    self._durable.release()
                    try:
                        target = self._flush()
                    finally:
                        self._durable.acquire()
                    self._durable_seq = max(self._durable_seq, target)
                finally:
                    self._flushing = False
                    self._durable.notify_all()
            if self.failure is not None and self._fatal:
                raise RecordError(self.failure)

    def _fsync(self, fd: int) -> None:
        (self._fsync_fn or os.fdatasync)(fd)

    def _flush(self) -> int:
        """fsync everything written so far; return the last seq it covers (-1 on failure)."""
        with self._lock:
            if self._open is None:
                return self._seq - 1
            target = self._seq - 1
            fd = os.dup(self._open.fd)
        try:
            self._fsync(fd)
        except OSError as exc:
            with self._lock:
                self._fatal = True
                self._fail(f"could not flush the ledger to disk: {_describe(exc)}; restart the server")
            return -1
        finally:
            os.close(fd)
        with self._lock:
            self._synced_seq = max(self._synced_seq, target)
        return target

    def recover(self) -> bool:
        """Try to write the spans held since a failure; True when the store is healthy again."""
        with self._lock:
            if self.failure is None:
                return True
            if self._fatal or self._closed:
                return False
            try:
                if self._open is None:
                    self._start()
                while self._pending:
                    self._write(self._pending[0])
                    self._pending.popleft()
            except OSError as exc:
                self.failure = f"could not write to the ledger in {self.directory}: {_describe(exc)}"
                return False
            logger.warning("ledger writable again; wrote %d held spans", self._seq)
            self.failure = None
            return True

    def sync(self) -> None:
        """Flush written lines to disk (fdatasync); a failure fails the store for good."""
        self._flush()

    def close(self) -> None:
        if self._recovery is not None:
            self._recovery.join()
        if self._syncer is not None and self._syncer.is_alive():
            self._syncer.stop()
            self._syncer.join(timeout=5)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._open is not None:
                self._retire(self._open, self._segment_index)
                self._open = None
                if not self._fatal:
                    self._synced_seq = self._seq - 1  # _retire flushed the last segment
            if self._pending:
                logger.error("%d spans could not be recorded before shutdown", len(self._pending))
        if self._checkpoints is not None:
            self._checkpoints.close()  # the chain's closing checkpoint

    def _take_leaves(self) -> tuple[list[str], int]:
        """For the checkpoint thread: digests of the lines written since the last call, and the last seq on disk."""
        with self._lock:
            self._chain_head()
            leaves, self._leaves = self._leaves or [], []
            if self._fatal:
                return leaves, -1  # a failed flush: nothing more may be called durable
            return leaves, self._seq - 1 if self.fsync_policy == "never" else self._synced_seq

    def _hold(self, record: dict[str, Any]) -> None:
        """Keep a record the ledger could not take, to write it on recovery; it says what its caller was told."""
        if self.on_failure == "refuse":
            mark_unrecorded(record)
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(record)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            logger.error("%s", message)
        self.failure = message

    def _retire(self, segment: _OpenSegment, index: int) -> None:
        """Cut a segment to its lines, flush it (unless ``never``) and close it; its flock goes with its fd.

        A failure here is a failed flush: the store is failed for the life of the process.
        """
        flush = None if self.fsync_policy == "never" or self._fatal else self._fsync
        try:
            segment.close(flush)
        except OSError as exc:
            self._fatal = True
            self._fail(f"could not flush ledger segment {index} to disk: {_describe(exc)}; restart the server")

    def _write(self, record: dict[str, Any], into: _OpenSegment | None = None) -> None:
        """The one path of a line into the chain: stamp (``v``, ``seq``, ``prev``), rotate when the segment is
        full, copy in (sorted keys, compact, UTF-8, and the newline), advance. ``into``: a new segment, for
        its header (never rotated).

        OSError when it could not be written (nothing of it is then in the segment).
        """
        segment = into or self._open
        if segment is None:
            self._start()
            segment = self._open
            assert segment is not None
        record["v"] = SCHEMA_VERSION
        record["seq"] = self._seq
        record["prev"] = self._prev if self._unhashed is None else self._chain_head()
        try:
            line = orjson.dumps(record, option=_LINE_OPTIONS)
        except TypeError:
            line = canonical_json(record) + b"\n"  # see _LINE_OPTIONS
        if into is None and self._segment_lines > 1 and segment.size + len(line) > self.segment_bytes:
            self._rotate()
            self._write(record)  # once more, into the new segment (its header took a seq)
            return
        end = segment.size + len(line)
        if end <= segment.populated:  # the common case (a mapped segment with room made ready), inline
            segment.map[segment.size : end] = line  # type: ignore[index]  # populated > 0: mapped
            segment.size = end
        else:
            segment.append(line)  # all of it or, on OSError, nothing
        self._segment_lines += 1
        self._seq += 1
        self._unhashed = line  # its digest is taken by the next line's stamp or by settle(), whichever is first

    def _chain_head(self) -> str | None:
        """``prev`` for the next line (under the lock): the last line's digest, taken now if not yet."""
        line = self._unhashed
        if line is None:
            return self._prev
        self._unhashed = None
        digest = _SHA256.copy()  # OpenSSL's set-up done once (see _SHA256)
        digest.update(memoryview(line)[:-1])  # without its newline
        self._prev = prev = "sha256:" + digest.hexdigest()
        leaves = self._leaves
        if leaves is not None:
            leaves.append(prev)
            if len(leaves) >= self._checkpoint_every:
                self._checkpoints.poke()  # type: ignore[union-attr]  # set together with _leaves
        return prev

    def _start(self) -> None:
        """Open the first segment lazily: a probe process that records nothing leaves no chain.

        What writers that are gone left behind is repaired beside it in a thread: the first call never
        waits for it (``close`` does).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_segment()
        if self._recovery is None:
            self._recovery = threading.Thread(target=self._recover_others, name="mcp-ledger-recovery", daemon=True)
            self._recovery.start()
        if self._syncer is not None and not self._syncer.is_alive():
            self._syncer.start()
        if self._checkpoints is not None:
            self._checkpoints.bind(self.chain, self._take_leaves)

    def _recover_others(self) -> None:
        try:
            recover_torn_tails(self.directory)
        except OSError as exc:
            logger.warning("could not repair what crashed writers left in %s: %s", self.directory, _describe(exc))

    def _rotate(self) -> None:
        old, old_index = self._open, self._segment_index
        self._open_segment()
        if old is not None:
            self._retire(old, old_index)

    def _open_segment(self) -> None:
        """Create the next segment. It is locked and given its header under a temporary name, then
        renamed into place: no crash leaves a segment without a header, or one that nobody holds."""
        index = self._segment_index + 1
        path = self.directory / segment_name(self.chain, index)
        unfinished = self.directory / unfinished_name(self.chain, index)
        self._chain_head()  # before the state is saved: a failure below restores a chain whose digests are taken
        fd = os.open(unfinished, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        segment = _OpenSegment(fd)
        saved = (self._open, self._segment_lines, self._seq, self._prev)
        leaves_before = len(self._leaves) if self._leaves is not None else 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            header = {
                "type": "header",
                "chain": self.chain,
                "segment": index,
                "created_ns": str(time.time_ns()),
                "writer": self._writer,
            }
            self._segment_lines = 0
            self._write(header, segment)
            os.rename(unfinished, path)
            self._open = segment
        except OSError:
            self._open, self._segment_lines, self._seq, self._prev = saved
            self._unhashed = None  # the header's line, if it got that far
            if self._leaves is not None:
                del self._leaves[leaves_before:]  # the header's digest, if it got that far
            if segment.map is not None:
                segment.map.close()
            os.close(fd)
            unfinished.unlink(missing_ok=True)
            raise
        self._segment_index = index


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return f"{reason} ({name})" if name else reason
