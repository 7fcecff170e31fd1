"""Export a ledger's spans for a data lake: Parquet partitioned by day, or the raw JSON lines.

``mcp-ledger export`` reads every chain's segments once, front to back, in bounded chunks, and
writes the spans that match a :class:`SpanFilter` (the same question ``query`` answers) into
``day=YYYY-MM-DD/part-<run>-<n>.<ext>`` under an output directory (Hive-style partitions, which
DuckDB, pandas, Spark and Trino read as a ``day`` column). What holds:

- Only complete lines are read: a segment's data ends at its last newline before the zero bytes its
  live writer reserved, so a ledger being written exports a prefix of each chain, never a partial
  span. Every row carries its line's ``chain``, ``segment``, ``line_offset``, ``seq``, ``prev`` and
  ``line_sha256`` (the hash the next line's ``prev`` holds), so it can be checked against the ledger.
- Memory does not grow with the ledger: one read chunk, plus rows waiting for their file that come
  from at most :data:`BATCH_BYTES` of ledger lines (a batch is one Parquet row group), in at most
  :data:`OPEN_PARTS` open day partitions.
- The spans are those ``query`` finds for the same filter: a line that is not a whole span record
  (damage, which ``verify`` reports) is skipped and counted, as the index skips it.
- Each file appears whole: it is written under a hidden temporary name, flushed to disk and renamed.
- Runs never mix: the output directory must be new or empty, and a run that fails (or is interrupted)
  removes every file it wrote. ``_mcp_ledger_export.json``, written last, lists the run's files.

The JSON lines format writes each selected span's line exactly as it is in the ledger (the same
bytes, so their hashes are the ledger's), one per line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from mcp_ledger.provenance._query import SpanFilter
from mcp_ledger.provenance._segments import content_end, list_chains
from mcp_ledger.provenance._span import (
    CLIENT_NAME,
    CLIENT_VERSION,
    CONNECTION,
    DESTRUCTIVE,
    ENDUSER_ID,
    ERROR_TYPE,
    EXCEPTION_TYPE,
    GROUP,
    METHOD,
    OPERATION,
    PROTOCOL_VERSION,
    READ_ONLY,
    REQUEST_ID,
    SESSION,
    TOOL,
    TRANSPORT,
    UNTRUSTED_CONTENT,
)

__all__ = [
    "EXPORT_SCHEMA_VERSION",
    "FORMATS",
    "MANIFEST",
    "PARQUET_COLUMNS",
    "Column",
    "ExportError",
    "ExportReport",
    "export_spans",
]

ExportFormat = Literal["parquet", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "parquet")
EXPORT_SCHEMA_VERSION = 1  # of the Parquet columns below; a change of a column's name or type bumps it
MANIFEST = "_mcp_ledger_export.json"  # a leading underscore: Spark and Hive skip it, a *.parquet glob does not match
LAKE_EXTRA = "pip install 'mcp-ledger[lake]'"

READ_CHUNK = 1024 * 1024
BATCH_ROWS = 8_192  # a Parquet row group at most; a batch is also cut at BATCH_BYTES of ledger lines
BATCH_BYTES = 4 * 1024 * 1024
OPEN_PARTS = 4  # day partitions open at once; the one least recently added to is closed for a fifth
_DAY_NS = 86_400 * 1_000_000_000
_EPOCH = date(1970, 1, 1)

# Attributes of the server's auth layer (server/auth/_caller.py, which provenance may not import).
ENDUSER_SCOPE = "enduser.scope"
AUTH_METHOD = "mcp-ledger.auth.method"
TOKEN_FINGERPRINT = "mcp-ledger.auth.token_fingerprint"


class ExportError(Exception):
    """The export cannot run or could not finish; the message says what to change."""


@dataclass(frozen=True)
class Column:
    """One column of the Parquet files: its name, its Arrow type, the type DuckDB reads it as, and its source."""

    name: str
    arrow: str
    duckdb: str
    source: str


_S, _I64, _I32, _F64, _B, _TS, _LS = (
    ("string", "VARCHAR"),
    ("int64", "BIGINT"),
    ("int32", "INTEGER"),
    ("double", "DOUBLE"),
    ("bool", "BOOLEAN"),
    ("timestamp[us, tz=UTC]", "TIMESTAMP WITH TIME ZONE"),
    ("list<string>", "VARCHAR[]"),
)


def _col(name: str, kind: tuple[str, str], source: str) -> Column:
    return Column(name, kind[0], kind[1], source)


# The well-known attributes that get a column of their own: (column, attribute key, Arrow kind). A value
# of another type than its column's stays in ``other_attributes`` (nothing is coerced or lost).
_ATTRIBUTE_COLUMNS: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("tool", TOOL, _S),
    ("tool_group", GROUP, _S),
    ("error_type", ERROR_TYPE, _S),
    ("exception_type", EXCEPTION_TYPE, _S),
    ("method", METHOD, _S),
    ("operation", OPERATION, _S),
    ("request_id", REQUEST_ID, _S),
    ("session_id", SESSION, _S),
    ("connection_id", CONNECTION, _S),
    ("protocol_version", PROTOCOL_VERSION, _S),
    ("client_name", CLIENT_NAME, _S),
    ("client_version", CLIENT_VERSION, _S),
    ("transport", TRANSPORT, _S),
    ("read_only", READ_ONLY, _B),
    ("destructive", DESTRUCTIVE, _B),
    ("untrusted_content", UNTRUSTED_CONTENT, _B),
    ("enduser_id", ENDUSER_ID, _S),
    ("enduser_scope", ENDUSER_SCOPE, _S),
    ("auth_method", AUTH_METHOD, _S),
    ("token_fingerprint", TOKEN_FINGERPRINT, _S),
)
_KNOWN_KEYS = tuple(key for _, key, _ in _ATTRIBUTE_COLUMNS)
_KNOWN_SET = frozenset(_KNOWN_KEYS)
_KNOWN_TYPES = tuple(bool if kind is _B else str for _, _, kind in _ATTRIBUTE_COLUMNS)


def _payload_columns(which: str) -> tuple[Column, ...]:
    return (
        _col(f"{which}_sha256", _S, f"`{which}.sha256`: digest of the canonical redacted {which}"),
        _col(f"{which}_size", _I64, f"`{which}.size`: its size in bytes"),
        _col(f"{which}_preview", _S, f"`{which}.preview`: the redacted, bounded preview"),
        _col(f"{which}_truncated", _B, f"`{which}.truncated`: the preview was cut"),
        _col(f"{which}_redactions", _LS, f"`{which}.redactions`: the JSON paths that were redacted"),
    )


PARQUET_COLUMNS: tuple[Column, ...] = (
    _col("chain", _S, "the writer's chain (the segment file's name up to the first dot)"),
    _col("segment", _S, "the segment file the line is in"),
    _col("line_offset", _I64, "byte offset of the line in the segment"),
    _col("seq", _I64, "`seq`: the line's place in its chain"),
    _col("prev", _S, "`prev`: `sha256:` of the previous line of the chain"),
    _col("line_sha256", _S, "`sha256:` of this line's exact bytes (the next line's `prev`)"),
    _col("v", _I32, "`v`: the ledger's record schema version"),
    _col("trace_id", _S, "`trace_id` (32 hex)"),
    _col("span_id", _S, "`span_id` (16 hex)"),
    _col("parent_span_id", _S, "`parent_span_id`, null for a root span"),
    _col("name", _S, "`name`: `tools/call <tool>`"),
    _col("kind", _S, "`kind`: `SERVER`"),
    _col("start_time", _TS, "`start_ns` (microseconds: what Spark, Trino and every DuckDB read as a timestamp)"),
    _col("end_time", _TS, "`end_ns`"),
    _col("start_ns", _I64, "`start_ns`: Unix nanoseconds, exact"),
    _col("end_ns", _I64, "`end_ns`: Unix nanoseconds, exact"),
    _col("duration_ms", _F64, "`end_ns - start_ns` in milliseconds"),
    _col("status", _S, "`status.code`: `OK` or `ERROR`"),
    _col("status_message", _S, "`status.message` (redacted, bounded)"),
    *(_col(name, kind, f"attribute `{key}`") for name, key, kind in _ATTRIBUTE_COLUMNS),
    _col("other_attributes", _S, "every other attribute, as a JSON object (keys sorted); null when none"),
    *_payload_columns("input"),
    *_payload_columns("output"),
    _col("upstream", _S, "`upstream`: what the tool recorded with `annotate()`, as a JSON object; null when empty"),
)


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
        "list<string>": pa.list_(pa.string()),
    }
    metadata = {b"mcp-ledger.export.schema": str(EXPORT_SCHEMA_VERSION).encode()}
    return pa.schema([pa.field(c.name, types[c.arrow]) for c in PARQUET_COLUMNS], metadata=metadata)


@dataclass(frozen=True)
class _Line:
    """A complete ledger line and where it is."""

    chain: str
    segment: str
    offset: int
    raw: bytes


def _segment_lines(path: Path, chunk: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each complete line of a segment, read ``chunk`` bytes at a time.

    Reading stops at the first zero byte (a live writer's reserved space, or a line it has not finished
    copying in) and never yields a line without its newline.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        base = 0  # file offset of buf[0]
        buf = b""
        while True:
            data = f.read(chunk)
            if not data:
                return
            buf = buf + data if buf else data
            end = content_end(buf)
            pos = 0
            find = buf.find
            while True:
                nl = find(b"\n", pos, end)
                if nl < 0:
                    break
                yield base + pos, buf[pos:nl]
                pos = nl + 1
            if end < len(buf):
                return
            base += pos
            buf = buf[pos:]


def _ledger_lines(directory: Path, chunk: int) -> Iterator[_Line]:
    """Every complete line of every chain, chain by chain, segment by segment (as listed when reading starts)."""
    for chain, segments in list_chains(directory).items():
        for segment in segments:
            name = segment.path.name
            for offset, raw in _segment_lines(segment.path, chunk):
                yield _Line(chain, name, offset, raw)


def _span_of(line: _Line) -> dict[str, Any] | None:
    """The span record of a line, or None for a header or a line that is not a whole span record."""
    if b'"type":"span"' not in line.raw:
        return None
    try:
        record = orjson.loads(line.raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("type") != "span":
        return None
    # What the index requires of a span (``_span.index_row``): the same spans are exported as queried.
    try:
        attributes, status = record["attributes"], record["status"]
        if not isinstance(attributes, dict) or not isinstance(status, dict) or not isinstance(status["code"], str):
            return None
        record["_start"], record["_end"] = int(record["start_ns"]), int(record["end_ns"])
        if not isinstance(record["span_id"], str) or not isinstance(record["trace_id"], str):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    return record


def _day(start_ns: int) -> date:
    return _EPOCH + timedelta(days=start_ns // _DAY_NS)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, bits: int = 64) -> int | None:
    """An integer that fits the column; None for anything else."""
    if type(value) is int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        return value
    return None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _payload(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, dict):
        return (None, None, None, None, None)
    redactions = value.get("redactions")
    if isinstance(redactions, list):
        redactions = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in redactions]
    else:
        redactions = None
    return (
        _text(value.get("sha256")),
        _int(value.get("size")),
        _text(value.get("preview")),
        _bool(value.get("truncated")),
        redactions,
    )


def _json(value: Any) -> str | None:
    """A JSON value as compact text with sorted keys; None for nothing (null, an empty object)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else None


def parquet_row(record: dict[str, Any], line: _Line) -> tuple[Any, ...]:
    """The Parquet row of a span record (from :func:`_span_of`), in the order of :data:`PARQUET_COLUMNS`."""
    attributes: dict[str, Any] = record["attributes"]
    status: dict[str, Any] = record["status"]
    known = list(map(attributes.get, _KNOWN_KEYS))
    other = None if attributes.keys() <= _KNOWN_SET else {k: v for k, v in attributes.items() if k not in _KNOWN_SET}
    for i, value in enumerate(known):
        if value is not None and type(value) is not _KNOWN_TYPES[i]:
            known[i] = None  # an unexpected type: kept, as it is, in other_attributes
            other = other or {}
            other[_KNOWN_KEYS[i]] = value
    start, end = record["_start"], record["_end"]
    return (
        line.chain,
        line.segment,
        line.offset,
        _int(record.get("seq")),
        _text(record.get("prev")),
        "sha256:" + hashlib.sha256(line.raw).hexdigest(),
        _int(record.get("v"), 32),
        record["trace_id"],
        record["span_id"],
        _text(record.get("parent_span_id")),
        _text(record.get("name")),
        _text(record.get("kind")),
        start // 1000,
        end // 1000,
        start,
        end,
        (end - start) / 1e6,
        status["code"],
        _text(status.get("message")),
        *known,
        _json(other),
        *_payload(record.get("input")),
        *_payload(record.get("output")),
        _json(record.get("upstream")),
    )


# --- where the rows go ---


@dataclass
class ExportReport:
    """What one run did: how many spans it read and wrote, into which files."""

    format: str
    out: str
    run_id: str
    filters: dict[str, Any]
    spans: int = 0
    scanned: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "schema_version": EXPORT_SCHEMA_VERSION if self.format == "parquet" else None,
            "out": self.out,
            "run_id": self.run_id,
            "filters": self.filters,
            "spans": self.spans,
            "scanned": self.scanned,
            "skipped": self.skipped,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "files": self.files,
        }


class _Part:
    """One output file, written under a hidden temporary name; :meth:`finish` renames it into place.

    Rows wait in :attr:`pending` until :meth:`flush` writes them as one batch (a Parquet row group).
    """

    ext = ""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = final.with_name(f".{final.name}.tmp")
        self.file: IO[bytes] = open(self.temp, "xb", buffering=1 << 20)  # noqa: SIM115
        self.rows = 0
        self.pending: list[Any] = []
        self.pending_bytes = 0  # of the ledger lines the pending rows come from

    def add(self, row: Any, raw: bytes) -> None:
        self.pending.append(row)
        self.pending_bytes += len(raw)

    def flush(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.rows += len(self.pending)
            self.pending, self.pending_bytes = [], 0

    def _write(self, rows: list[Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def finish(self) -> int:
        """Write what is pending, close, flush to disk and rename into place; return the file's size."""
        self.flush()
        self._close()
        os.replace(self.temp, self.final)
        return self.final.stat().st_size

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        self.temp.unlink(missing_ok=True)


class _JsonlPart(_Part):
    """A JSON lines file: each line goes straight into the file's buffer, nothing waits."""

    ext = "jsonl"

    def add(self, row: Any, raw: bytes) -> None:
        self.file.write(raw)
        self.file.write(b"\n")
        self.rows += 1


class _ParquetPart(_Part):
    """A Parquet file: each batch is one row group."""

    ext = "parquet"

    def __init__(self, final: Path) -> None:
        super().__init__(final)
        import pyarrow.parquet as pq

        self.schema = _arrow_schema()
        self.writer = pq.ParquetWriter(
            self.file, self.schema, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS, write_statistics=True
        )

    def _write(self, rows: list[Any]) -> None:
        import pyarrow as pa

        columns = zip(*rows, strict=True)
        arrays = [pa.array(column, type=f.type) for column, f in zip(columns, self.schema, strict=True)]
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def _close(self) -> None:
        self.writer.close()
        super()._close()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        super().abandon()


# Columns with few distinct values are dictionary-encoded; ids, hashes and previews are not (a dictionary
# of unique values only costs).
_DICTIONARY_COLUMNS = [
    "chain",
    "segment",
    "name",
    "kind",
    "status",
    "status_message",
    *(name for name, _, kind in _ATTRIBUTE_COLUMNS if kind is _S and name != "request_id"),
    "other_attributes",
]


class _Partitions:
    """The day partitions of one run: the open part file of each day, and every file written so far.

    At most :data:`OPEN_PARTS` days are open; a day that turns up again after its file was closed gets a
    new part file (the ledger is read chain by chain, each chain in time order). Rows waiting in all open
    parts together come from at most ``batch_bytes`` of ledger lines: past that, the part holding the
    most is written out.
    """

    def __init__(self, out: Path, report: ExportReport, part: type[_Part], batch_rows: int, batch_bytes: int) -> None:
        self.out = out
        self.run_id = report.run_id
        self.part = part
        self.report = report
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.pending_bytes = 0
        self.open: OrderedDict[date, _Part] = OrderedDict()
        self.written: list[Path] = []
        self.made_dirs: list[Path] = []

    def add(self, day: date, row: Any, raw: bytes) -> None:
        part = self.open.get(day)
        if part is None:
            if len(self.open) >= OPEN_PARTS:
                self._close(next(iter(self.open)))
            part = self.open[day] = self._new_part(day)
        else:
            self.open.move_to_end(day)
        before = part.pending_bytes
        part.add(row, raw)
        self.pending_bytes += part.pending_bytes - before
        if len(part.pending) >= self.batch_rows:
            self._flush(part)
        elif self.pending_bytes >= self.batch_bytes:
            self._flush(max(self.open.values(), key=lambda p: p.pending_bytes))

    def _flush(self, part: _Part) -> None:
        self.pending_bytes -= part.pending_bytes
        part.flush()

    def _new_part(self, day: date) -> _Part:
        directory = self.out / f"day={day.isoformat()}"
        if not directory.exists():
            directory.mkdir()
            self.made_dirs.append(directory)
        number = len(self.written) + len(self.open) + 1
        return self.part(directory / f"part-{self.run_id}-{number:05d}.{self.part.ext}")

    def _close(self, day: date) -> None:
        part = self.open.pop(day)
        self.pending_bytes -= part.pending_bytes
        try:
            size = part.finish()
        except BaseException:
            part.abandon()
            raise
        self.written.append(part.final)
        self.report.bytes += size
        self.report.files.append(
            {"path": part.final.relative_to(self.out).as_posix(), "spans": part.rows, "bytes": size}
        )

    def finish(self) -> None:
        while self.open:
            self._close(next(iter(self.open)))

    def abandon(self) -> None:
        """Remove every file of this run, finished or not, and the directories it made."""
        for part in self.open.values():
            part.abandon()
        self.open.clear()
        for path in self.written:
            path.unlink(missing_ok=True)
        for directory in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()


def _prepare_out(out: Path) -> bool:
    """Make sure ``out`` is a new or empty directory; return whether this run created it."""
    try:
        if out.exists():
            if not out.is_dir():
                raise ExportError(f"--out {out} is a file; give a new or empty directory")
            if any(out.iterdir()):
                raise ExportError(
                    f"--out {out} is not empty; export into a new or empty directory "
                    "(runs are never mixed in one directory)"
                )
            return False
        out.mkdir(parents=True)
    except OSError as exc:
        raise ExportError(f"cannot use --out {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write into --out {out}: permission denied")
    return True


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def export_spans(
    directory: Path,
    out: Path | None,
    span_filter: SpanFilter,
    *,
    fmt: ExportFormat,
    stdout: IO[bytes] | None = None,
    batch_rows: int | None = None,
    batch_bytes: int | None = None,
    chunk: int | None = None,
) -> ExportReport:
    """Write the spans of the ledger in ``directory`` that match ``span_filter`` into ``out``.

    ``out=None`` with ``fmt="jsonl"`` writes the lines to ``stdout`` instead (no files, no manifest).
    Raises :class:`ExportError` when the format's library is missing, the ledger or ``out`` cannot be
    used, or writing fails (then nothing of this run is left in ``out``).
    """
    directory = Path(directory)
    batch_rows, batch_bytes, chunk = batch_rows or BATCH_ROWS, batch_bytes or BATCH_BYTES, chunk or READ_CHUNK
    if not directory.is_dir():
        raise ExportError(f"no ledger directory at {directory}")
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ExportError(f"--format parquet needs pyarrow: {LAKE_EXTRA}") from None
    elif fmt != "jsonl":
        raise ExportError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    filters = {k: v for k, v in _filter_fields(span_filter).items() if v is not None}
    report = ExportReport(fmt, str(out) if out is not None else "-", _new_run_id(), filters)
    started = time.perf_counter()
    selected = _select(directory, span_filter, report, chunk)
    if out is None:
        if fmt != "jsonl" or stdout is None:
            raise ExportError("--out DIR is required (only --format jsonl can write to stdout, with --out -)")
        for _, line in selected:
            stdout.write(line.raw + b"\n")
            report.bytes += len(line.raw) + 1
        stdout.flush()
        report.seconds = time.perf_counter() - started
        return report
    out = Path(out)
    created = _prepare_out(out)
    parquet = fmt == "parquet"
    partitions = _Partitions(out, report, _ParquetPart if parquet else _JsonlPart, batch_rows, batch_bytes)
    try:
        for record, line in selected:
            partitions.add(_day(record["_start"]), parquet_row(record, line) if parquet else None, line.raw)
        partitions.finish()
        report.seconds = time.perf_counter() - started
        _write_manifest(out, report)
    except BaseException as exc:
        partitions.abandon()
        (out / f".{MANIFEST}.tmp").unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise ExportError(f"writing into {out} failed: {reason}; nothing of this run was kept") from None
        if isinstance(exc, Exception):  # a library's error on data nobody expected: still a message, not a trace
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            raise ExportError(f"the export failed ({reason}); nothing of this run was kept") from exc
        raise
    return report


def _select(
    directory: Path, span_filter: SpanFilter, report: ExportReport, chunk: int
) -> Iterator[tuple[dict[str, Any], _Line]]:
    """The span records that match, with their lines, in ledger order; counts what was read in ``report``."""
    matches = span_filter.matches
    for line in _ledger_lines(directory, chunk):
        record = _span_of(line)
        if record is None:
            if b'"type":"span"' in line.raw:
                report.skipped += 1
            continue
        report.scanned += 1
        if matches(record):
            report.spans += 1
            yield record, line


def _filter_fields(span_filter: SpanFilter) -> dict[str, Any]:
    fields = dict(vars(span_filter))
    for name in ("since_ns", "until_ns"):
        value = fields.pop(name)
        fields[name.removesuffix("_ns")] = _iso(value) if value is not None else None
    return fields


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC) + timedelta(microseconds=(ns % 1_000_000_000) // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def _write_manifest(out: Path, report: ExportReport) -> None:
    temp = out / f".{MANIFEST}.tmp"
    with open(temp, "xb") as f:
        f.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, out / MANIFEST)
