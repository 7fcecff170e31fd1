"""verify links lines by their bytes; it must report exactly what parsing every line reports."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_ledger import provenance
from mcp_ledger.provenance._verify import _scan_segment
from tests.provenance.test_store import segment_files, synthetic_span


def _odd_span(i: int) -> dict[str, object]:
    """A span whose own keys look like a link or a type (an upstream fact can be anything)."""
    span = synthetic_span(i)
    span["attributes"]["prev"] = "sha256:" + "0" * 64
    span["upstream"] = {"prev": "sha256:" + "1" * 64, "seq": i, "type": "header", "items": [{"type": "span"}]}
    return span


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    directory = tmp_path_factory.mktemp("segment")
    store = provenance.SpanStore(directory, fsync="never")
    for i in range(30):
        store.append(_odd_span(i) if i % 7 == 3 else synthetic_span(i))
    store.close()
    (path,) = segment_files(directory)
    return store.chain, path.read_bytes()


def test_spans_with_link_shaped_keys_of_their_own_are_verified_and_counted(tmp_path: Path) -> None:
    store = provenance.SpanStore(tmp_path, fsync="never", segment_bytes=6000)
    for i in range(40):
        store.append(_odd_span(i) if i % 3 else synthetic_span(i))
    store.close()
    report = provenance.Ledger(tmp_path).verify()
    assert report.ok and report.spans == 40


def _mutate(data: bytes, source: st.DataObject) -> bytes:
    draw = source.draw
    lines = data.split(b"\n")[:-1]
    size = len(data)
    match draw(st.sampled_from(["flip", "delete", "insert", "newline", "zero", "cut", "line", "forge", "header"])):
        case "flip":
            at = draw(st.integers(0, size - 1))
            return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        case "delete":
            at = draw(st.integers(0, size - 1))
            return data[:at] + data[at + draw(st.integers(1, 3000)) :]
        case "insert":
            at = draw(st.integers(0, size))
            return data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
        case "newline":
            at = draw(st.integers(0, size - 1))
            return data[:at] + b"\n" + data[at:]
        case "zero":
            at = draw(st.integers(0, size - 1))
            return data[:at] + b"\x00" + data[at + 1 :]
        case "cut":
            return data[: draw(st.integers(0, size))]
        case "line":  # delete, repeat or move whole lines
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            line = lines.pop(i)
            if draw(st.booleans()):
                lines.insert(i, line)
            lines.insert(j, line)
        case "forge":  # a line rewritten as valid, canonical JSON: its own link intact
            i = draw(st.integers(1, len(lines) - 1))
            try:
                record = orjson.loads(lines[i])
            except orjson.JSONDecodeError:
                return data  # an earlier mutation broke this line: nothing to forge from
            if not isinstance(record, dict):
                return data
            record[draw(st.sampled_from(["span_id", "name", "seq", "prev", "type"]))] = draw(
                st.sampled_from(["header", "span", 7, None, "sha256:" + "2" * 64])
            )
            lines[i] = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        case "header":  # a header in the middle
            lines.insert(draw(st.integers(1, len(lines))), lines[0])
    return b"\n".join(lines) + b"\n"


@settings(max_examples=400, deadline=None)
@given(source=st.data())
def test_the_link_check_reports_what_parsing_every_line_reports(
    segment: tuple[str, bytes], source: st.DataObject
) -> None:
    chain, data = segment
    mutated = data
    for _ in range(source.draw(st.integers(1, 2))):
        mutated = _mutate(mutated, source) if mutated.count(b"\n") > 1 else mutated
    assert _scan_segment(mutated, chain, 0) == _scan_segment(mutated, chain, 0, parse_every_line=True)


def test_an_intact_segment_gives_the_same_scan_both_ways(segment: tuple[str, bytes]) -> None:
    chain, data = segment
    fast = _scan_segment(data, chain, 0)
    assert fast == _scan_segment(data, chain, 0, parse_every_line=True)
    assert fast.failure is None and fast.spans == 30 and fast.lines == 31
