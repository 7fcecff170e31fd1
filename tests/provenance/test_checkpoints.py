"""Signed checkpoints protect a chain's tail: each attack the hash chain alone cannot see passes plain
`mcp-ledger verify` and fails `mcp-ledger verify --public-key` once a checkpoint covers it."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_ledger import provenance
from mcp_ledger.provenance._checkpoint import CHECKPOINT_LOG, Checkpoint, check_checkpoints
from mcp_ledger.provenance._keys import SigningKey
from mcp_ledger.provenance._redact import canonical_json
from mcp_ledger.provenance._segments import list_chains
from mcp_ledger.server.cli import main as cli
from tests.provenance.test_store import synthetic_span


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return provenance.keys.load_or_create_key(tmp_path / "config" / "key.pem")


def write_checkpointed_chain(
    directory: Path, key: SigningKey, n: int, *, segment_bytes: int = 4096, every: int = 1000
) -> provenance.SpanStore:
    """A closed chain of ``n`` spans over several segments, checkpointed after every ``every`` spans and at close."""
    writer = provenance.CheckpointWriter(directory, key, every=0, interval=0)  # no thread-timed checkpoints
    store = provenance.SpanStore(directory, fsync="batch", segment_bytes=segment_bytes, checkpoints=writer)
    for i in range(n):
        store.append(synthetic_span(i))
        if (i + 1) % every == 0:
            store.sync()  # the batch flush; a checkpoint covers only lines on disk
            writer.checkpoint()  # what the writer's thread does when due, here at a known line
    store.close()
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def segments(directory: Path, chain: str) -> list[Path]:
    return [s.path for s in list_chains(directory)[chain]]


def rewrite_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def cut_lines_off_the_end(directory: Path, chain: str) -> None:
    last = segments(directory, chain)[-1]
    lines = last.read_bytes().splitlines()
    rewrite_lines(last, lines[:-2])


def delete_the_last_segment(directory: Path, chain: str) -> None:
    segments(directory, chain)[-1].unlink()


def delete_the_whole_chain(directory: Path, chain: str) -> None:
    for path in segments(directory, chain):
        path.unlink()


def edit_the_last_line(directory: Path, chain: str) -> None:
    last = segments(directory, chain)[-1]
    lines = last.read_bytes().splitlines()
    record = orjson.loads(lines[-1])
    record["status"] = {"code": "ERROR", "message": "rewritten"}
    rewrite_lines(last, [*lines[:-1], canonical_json(record)])


def rewrite_and_rehash(directory: Path, chain: str) -> None:
    """Change a span in the middle and recompute every later seq/prev link: the chain stays consistent."""
    prev: str | None = None
    changed = False
    for path in segments(directory, chain):
        out = []
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            if record["type"] == "span" and not changed:
                record["name"] = "tools/call something_else"
                changed = True
            record["prev"] = prev
            new = canonical_json(record)
            prev = "sha256:" + hashlib.sha256(new).hexdigest()
            out.append(new)
        rewrite_lines(path, out)


ATTACKS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "cut lines off the end": (cut_lines_off_the_end, "before its signed checkpoint"),
    "delete the last segment": (delete_the_last_segment, "before its signed checkpoint"),
    "delete a whole chain": (delete_the_whole_chain, "chain is missing"),
    "edit the last line": (edit_the_last_line, "does not match its signed checkpoint"),
    "rewrite and rehash": (rewrite_and_rehash, "the chain was rewritten"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tail_attack_passes_plain_verify_and_fails_verify_with_the_public_key(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str], attack: str
) -> None:
    ledger = tmp_path / "ledger"
    untouched = write_checkpointed_chain(ledger, key, 3)  # a second chain, left alone
    store = write_checkpointed_chain(ledger, key, 40)
    assert len(segments(ledger, store.chain)) > 2
    assert run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)[0] == 0

    mutate, reason = ATTACKS[attack]
    mutate(ledger, store.chain)

    code, out = run(capsys, "verify", "--ledger-dir", str(ledger))
    assert code == 0, out  # the hash chain alone cannot see it
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)
    assert code == 1, out
    assert reason in out
    assert f"{store.chain}: " in out  # the failure names the chain
    assert untouched.chain not in [line.split(":")[0] for line in out.splitlines() if "CHECKPOINT FAILED" in line]


def test_the_json_report_carries_the_checkpoint_failures(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    store = write_checkpointed_chain(tmp_path / "l", key, 10)
    cut_lines_off_the_end(tmp_path / "l", store.chain)
    code, out = run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), "--json", "--public-key", key.public.text)
    report = orjson.loads(out)
    assert code == 1
    assert report["ok"] is False
    assert report["failures"] == []  # the chains themselves are intact
    assert report["checkpoints"]["failures"][0]["where"] == store.chain


def test_without_a_key_verify_only_reports_that_checkpoints_exist(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    write_checkpointed_chain(tmp_path / "l", key, 5)
    code, out = run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), "--json")
    assert code == 0
    assert orjson.loads(out)["checkpoints"] == {"checked": False, "checkpoints": 1}


def cut_chain_before(directory: Path, chain: str, seq: int) -> None:
    """Drop every line from ``seq`` on, segment by segment (emptied segments are deleted)."""
    for path in segments(directory, chain):
        kept = [line for line in path.read_bytes().splitlines() if orjson.loads(line)["seq"] < seq]
        if kept:
            rewrite_lines(path, kept)
        else:
            path.unlink()


def test_an_older_checkpoint_still_protects_the_lines_it_covers(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newest checkpoints cut off the log, and the chain cut further back: the older checkpoint holds."""
    ledger = tmp_path / "l"
    store = write_checkpointed_chain(ledger, key, 40, every=10)
    log = ledger / CHECKPOINT_LOG
    lines = log.read_bytes().splitlines()
    assert len(lines) == 5  # after 10, 20, 30 and 40 spans, and the closing one
    rewrite_lines(log, lines[:1])
    first = Checkpoint.parse(lines[0])
    cut_chain_before(ledger, store.chain, first.seq)
    assert run(capsys, "verify", "--ledger-dir", str(ledger))[0] == 0
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)
    assert code == 1
    assert f"before its signed checkpoint at seq {first.seq}" in out


def test_the_tail_after_the_last_checkpoint_is_not_protected(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the README says cannot be detected: lines after the last checkpoint left in the log."""
    ledger = tmp_path / "l"
    store = write_checkpointed_chain(ledger, key, 8, every=5)
    log = ledger / CHECKPOINT_LOG
    lines = log.read_bytes().splitlines()
    rewrite_lines(log, lines[:-1])  # the closing checkpoint goes...
    cut_chain_before(ledger, store.chain, Checkpoint.parse(lines[0]).seq + 1)  # ...with what it covered
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)
    assert code == 0, out


def test_lines_appended_after_the_closing_checkpoint_fail(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    store = write_checkpointed_chain(tmp_path / "l", key, 5)
    last = segments(tmp_path / "l", store.chain)[-1]
    lines = last.read_bytes().splitlines()
    forged = synthetic_span(99)
    forged["seq"] = orjson.loads(lines[-1])["seq"] + 1
    forged["prev"] = "sha256:" + hashlib.sha256(lines[-1]).hexdigest()
    forged["v"] = 1
    rewrite_lines(last, [*lines, canonical_json(forged)])
    assert run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"))[0] == 0
    code, out = run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), "--public-key", key.public.text)
    assert code == 1
    assert "after its writer closed it" in out


def test_a_forged_or_altered_checkpoint_fails_its_signature(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewriting a chain and its checkpoint without the private key: the signature gives it away."""
    ledger = tmp_path / "l"
    store = write_checkpointed_chain(ledger, key, 12)
    rewrite_and_rehash(ledger, store.chain)
    log = ledger / CHECKPOINT_LOG
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    # Recompute what the rewritten chain's checkpoint would say; keep the old signature.
    lines = [line for p in segments(ledger, store.chain) for line in p.read_bytes().splitlines()]
    from mcp_ledger.provenance._merkle import MerkleAccumulator

    tree = MerkleAccumulator()
    for line in lines:
        tree.append(hashlib.sha256(line).digest())
    for record in records:
        record["root"] = "sha256:" + tree.root().hex()
        record["hash"] = "sha256:" + hashlib.sha256(lines[-1]).hexdigest()
    rewrite_lines(log, [canonical_json(r) for r in records])
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)
    assert code == 1
    assert "signature is wrong" in out


def test_checkpoints_of_another_key_are_reported(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    write_checkpointed_chain(tmp_path / "l", key, 3)
    other = provenance.keys.load_or_create_key(tmp_path / "other.pem")
    code, out = run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), "--public-key", other.public.text)
    assert code == 1
    assert f"signed by key {key.key_id}, not by the public key given" in out
    both = ["--public-key", other.public.text, "--public-key", key.public.text]
    assert run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), *both)[0] == 0


def test_a_checkpoint_removed_from_the_middle_of_the_log_fails(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "l"
    write_checkpointed_chain(ledger, key, 30, every=10)
    log = ledger / CHECKPOINT_LOG
    lines = log.read_bytes().splitlines()
    rewrite_lines(log, [lines[0], *lines[2:]])
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)
    assert code == 1
    assert f"{CHECKPOINT_LOG}:2: log_seq/log_prev do not follow line 1" in out


def test_a_witness_catches_a_checkpoint_log_deleted_with_its_chain(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger, witness = tmp_path / "ledger", tmp_path / "witness"
    witness.mkdir()
    writer = provenance.CheckpointWriter(ledger, key, every=0, interval=0, witness=witness)
    store = provenance.SpanStore(ledger, fsync="batch", checkpoints=writer)
    for i in range(6):
        store.append(synthetic_span(i))
    store.close()
    assert (witness / CHECKPOINT_LOG).read_bytes() == (ledger / CHECKPOINT_LOG).read_bytes()
    delete_the_whole_chain(ledger, store.chain)
    (ledger / CHECKPOINT_LOG).unlink()

    # Without the witness nothing is left to say the chain ever existed.
    assert run(capsys, "verify", "--ledger-dir", str(ledger), "--public-key", key.public.text)[0] == 0
    witnessed = ["--public-key", key.public.text, "--checkpoint-witness", str(witness)]
    code, out = run(capsys, "verify", "--ledger-dir", str(ledger), *witnessed)
    assert code == 1
    assert "the witness holds checkpoint" in out
    assert "chain is missing" in out


def test_a_torn_checkpoint_is_set_aside_by_the_next_writer(tmp_path: Path, key: SigningKey) -> None:
    ledger = tmp_path / "l"
    write_checkpointed_chain(ledger, key, 3)
    log = ledger / CHECKPOINT_LOG
    with open(log, "ab") as f:
        f.write(b'{"chain":"half-writ')
    write_checkpointed_chain(ledger, key, 3)
    assert (ledger / (CHECKPOINT_LOG + ".torn")).read_bytes() == b'{"chain":"half-writ'
    assert check_checkpoints(ledger, [key.public]).ok


def test_a_checkpoint_is_written_every_n_lines_by_the_writers_thread(tmp_path: Path, key: SigningKey) -> None:
    import time

    writer = provenance.CheckpointWriter(tmp_path, key, every=10, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="never", checkpoints=writer)
    for i in range(25):
        store.append(synthetic_span(i))
    deadline = time.monotonic() + 10
    while writer.written == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.written >= 1
    store.close()
    last = Checkpoint.parse((tmp_path / CHECKPOINT_LOG).read_bytes().splitlines()[-1])
    assert last.closed
    assert last.seq == 25  # 25 spans after the header
    assert check_checkpoints(tmp_path, [key.public]).covered == {store.chain: 26}


def test_a_store_that_records_nothing_writes_no_checkpoint(tmp_path: Path, key: SigningKey) -> None:
    writer = provenance.CheckpointWriter(tmp_path / "l", key, every=1, interval=0.01)
    provenance.SpanStore(tmp_path / "l", checkpoints=writer).close()
    assert not (tmp_path / "l").exists()


def test_the_key_is_created_once_with_mode_0600_outside_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MCP_LEDGER_CHECKPOINT_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, out = run(capsys, "key", "show")
    path = tmp_path / "xdg" / "mcp-ledger" / "checkpoint-key.pem"
    assert code == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert "created a new checkpoint key" in out
    public = out.strip().splitlines()[0]
    assert public.startswith("ed25519:")
    assert run(capsys, "key", "show")[1].strip() == public  # the same key, not a new one (and no note)
    assert provenance.keys.load_public_key(public) == provenance.keys.load_or_create_key(path).public
    code, pem = run(capsys, "key", "show", "--pem")
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "pub.pem").write_text(pem)
    assert provenance.keys.load_public_key(str(tmp_path / "pub.pem")).text == public


def test_a_key_inside_the_ledger_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(provenance.keys.CheckpointKeyError, match="inside the ledger directory"):
        provenance.keys.load_or_create_key(tmp_path / "ledger" / "k.pem", ledger_dir=tmp_path / "ledger")
    assert not (tmp_path / "ledger").exists()


def test_a_damaged_key_file_stops_serve_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    monkeypatch.setenv("MCP_LEDGER_DIR", str(tmp_path / "l"))
    code, out = run(capsys, "serve", "--checkpoint-key", str(bad))
    assert code == 2
    assert "is not an Ed25519 private key" in out
    assert "Traceback" not in out


def test_a_witness_inside_the_ledger_or_missing_stops_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "l"
    ledger.mkdir()
    (ledger / "w").mkdir()
    code, out = run(capsys, "serve", "--ledger-dir", str(ledger), "--checkpoint-witness", str(ledger / "w"))
    assert code == 2
    assert "inside the ledger directory" in out
    code, out = run(capsys, "serve", "--ledger-dir", str(ledger), "--checkpoint-witness", str(tmp_path / "absent"))
    assert code == 2
    assert "is not a directory" in out


def test_bad_public_keys_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "l").mkdir()
    for value in ("ed25519:abc", str(tmp_path / "missing.pem"), "ed25519:" + "A" * 40):
        code, out = run(capsys, "verify", "--ledger-dir", str(tmp_path / "l"), "--public-key", value)
        assert code == 2
        assert "--public-key" in out
        assert "Traceback" not in out


def test_copying_a_ledger_keeps_its_checkpoints_checkable(tmp_path: Path, key: SigningKey) -> None:
    """Checkpoints name chains, not paths: a ledger moved elsewhere still verifies."""
    write_checkpointed_chain(tmp_path / "a", key, 7)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert check_checkpoints(tmp_path / "b", [key.public]).ok


def test_a_checkpoint_covers_only_lines_already_flushed_to_disk(tmp_path: Path, key: SigningKey) -> None:
    """A power loss can take back unflushed lines: a checkpoint naming them would look like a cut tail."""
    writer = provenance.CheckpointWriter(tmp_path, key, every=0, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="batch", fsync_interval=3600, checkpoints=writer)
    for i in range(4):
        store.append(synthetic_span(i))
    assert writer.checkpoint() is None  # nothing flushed yet
    store.sync()
    store.append(synthetic_span(4))
    checkpoint = writer.checkpoint()
    assert checkpoint is not None
    assert checkpoint.tree_size == 5  # header and four spans; the fifth is not on disk yet
    store.close()
    assert check_checkpoints(tmp_path, [key.public]).covered == {store.chain: 6}


def test_after_a_failed_flush_no_checkpoint_names_more_lines(tmp_path: Path, key: SigningKey) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    writer = provenance.CheckpointWriter(tmp_path, key, every=0, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="always", fsync_fn=failing_fsync, checkpoints=writer)
    store.append(synthetic_span(0))
    with pytest.raises(provenance.RecordError):
        store.wait_durable(1)
    store.close()
    assert not (tmp_path / CHECKPOINT_LOG).exists()


def test_a_segment_that_could_not_be_created_leaves_the_tree_in_step_with_the_chain(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = provenance.CheckpointWriter(tmp_path, key, every=0, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="never", segment_bytes=1024, checkpoints=writer)
    store.append(synthetic_span(0))

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", no_rename)
    with pytest.raises(provenance.RecordError):
        store.append(synthetic_span(1))  # the rotation's new segment is never renamed into place
    monkeypatch.undo()
    assert store.recover()
    store.close()
    report = check_checkpoints(tmp_path, [key.public])
    assert report.ok, report.failures
    assert report.covered == {store.chain: 4}  # two headers, two spans


async def test_prov_verify_with_the_public_key_sees_a_deleted_chain(
    connect: Any, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    public = run(capsys, "key", "show")[1].splitlines()[0]  # the key the servers sign with (the tests' own)
    async with connect(mode) as (client, first):
        await client.call_tool("fake_echo", {"text": "soon gone"})
    gone = first.store.chain  # closed: its closing checkpoint covers the call
    async with connect(mode) as (client, app):
        checked = (await client.call_tool("prov_verify", {"public_key": public})).structured_content
        assert checked is not None
        assert checked["ok"] is True
        assert checked["checkpoints"]["chains_covered"] >= 1
        delete_the_whole_chain(app.ledger_dir, gone)
        plain = (await client.call_tool("prov_verify", {})).structured_content
        assert plain is not None
        assert plain["ok"] is True
        assert plain["checkpoints"] is None
        checked = (await client.call_tool("prov_verify", {"public_key": public})).structured_content
        assert checked is not None
        assert checked["ok"] is False
        assert checked["checkpoints"]["failures"][0]["where"] == gone
        assert "chain is missing" in checked["checkpoints"]["failures"][0]["reason"]
        bad = await client.call_tool("prov_verify", {"public_key": "/etc/passwd"})
        assert bad.is_error


@pytest.mark.parametrize("settle", [True, False], ids=["settled after each line", "digests taken lazily"])
def test_a_line_s_digest_is_the_same_whether_settled_early_or_taken_by_the_next_line(
    tmp_path: Path, key: SigningKey, settle: bool
) -> None:
    # A server settles once its answer is out (SpanStore.settle); otherwise the next line, a rotation or the
    # checkpoint thread takes the digest. The chain and what checkpoints cover must not tell the two apart.
    writer = provenance.CheckpointWriter(tmp_path, key, every=0, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="never", segment_bytes=2048, checkpoints=writer)
    for i in range(12):
        store.append(synthetic_span(i))
        if settle:
            store.settle()
        if i == 4:
            first = writer.checkpoint()
            assert first is not None and first.tree_size == store._seq  # the line just written is covered
    store.close()
    lines = [line for path in segments(tmp_path, store.chain) for line in path.read_bytes().splitlines()]
    assert len(segments(tmp_path, store.chain)) > 1
    for prev_line, line in itertools.pairwise(lines):
        assert orjson.loads(line)["prev"] == "sha256:" + hashlib.sha256(prev_line).hexdigest()
    assert provenance.Ledger(tmp_path).verify().ok
    assert check_checkpoints(tmp_path, [key.public]).covered == {store.chain: len(lines)}
