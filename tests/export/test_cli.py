"""`mcp-ledger export` as a person uses it: JSON lines, bad input, a failed or interrupted run."""

from __future__ import annotations

import errno
import hashlib
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_ledger import provenance
from mcp_ledger.provenance import _export
from mcp_ledger.provenance._segments import iter_lines
from tests.export.conftest import run


def ledger_span_lines(ledger: Path) -> dict[bytes, str]:
    """Every span line of the ledger, as bytes, with the ``sha256:`` its next line carries as ``prev``."""
    lines = {}
    for segment in sorted(ledger.glob("*.jsonl")):
        for _, line in iter_lines(segment.read_bytes()):
            if b'"type":"span"' in line:
                lines[line] = "sha256:" + hashlib.sha256(line).hexdigest()
    return lines


def test_jsonl_holds_the_ledger_lines_byte_for_byte(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spans"
    code, _, err = run(capsys, "export", "--ledger-dir", str(ledger), "--format", "jsonl", "--out", str(out))
    assert code == 0, err
    exported = [line for f in sorted(out.glob("day=*/part-*.jsonl")) for line in f.read_bytes().splitlines()]
    originals = ledger_span_lines(ledger)
    assert len(exported) == len(originals) == 240 and set(exported) == set(originals)
    # Their hashes are the ledger's: each is the `prev` of the line after it in its chain.
    prevs = {orjson.loads(line)["prev"] for line in originals}
    assert sum(originals[line] in prevs for line in exported) >= 240 - 2  # all but each chain's last span


def test_jsonl_to_stdout_with_filters(ledger: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code = _cli(["export", "--ledger-dir", str(ledger), "--format", "jsonl", "--out", "-", "--status", "error"])
    out, err = capsysbinary.readouterr()
    lines = out.splitlines()
    assert code == 0 and lines and b"exported %d of 240 spans" % len(lines) in err
    assert set(lines) <= set(ledger_span_lines(ledger))
    assert all(orjson.loads(line)["status"]["code"] == "ERROR" for line in lines)
    assert len(lines) == len(provenance.Ledger(ledger).query(status="error", limit=200)["spans"])


def _cli(argv: list[str]) -> int:
    from mcp_ledger.server.cli import main

    return main(argv)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--since", "last tuesday"], "since: expected an ISO-8601 time"),
        (["--until", "3000-01-01"], "until: '3000-01-01' is out of range"),
        (["--trace", "XYZ"], "trace: expected a trace id"),
        (["--endpoint", "http://127.0.0.1:4318"], "--endpoint is for --format otlp"),
    ],
)
def test_bad_arguments_are_exit_2_with_a_message_and_no_output(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "lake"
    code, stdout, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(out), *extra)
    assert code == 2 and stdout == "" and message in err and "Traceback" not in err
    assert not out.exists()


def test_an_unusable_out_directory_is_exit_2_and_nothing_is_touched(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    full = tmp_path / "full"
    full.mkdir()
    (full / "day=2026-11-20").mkdir()
    cases = {
        str(a_file): "is a file",
        str(a_file / "lake"): "cannot use --out",
        str(full): "is not empty",
        "": "--out DIR is required",
    }
    for out, message in cases.items():
        code, stdout, err = run(capsys, "export", "--ledger-dir", str(ledger), *(["--out", out] if out else []))
        assert code == 2 and stdout == "" and message in err and "Traceback" not in err, (out, err)
    assert a_file.read_text() == "mine" and [p.name for p in full.iterdir()] == ["day=2026-11-20"]
    code, _, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", "-")
    assert code == 2 and "--format parquet writes files: give --out DIR" in err
    code, _, err = run(capsys, "export", "--ledger-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert code == 2 and "no ledger directory" in err and not (tmp_path / "x").exists()


def test_without_pyarrow_parquet_says_which_extra_to_install(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(tmp_path / "lake"))
    assert code == 2 and "pip install 'mcp-ledger[lake]'" in err and "Traceback" not in err
    assert not (tmp_path / "lake").exists()
    code, _, err = run(capsys, "export", "--ledger-dir", str(ledger), "--format", "jsonl", "--out", str(tmp_path / "j"))
    assert code == 0, err  # JSON lines need no extra


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_run_that_fails_midway_leaves_nothing(
    ledger: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    """Files already renamed into place, the file being written and the directories are all removed."""
    monkeypatch.setattr(_export, "BATCH_ROWS", 10)
    monkeypatch.setattr(_export, "OPEN_PARTS", 1)
    writes: list[int] = []
    renamed: list[int] = []
    real_write = _export._ParquetPart._write

    def failing_write(self: Any, rows: list[Any]) -> None:
        writes.append(len(rows))
        if len(writes) == 12:
            renamed.append(len(list(self.final.parent.parent.glob("day=*/part-*.parquet"))))
            raise failure
        real_write(self, rows)

    monkeypatch.setattr(_export._ParquetPart, "_write", failing_write)
    kept = tmp_path / "kept"
    kept.mkdir()
    for out in (tmp_path / "new", kept):
        writes.clear()
        code, stdout, err = run(capsys, "export", "--ledger-dir", str(ledger), "--out", str(out))
        if isinstance(failure, OSError):
            assert code == 2 and "No space left on device; nothing of this run was kept" in err
        else:
            assert code == 130 and "interrupted; nothing of this run was kept" in err
        assert "Traceback" not in err and stdout == ""
    assert renamed == [2, 2]  # days whose files were already finished and renamed into place when it failed
    assert not (tmp_path / "new").exists()  # the run made it, and took it away again
    assert kept.is_dir() and not list(kept.iterdir())  # the user's empty directory stays, empty
