"""A large ledger written by writers that are gone, made fast: valid chained segments written directly.

The store writes about 150k spans/s; a gigabyte of history (650k spans) would take a minute of the
benchmark's time through it. Here each line is a span of ``bench.store``'s shapes serialised once as a
template and completed with its ``prev``, ``seq`` and ``span_id`` by byte concatenation (keys sorted,
compact: the bytes the store would write), so only the chain's sha256 is computed per line.

A writer that is killed leaves its last segment reserved ahead (zero bytes after the last line) and
sometimes a torn line; :meth:`DeadLedger.kill_writers` puts that state back before each measurement,
because the first server to start repairs it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.store import pool_of_spans

__all__ = ["DeadLedger", "write_dead_ledger"]

SEGMENT_BYTES = 64 * 1024 * 1024  # the server's default --segment-mb
RESERVED_TAIL = 256 * 1024  # what a killed writer leaves reserved after its last line
TORN_LINE = b'{"attributes":{"gen_ai.tool.name":"github_pr_get","mcp.client.na'
_MARKS = {"prev": "@@PREV@@", "seq": "@@SEQ@@", "span_id": "@@SPAN@@"}
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


@dataclass
class DeadLedger:
    directory: Path
    chains: list[list[Path]] = field(default_factory=list)
    spans: int = 0
    bytes: int = 0
    seconds: float = 0.0
    _whole: dict[Path, int] = field(default_factory=dict)  # last segments' sizes without a tail

    @property
    def segments(self) -> int:
        return sum(len(chain) for chain in self.chains)

    def kill_writers(self) -> None:
        """Put back what killed writers leave: every chain's last segment reserved ahead, the first
        chain's with a torn line, the second chain killed mid-rotation (its last two segments reserved
        ahead); remove everything else (chains of later servers, ``.torn`` files, the index)."""
        ours = {path for chain in self.chains for path in chain}
        for path in self.directory.iterdir():
            if path not in ours:
                path.unlink()
        for number, chain in enumerate(self.chains):
            tails = chain[-2:] if number == 1 and len(chain) > 1 else chain[-1:]
            for path in tails:
                whole = self._whole[path]
                with open(path, "r+b") as f:
                    f.truncate(whole)
                    f.seek(whole)
                    if number == 0 and path == chain[-1]:
                        f.write(TORN_LINE)
                    f.truncate(whole + RESERVED_TAIL)


def _templates(count: int) -> list[tuple[bytes, bytes, bytes, bytes]]:
    templates = []
    for span in pool_of_spans(count):
        record = {**span, "v": 1, **_MARKS}
        line = orjson.dumps(record, option=_OPTIONS)
        head, rest = line.split(b'"@@PREV@@"')
        middle, rest = rest.split(b'"@@SEQ@@"')
        tail, end = rest.split(b'"@@SPAN@@"')
        templates.append((head, middle, tail, end))
    return templates


def _header(chain: str, index: int, seq: int, prev: str | None) -> bytes:
    record = {
        "type": "header",
        "chain": chain,
        "segment": index,
        "created_ns": str(time.time_ns()),
        "writer": {"pid": 100_000 + index, "host": "bench", "server": "mcp-ledger", "version": "bench"},
        "v": 1,
        "seq": seq,
        "prev": prev,
    }
    return orjson.dumps(record, option=_OPTIONS)


def write_dead_ledger(
    directory: Path, *, total_bytes: int, chains: int, segment_bytes: int = SEGMENT_BYTES
) -> DeadLedger:
    """About ``total_bytes`` of spans in ``chains`` chains of ``segment_bytes`` segments, left as
    killed writers leave them."""
    began = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    ledger = DeadLedger(directory)
    templates = _templates(2000)
    sha256 = hashlib.sha256
    per_chain = total_bytes // chains
    span_number = 0
    for number in range(chains):
        chain = f"20261101T{number:06d}Z-p{4000 + number}-dead{number:02d}"
        paths: list[Path] = []
        seq, prev, written = 0, None, 0
        while written < per_chain:
            index = len(paths)
            header = _header(chain, index, seq, prev)
            lines = [header]
            size = len(header) + 1
            prev, seq = "sha256:" + sha256(header).hexdigest(), seq + 1
            link = prev.encode()
            while written + size < per_chain:
                head, middle, tail, end = templates[span_number % len(templates)]
                line = b"".join((head, b'"', link, b'"', middle, b"%d" % seq, tail, b'"%016x"' % span_number, end))
                if size + len(line) + 1 > segment_bytes:
                    break
                lines.append(line)
                size += len(line) + 1
                link = b"sha256:" + sha256(line).hexdigest().encode()
                seq += 1
                span_number += 1
            prev = link.decode()
            path = directory / f"{chain}.{index:06d}.jsonl"
            with open(path, "wb") as f:
                f.write(b"\n".join(lines) + b"\n")
            paths.append(path)
            ledger._whole[path] = size
            written += size
        ledger.chains.append(paths)
    ledger.spans = span_number
    ledger.bytes = sum(os.path.getsize(path) for chain in ledger.chains for path in chain)
    ledger.kill_writers()
    ledger.seconds = time.perf_counter() - began
    return ledger
