"""Chain verification: every line parses, ``seq`` is gap-free and every ``prev`` matches.

A hash chain catches edits, deletions, insertions and reordering anywhere inside a chain. It cannot
see a cut-off tail by itself (that needs a checkpoint kept elsewhere).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from provenance._segments import Segment, iter_lines, list_chains, segment_is_live
from provenance._store import line_digest

__all__ = ["ChainFailure", "ChainReport", "VerifyReport", "verify"]


@dataclass(frozen=True)
class ChainFailure:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ChainReport:
    chain: str
    segments: int = 0
    lines: int = 0
    spans: int = 0
    live: bool = False
    failure: ChainFailure | None = None

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": self.directory,
            "chains": len(self.chains),
            "spans": self.spans,
            "lines": sum(chain.lines for chain in self.chains),
            "failures": [asdict(failure) for failure in self.failures],
            "torn_files": self.torn_files,
        }


def verify(directory: Path) -> VerifyReport:
    """Verify every chain in ``directory``; the report names the first break of each chain."""
    directory = Path(directory)
    report = VerifyReport(directory=str(directory))
    report.torn_files = sorted(p.name for p in directory.glob("*.torn")) if directory.is_dir() else []
    for chain, segments in list_chains(directory).items():
        report.chains.append(verify_chain(chain, segments))
    return report


def verify_chain(chain: str, segments: list[Segment]) -> ChainReport:
    report = ChainReport(chain=chain, segments=len(segments))
    expected_seq = 0
    prev: str | None = None
    for position, segment in enumerate(segments):
        name = segment.path.name
        if segment.index != position:
            report.failure = ChainFailure(name, 1, f"segment {position} of chain {chain} is missing")
            return report
        data = segment.path.read_bytes()
        last = position == len(segments) - 1
        end = 0
        for lineno, (offset, line) in enumerate(iter_lines(data), 1):
            end = offset + len(line) + 1
            kind, failure = _check_line(line, lineno, expected_seq, prev, chain, segment.index)
            if failure is not None:
                report.failure = ChainFailure(name, lineno, failure)
                return report
            expected_seq += 1
            prev = line_digest(line)
            report.lines += 1
            if kind == "span":
                report.spans += 1
        if end == 0 and not data:
            report.failure = ChainFailure(name, 1, "segment is empty (no header line)")
            return report
        if end < len(data):
            live = last and segment_is_live(segment.path)
            if not live:
                lineno = data.count(b"\n", 0, end) + 1
                report.failure = ChainFailure(
                    name, lineno, "torn last line (no newline): run `mcp-ledger verify --recover` to set it aside"
                )
                return report
        if last:
            report.live = segment_is_live(segment.path)
    return report


def _check_line(
    line: bytes, lineno: int, expected_seq: int, prev: str | None, chain: str, index: int
) -> tuple[Any, str | None]:
    """Return the line's ``type`` and what is wrong with it (None when nothing is)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "line does not parse as JSON"
    if not isinstance(record, dict):
        return None, "line is not a JSON object"
    kind = record.get("type")
    seq = record.get("seq")
    if seq != expected_seq:
        return kind, f"seq is {seq!r}, expected {expected_seq} (a line was removed, inserted or moved)"
    if record.get("prev") != prev:
        if lineno == 1:
            return kind, "prev does not match the last line of the previous segment"
        return kind, f"prev does not match the digest of line {lineno - 1} (that line was changed, or lines were moved)"
    if lineno == 1:
        if kind != "header":
            return kind, "first line of a segment is not a header"
        if record.get("chain") != chain or record.get("segment") != index:
            return kind, "header names another chain or segment than its file"
    elif kind == "header":
        return kind, "header line in the middle of a segment"
    return kind, None
