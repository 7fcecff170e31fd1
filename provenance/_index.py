"""The SQLite sidecar index: tool / group / status / session / trace / time -> (segment, byte offset).

A failed span's row also holds its error signature and the objects it touched (``_signature``), so
failures are grouped from the index alone.

Derived data only: ``index.sqlite`` beside the segments can be deleted or rebuilt at any time.
Every question first *catches up*: each segment is read from the offset indexed last, so spans
written by other live processes are visible at once. Rows and the new offset of a segment are
committed in one transaction, so a crash mid-update leaves the index as it was before it.
Only newline-terminated lines are indexed; a line being written is picked up by the next catch-up.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mcp_ledger.provenance._segments import content_end, list_chains
from mcp_ledger.provenance._signature import error_columns
from mcp_ledger.provenance._span import index_row

if TYPE_CHECKING:
    import sqlite3

__all__ = ["INDEX_NAME", "IndexUnavailable", "IndexedSpan", "LedgerIndex", "open_index"]

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = "3"  # 2: spans.principal; 3: spans.sig, spans.objects (failed spans)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    indexed_to INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seg INTEGER NOT NULL,
    off INTEGER NOT NULL,
    len INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    tool TEXT,
    grp TEXT,
    error INTEGER NOT NULL,
    session TEXT,
    connection TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    principal TEXT,
    sig TEXT,
    objects TEXT
);
"""
# Secondary indexes: created after the rows on a rebuild (bulk-loading into eight B-trees is twice as
# slow). Rows by segment are looked up only when a segment shrinks or vanishes (rare): no index.
# spans_errors holds the failed spans only and covers the questions about them (provenance/_errors.py).
_INDEXES = """
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns, span_id);
CREATE INDEX IF NOT EXISTS spans_by_tool ON spans (tool, start_ns, span_id);
CREATE INDEX IF NOT EXISTS spans_by_group ON spans (grp, start_ns, span_id);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_by_span_id ON spans (span_id);
CREATE INDEX IF NOT EXISTS spans_by_connection ON spans (connection);
CREATE INDEX IF NOT EXISTS spans_by_session ON spans (session);
CREATE INDEX IF NOT EXISTS spans_by_principal ON spans (principal, start_ns, span_id);
CREATE INDEX IF NOT EXISTS spans_errors ON spans (tool, sig, start_ns, span_id, grp, objects) WHERE error = 1;
"""

_INSERT = (
    "INSERT INTO spans (seg, off, len, span_id, trace_id, tool, grp, error, session, connection, start_ns, end_ns,"
    " principal, sig, objects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_NO_ERROR = (None, None)


class IndexUnavailable(Exception):
    """The index cannot be opened or updated (disk full, a file-size limit, a damaged file)."""


@dataclass(frozen=True)
class IndexedSpan:
    """Where a span lives on disk, with the columns questions filter on."""

    id: int
    segment: str
    offset: int
    length: int


class LedgerIndex:
    """One SQLite connection to a ledger's index, safe to share between threads of one process."""

    def __init__(self, directory: Path, *, path: Path | None = None, indexes: bool = True) -> None:
        self.directory = Path(directory)
        self.path = path or self.directory / INDEX_NAME
        self._lock = threading.RLock()
        self.directory.mkdir(parents=True, exist_ok=True)
        import sqlite3  # here, not at module import: the server's start-up does not need it

        self._errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
        try:
            self._db: sqlite3.Connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._upgrade()
            if indexes:
                self._db.executescript(_INDEXES)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', ?)", (secrets.token_hex(4),))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        except self._errors as exc:
            raise IndexUnavailable(str(exc)) from exc
        self.generation = str(row[0])
        self.before_commit: Callable[[str, int], None] | None = None  # a test hook: crash mid-update

    def _upgrade(self) -> None:
        """An index of an earlier schema is emptied and made again (it is derived data); a new generation
        makes cursors taken from the old one fail cleanly."""
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or row[0] == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and row[0] != SCHEMA_VERSION:  # another process may have upgraded it meanwhile
                self._db.execute("DROP TABLE IF EXISTS spans")
                self._db.execute("DELETE FROM segments")
                self._db.execute("DELETE FROM meta")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def catch_up(self) -> int:
        """Index every complete line written since the last catch-up; return how many spans were added."""
        try:
            return self._catch_up()
        except self._errors as exc:
            raise IndexUnavailable(str(exc)) from exc

    def _catch_up(self) -> int:
        with self._lock:
            on_disk = {seg.path.name: seg.path for segs in list_chains(self.directory).values() for seg in segs}
            known = {
                name: (seg_id, done)
                for seg_id, name, done in self._db.execute("SELECT id, name, indexed_to FROM segments")
            }
            sizes: dict[str, int] = {}
            for name, path in on_disk.items():
                try:
                    sizes[name] = path.stat().st_size
                except FileNotFoundError:
                    continue
            stale = [name for name in known if name not in sizes]
            todo = [name for name, size in sizes.items() if size != known.get(name, (0, 0))[1]]
            added = 0
            for name in stale:
                self._forget_segment(name)
            for name in sorted(todo):
                added += self._index_segment(name, on_disk[name])
            return added

    def _forget_segment(self, name: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT id FROM segments WHERE name = ?", (name,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM spans WHERE seg = ?", (row[0],))
                self._db.execute("DELETE FROM segments WHERE id = ?", (row[0],))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _index_segment(self, name: str, path: Path) -> int:
        # IMMEDIATE: the offset is re-read under the write lock, so two processes never index a line twice.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT id, indexed_to FROM segments WHERE name = ?", (name,)).fetchone()
            if row is None:
                seg_id = int(self._db.execute("INSERT INTO segments (name) VALUES (?)", (name,)).lastrowid or 0)
                start = 0
            else:
                seg_id, start = int(row[0]), int(row[1])
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < start:
                    # Cut back (a torn tail was set aside): drop what is no longer there.
                    self._db.execute("DELETE FROM spans WHERE seg = ? AND off >= ?", (seg_id, size))
                    start = size
                f.seek(start)
                data = f.read(size - start)
            # Whole lines only, and none past the first zero byte (space a writer reserved ahead).
            end = data.rfind(b"\n", 0, content_end(data)) + 1
            rows = []
            pos = 0
            while pos < end:
                nl = data.index(b"\n", pos)
                line = data[pos:nl]
                row_ = index_row(seg_id, start + pos, line)
                if row_ is not None:
                    # A failed span is read once more for its signature (failures are the few).
                    rows.append(row_ + (error_columns(orjson.loads(line)) if row_[7] else _NO_ERROR))
                pos = nl + 1
            self._db.executemany(_INSERT, rows)
            self._db.execute("UPDATE segments SET indexed_to = ? WHERE id = ?", (start + end, seg_id))
            if self.before_commit is not None:
                self.before_commit(name, len(rows))
            self._db.execute("COMMIT")
            return len(rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def create_indexes(self) -> None:
        with self._lock:
            try:
                self._db.executescript(_INDEXES)
            except self._errors as exc:
                raise IndexUnavailable(str(exc)) from exc

    def select(
        self, sql_where: Sequence[str], params: Sequence[Any], *, order: str, limit: int | None
    ) -> list[IndexedSpan]:
        where = " AND ".join(sql_where) or "1"
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        query = (
            "SELECT spans.id, segments.name, off, len FROM spans JOIN segments ON segments.id = spans.seg"
            f" WHERE {where} ORDER BY {order}{tail}"
        )
        with self._lock:
            return [IndexedSpan(*row) for row in self._db.execute(query, tuple(params))]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, tuple(params)))

    def max_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM spans").fetchone()[0])

    def fetch(self, located: Sequence[IndexedSpan]) -> Iterator[dict[str, Any]]:
        """The stored records, read by offset (a record whose bytes changed since indexing is skipped)."""
        handles: dict[str, Any] = {}
        try:
            for item in located:
                f = handles.get(item.segment)
                if f is None:
                    try:
                        f = handles[item.segment] = open(self.directory / item.segment, "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        continue
                line = os.pread(f.fileno(), item.length, item.offset)
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record
        finally:
            for f in handles.values():
                f.close()


_open: dict[Path, LedgerIndex] = {}
_open_lock = threading.Lock()


def open_index(directory: Path) -> LedgerIndex:
    """The process-wide index of ``directory`` (one connection per ledger)."""
    key = Path(directory).resolve()
    with _open_lock:
        index = _open.get(key)
        if index is None:
            index = _open[key] = LedgerIndex(key)
        return index


def rebuild_index(directory: Path) -> int:
    """Delete and recreate the index from the segments; return the number of spans indexed."""
    key = Path(directory).resolve()
    with _open_lock:
        old = _open.pop(key, None)
        if old is not None:
            old.close()
        for suffix in ("", "-wal", "-shm"):
            (key / f"{INDEX_NAME}{suffix}").unlink(missing_ok=True)
        index = _open[key] = LedgerIndex(key, indexes=False)
        added = index.catch_up()
        index.create_indexes()
    return added
