"""Chain verification: every line parses, ``seq`` is gap-free and every ``prev`` matches.

A hash chain catches edits, deletions, insertions and reordering anywhere inside a chain. It cannot
see a cut-off tail by itself (that needs a checkpoint kept elsewhere).

What a crash leaves is not a break: a writer killed while copying a line in leaves that line
unfinished (no newline) at the end of its last segment, and after a power loss a last segment can
hold no line at all. The chain then ends at its last whole line; the report notes the leftover
(``unfinished``) and ``recover_torn_tails`` (the next writer, or ``verify --recover``) sets it aside.
The same bytes anywhere else are damage.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from provenance._segments import Segment, list_chains, segment_is_live

__all__ = ["ChainFailure", "ChainReport", "UnfinishedTail", "VerifyReport", "verify"]


@dataclass(frozen=True)
class ChainFailure:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class UnfinishedTail:
    """What a writer that is gone left after its chain's last whole line: not part of the chain."""

    file: str
    line: int
    bytes: int

    def __str__(self) -> str:
        what = f"an unfinished line ({self.bytes} bytes)" if self.bytes else "no line (a segment being created)"
        return f"{self.file}:{self.line}: {what} left by a writer that crashed"


@dataclass
class ChainReport:
    chain: str
    segments: int = 0
    lines: int = 0
    spans: int = 0
    live: bool = False
    failure: ChainFailure | None = None
    unfinished: UnfinishedTail | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class VerifyReport:
    directory: str
    chains: list[ChainReport] = field(default_factory=list)
    torn_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(chain.ok for chain in self.chains)

    @property
    def spans(self) -> int:
        return sum(chain.spans for chain in self.chains)

    @property
    def failures(self) -> list[ChainFailure]:
        return [chain.failure for chain in self.chains if chain.failure is not None]

    @property
    def unfinished(self) -> list[UnfinishedTail]:
        return [chain.unfinished for chain in self.chains if chain.unfinished is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": self.directory,
            "chains": len(self.chains),
            "spans": self.spans,
            "lines": sum(chain.lines for chain in self.chains),
            "failures": [asdict(failure) for failure in self.failures],
            "unfinished": [asdict(tail) for tail in self.unfinished],
            "torn_files": self.torn_files,
        }


PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def verify(directory: Path, *, workers: int | None = None) -> VerifyReport:
    """Verify every chain in ``directory``; the report names the first break of each chain.

    Segments are checked independently (in ``workers`` processes when the ledger is large) and then
    stitched in chain order, so a parallel run reports exactly what a serial one does.
    """
    directory = Path(directory)
    report = VerifyReport(directory=str(directory))
    report.torn_files = sorted(p.name for p in directory.glob("*.torn")) if directory.is_dir() else []
    chains = list_chains(directory)
    segments = [seg for segs in chains.values() for seg in segs]
    if workers is None:
        total = sum(seg.path.stat().st_size for seg in segments)
        workers = min(os.cpu_count() or 1, len(segments)) if total >= PARALLEL_MIN_BYTES else 1
    jobs = [(str(seg.path), seg.chain, seg.index) for seg in segments]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor  # only big ledgers pay for the import

        with ProcessPoolExecutor(max_workers=workers) as pool:
            scans = list(pool.map(_scan_job, jobs, chunksize=1))
    else:
        scans = [_scan_job(job) for job in jobs]
    by_path = dict(zip((seg.path for seg in segments), scans, strict=True))
    for chain, segs in chains.items():
        report.chains.append(_stitch(chain, segs, by_path))
    return report


@dataclass
class _SegmentScan:
    """What one segment says on its own; ``_stitch`` checks how it joins the previous one."""

    size: int = 0
    has_first_line: bool = False
    first_seq: Any = None
    first_prev: Any = None
    line1_failure: str | None = None  # parse failures of line 1
    header_failure: str | None = None  # header rules of line 1 (checked after seq/prev)
    failure: tuple[int, str] | None = None  # first failure from line 2 on
    lines_before_failure: int = 0
    spans_before_failure: int = 0
    lines: int = 0
    spans: int = 0
    last_seq: int = -1
    last_digest: str | None = None
    tail_line: int | None = None  # line number of an unterminated last line
    tail_bytes: int = 0  # its length


def _scan_job(job: tuple[str, str, int]) -> _SegmentScan:
    path, chain, index = job
    return _scan_segment(Path(path).read_bytes(), chain, index)


def _scan_segment(data: bytes, chain: str, index: int) -> _SegmentScan:
    """Check one segment on its own. The loop is the verifier's hot path: one parse and one hash
    per line, nothing else that allocates."""
    # A live (or crashed, not yet recovered) writer's segment ends in reserved zero bytes: not data. A zero
    # byte anywhere before the last line is damage, and the line holding it fails to parse.
    data = data.rstrip(b"\x00")
    scan = _SegmentScan(size=len(data))
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the segment ends with a newline
    scan.tail_bytes = len(tail)
    if not lines:
        if tail:
            scan.tail_line = 1
        return scan
    first = lines[0]
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        scan.line1_failure = "line does not parse as JSON"
        return scan
    if not isinstance(record, dict):
        scan.line1_failure = "line is not a JSON object"
        return scan
    scan.has_first_line = True
    scan.first_seq, scan.first_prev = record.get("seq"), record.get("prev")
    if record.get("type") != "header":
        scan.header_failure = "first line of a segment is not a header"
    elif record.get("chain") != chain or record.get("segment") != index:
        scan.header_failure = "header names another chain or segment than its file"
    if not isinstance(scan.first_seq, int):
        return scan  # the stitch reports the seq
    loads, decode_error, hash_line = orjson.loads, orjson.JSONDecodeError, sha256
    expected = scan.first_seq + 1
    prev = "sha256:" + hash_line(first).hexdigest()
    spans = 1 if record.get("type") == "span" else 0
    lineno = 1
    for lineno, line in enumerate(lines[1:], 2):
        try:
            record = loads(line)
        except decode_error:
            record = _NOT_JSON
        if (
            record is _NOT_JSON
            or not isinstance(record, dict)
            or record.get("seq") != expected
            or record.get("prev") != prev
            or record.get("type") == "header"
        ):
            scan.failure = (lineno, _check_line(record, lineno, expected, prev) or "line is damaged")
            scan.lines_before_failure, scan.spans_before_failure = lineno - 1, spans
            return scan
        if record.get("type") == "span":
            spans += 1
        expected += 1
        prev = "sha256:" + hash_line(line).hexdigest()
    scan.lines, scan.spans = lineno, spans
    scan.last_seq, scan.last_digest = expected - 1, prev
    if tail:
        scan.tail_line = lineno + 1
    return scan


_NOT_JSON = object()


def _check_line(record: Any, lineno: int, expected_seq: int, prev: str | None) -> str | None:
    if record is _NOT_JSON:
        return "line does not parse as JSON"
    if not isinstance(record, dict):
        return "line is not a JSON object"
    seq = record.get("seq")
    if seq != expected_seq:
        return f"seq is {seq!r}, expected {expected_seq} (a line was removed, inserted or moved)"
    if record.get("prev") != prev:
        return f"prev does not match the digest of line {lineno - 1} (that line was changed, or lines were moved)"
    if record.get("type") == "header":
        return "header line in the middle of a segment"
    return None


def _stitch(chain: str, segments: list[Segment], scans: dict[Path, _SegmentScan]) -> ChainReport:
    report = ChainReport(chain=chain, segments=len(segments))
    expected_seq = 0
    prev: str | None = None
    for position, segment in enumerate(segments):
        name = segment.path.name
        if segment.index != position:
            report.failure = ChainFailure(name, 1, f"segment {position} of chain {chain} is missing")
            return report
        scan = scans[segment.path]
        last = position == len(segments) - 1
        if last:
            report.live = segment_is_live(segment.path)
        if not scan.has_first_line and scan.line1_failure is None and last:
            # No whole line: a live writer's segment still being created, or a crash's leftover.
            if not report.live:
                report.unfinished = UnfinishedTail(name, 1, scan.tail_bytes)
            return report
        if scan.size == 0:
            report.failure = ChainFailure(name, 1, "segment is empty (no header line)")
            return report
        if scan.line1_failure is not None:
            report.failure = ChainFailure(name, 1, scan.line1_failure)
            return report
        if scan.has_first_line:
            if scan.first_seq != expected_seq:
                report.failure = ChainFailure(
                    name,
                    1,
                    f"seq is {scan.first_seq!r}, expected {expected_seq} (a line was removed, inserted or moved)",
                )
                return report
            if scan.first_prev != prev:
                report.failure = ChainFailure(name, 1, "prev does not match the last line of the previous segment")
                return report
            if scan.header_failure is not None:
                report.failure = ChainFailure(name, 1, scan.header_failure)
                return report
        if scan.failure is not None:
            report.lines += scan.lines_before_failure
            report.spans += scan.spans_before_failure
            report.failure = ChainFailure(name, *scan.failure)
            return report
        report.lines += scan.lines
        report.spans += scan.spans
        if scan.lines:
            expected_seq, prev = scan.last_seq + 1, scan.last_digest
        if scan.tail_line is not None:
            if not last:
                report.failure = ChainFailure(
                    name, scan.tail_line, "unfinished line (no newline) before the end of the chain"
                )
                return report
            if not report.live:
                report.unfinished = UnfinishedTail(name, scan.tail_line, scan.tail_bytes)
    return report
