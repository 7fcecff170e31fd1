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

from mcp_ledger.provenance._segments import Segment, list_chains, segment_is_live

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


# A span's link as the store writes it (keys sorted and compact: "seq" follows "prev" at once).
_LINK = b'"prev":"sha256:%b","seq":%d,'
_SPAN_TYPE = b'"type":"span","upstream":'


def _scan_segment(data: bytes, chain: str, index: int, *, parse_every_line: bool = False) -> _SegmentScan:
    """Check one segment on its own.

    The hot path links lines by their bytes instead of parsing them: the store writes canonical
    JSON (keys sorted, compact), so a span holds its link as ``"prev":"sha256:<hex>","seq":<n>,`` and
    after it ``"type":"span","upstream":``. A line holding the very link it must hold (the digest of
    the line before it, the next seq) and that type is linked. Any other line (a header, another
    kind of line, a damaged one) is parsed and checked in full, as is the segment's last line; when
    one breaks, the segment is checked again from its start with every line parsed
    (``parse_every_line``), so a report names exactly the line and reason that full check names.
    What the byte check does not see is a line that does not parse (or holds the link only nested)
    although the next line links to it: only someone who rewrote every line after it can write one,
    as they can rewrite a whole chain; a signed checkpoint after it catches both.
    """
    # A live (or crashed, not yet recovered) writer's segment ends in reserved zero bytes: not data. A zero
    # byte anywhere before the last line is damage, and the line holding it fails to parse.
    data = data.rstrip(b"\x00")
    scan = _SegmentScan(size=len(data))
    end = data.rfind(b"\n") + 1  # whole lines end here
    scan.tail_bytes = len(data) - end
    if end == 0:
        if data:
            scan.tail_line = 1
        return scan
    first_end = data.find(b"\n")
    first = data[:first_end]
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
    spans = 1 if record.get("type") == "span" else 0
    if parse_every_line:
        return _check_lines(data, end, scan, spans)
    linked = _link_lines(data, first_end + 1, end, scan.first_seq + 1, sha256(first).hexdigest(), spans)
    if linked is None:
        return _check_lines(data, end, scan, spans)
    lines, scan.spans, scan.last_seq, last_hex = linked
    scan.lines = lines + 1
    scan.last_digest = "sha256:" + last_hex
    if end < len(data):
        scan.tail_line = scan.lines + 1
    return scan


def _link_lines(
    data: bytes, pos: int, end: int, expected: int, prev_hex: str, spans: int
) -> tuple[int, int, int, str] | None:
    """Check the whole lines between ``pos`` and ``end`` by their links: ``(lines, spans, last seq,
    last line's hex digest)``, or None at the first line that breaks. The verifier's hot path: a
    handful of C calls per line."""
    find, view, hash_line, link_of = data.find, memoryview(data), sha256, _LINK.__mod__
    first_seq = expected
    last = data.rfind(b"\n", 0, end - 1) + 1  # the last line is checked in full
    link = link_of((prev_hex.encode(), expected))
    while pos < end:
        nl = find(b"\n", pos)
        at = find(link, pos, nl)
        if at < 0 or find(_SPAN_TYPE, at, nl) < 0 or pos == last:
            try:
                record = orjson.loads(view[pos:nl])
            except orjson.JSONDecodeError:
                return None
            if _check_line(record, 0, expected, "sha256:" + prev_hex) is not None:
                return None
            if record.get("type") != "span":
                spans -= 1
        prev_hex = hash_line(view[pos:nl]).hexdigest()
        expected += 1
        link = link_of((prev_hex.encode(), expected))
        pos = nl + 1
    lines = expected - first_seq
    return lines, spans + lines, expected - 1, prev_hex


def _check_lines(data: bytes, end: int, scan: _SegmentScan, spans: int) -> _SegmentScan:
    """Every line after the first parsed and checked in full, up to the first that breaks."""
    lines = data[:end].split(b"\n")[:-1]
    expected = scan.first_seq + 1
    prev = "sha256:" + sha256(lines[0]).hexdigest()
    lineno = 1
    for lineno, line in enumerate(lines[1:], 2):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = _NOT_JSON
        failure = _check_line(record, lineno, expected, prev)
        if failure is not None:
            scan.failure = (lineno, failure)
            scan.lines_before_failure, scan.spans_before_failure = lineno - 1, spans
            return scan
        if record.get("type") == "span":
            spans += 1
        expected += 1
        prev = "sha256:" + sha256(line).hexdigest()
    scan.lines, scan.spans = lineno, spans
    scan.last_seq, scan.last_digest = expected - 1, prev
    if end < len(data):
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
