"""Inclusion proofs: `mcp-ledger prove` and prov_span hand out evidence that `mcp-ledger verify-proof`
checks offline, and any change to the proof, its checkpoint or the key fails it."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_ledger import provenance
from mcp_ledger.provenance._checkpoint import signed_message
from mcp_ledger.provenance._keys import SigningKey
from mcp_ledger.server.cli import main as cli
from tests.provenance.test_checkpoints import ATTACKS, run, write_checkpointed_chain
from tests.provenance.test_store import synthetic_span


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return provenance.keys.load_or_create_key(tmp_path / "config" / "key.pem")


def span_ids(directory: Path) -> list[str]:
    return [span["span_id"] for span in provenance.Ledger(directory).scan()]


def prove_to_file(capsys: pytest.CaptureFixture[str], ledger: Path, span_id: str, path: Path) -> Any:
    code, out = run(capsys, "prove", "--ledger-dir", str(ledger), span_id, "-o", str(path))
    assert code == 0, out
    return orjson.loads(path.read_bytes())


def verify_file(capsys: pytest.CaptureFixture[str], path: Path, key: str) -> tuple[int, str]:
    return run(capsys, "verify-proof", str(path), "--public-key", key)


def test_a_proof_from_prove_verifies_offline_for_every_span(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger"
    write_checkpointed_chain(ledger, key, 13, every=5)
    for i, span_id in enumerate(span_ids(ledger)):
        proof = prove_to_file(capsys, ledger, span_id, tmp_path / f"{i}.json")
        assert proof["tree_size"] == 13 + 3  # the newest checkpoint: 13 spans and three segment headers
        assert orjson.loads(proof["line"])["span_id"] == span_id
        code, out = verify_file(capsys, tmp_path / f"{i}.json", key.public.text)
        assert code == 0, out
        assert out.startswith(f"proof ok: span {span_id} is line {proof['leaf_index']} of chain")


def test_a_proof_needs_nothing_but_itself_and_the_key(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger"
    write_checkpointed_chain(ledger, key, 4)
    prove_to_file(capsys, ledger, span_ids(ledger)[2], tmp_path / "p.json")
    for path in ledger.iterdir():
        path.unlink()
    ledger.rmdir()
    (tmp_path / "pub").write_text(key.public.text + "\n")
    assert verify_file(capsys, tmp_path / "p.json", str(tmp_path / "pub"))[0] == 0


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path


def changed(value: Any) -> Any:
    """A different value of the same kind: one character in the middle of a string (same alphabet), n+1, not b."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "sha256:" + "0" * 64
    i = len(value) // 2
    ch = value[i]
    alphabet = "0123456789abcdef" if ch in "0123456789abcdef" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    replacement = next(c for c in alphabet if c != ch)
    return value[:i] + replacement + value[i + 1 :]


def test_any_change_to_the_proof_or_its_checkpoint_fails_it(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger"
    write_checkpointed_chain(ledger, key, 9)
    proof = prove_to_file(capsys, ledger, span_ids(ledger)[3], tmp_path / "p.json")
    paths = list(leaves(proof))
    assert ("checkpoint", "sig") in paths and ("audit_path", 0) in paths and ("line",) in paths
    for path in paths:
        forged = copy.deepcopy(proof)
        target = forged
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = changed(target[path[-1]])
        check = provenance.verify_proof(forged, [key.public])
        assert not check.ok, f"a change to {path} went unnoticed"
    for broken in (
        {**proof, "audit_path": proof["audit_path"][:-1]},
        {**proof, "audit_path": [*proof["audit_path"], "0" * 64]},
    ):
        assert not provenance.verify_proof(broken, [key.public]).ok
    (tmp_path / "forged.json").write_bytes(orjson.dumps({**proof, "leaf_index": proof["leaf_index"] + 1}))
    code, out = verify_file(capsys, tmp_path / "forged.json", key.public.text)
    assert code == 1
    assert out.startswith("proof FAILED: ")


def test_a_proof_fails_under_another_key(tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "ledger"
    write_checkpointed_chain(ledger, key, 3)
    prove_to_file(capsys, ledger, span_ids(ledger)[0], tmp_path / "p.json")
    other = provenance.keys.load_or_create_key(tmp_path / "other.pem")
    code, out = verify_file(capsys, tmp_path / "p.json", other.public.text)
    assert code == 1
    assert "not by the public key given" in out
    # A checkpoint re-signed with another key (its key_id changed to match) fails the real key.
    proof = orjson.loads((tmp_path / "p.json").read_bytes())
    record = proof["checkpoint"]
    record["key_id"] = other.key_id
    record["sig"] = base64.b64encode(other.sign(signed_message(record))).decode()
    assert provenance.verify_proof(proof, [other.public]).ok
    assert not provenance.verify_proof(proof, [key.public]).ok


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"format": "something else"}'])
def test_a_file_that_is_no_proof_fails_with_a_reason(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    (tmp_path / "p.json").write_bytes(content)
    code, out = verify_file(capsys, tmp_path / "p.json", key.public.text)
    assert code == 1
    assert "not an inclusion proof" in out
    assert verify_file(capsys, tmp_path / "absent.json", key.public.text)[0] == 2


def test_prove_says_when_no_checkpoint_covers_a_span_yet(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = provenance.CheckpointWriter(tmp_path, key, every=0, interval=0)
    store = provenance.SpanStore(tmp_path, fsync="never", checkpoints=writer)
    store.append(synthetic_span(0))
    writer.checkpoint()
    late = synthetic_span(1)
    store.append(late)
    code, out = run(capsys, "prove", "--ledger-dir", str(tmp_path), late["span_id"])
    assert code == 1
    assert "no signed checkpoint covers span" in out
    code, out = run(capsys, "prove", "--ledger-dir", str(tmp_path), "0123456789abcdef")
    assert code == 1
    assert "no span 0123456789abcdef" in out
    store.close()  # the closing checkpoint covers it
    assert run(capsys, "prove", "--ledger-dir", str(tmp_path), late["span_id"])[0] == 0


@pytest.mark.parametrize("attack", ["edit the last line", "rewrite and rehash"])
def test_prove_refuses_a_chain_that_no_longer_matches_its_checkpoint(
    tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str], attack: str
) -> None:
    store = write_checkpointed_chain(tmp_path, key, 6)
    first = span_ids(tmp_path)[0]
    ATTACKS[attack][0](tmp_path, store.chain)
    code, out = run(capsys, "prove", "--ledger-dir", str(tmp_path), first)
    assert code == 1
    assert "does not match its signed checkpoint" in out


async def test_prov_span_returns_a_proof_that_verifies_offline(
    connect: Any, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connect(mode, checkpoint_every=1) as (client, app):
        echo = await client.call_tool("fake_echo", {"text": "cite me"})
        span_id = echo.meta[provenance.SPAN_ID_META_KEY]
        # The checkpoint follows the batch flush (within a second) and the next line: poll, as an agent would.
        deadline = time.monotonic() + 30
        while True:
            record = (await client.call_tool("prov_span", {"span_id": span_id})).structured_content
            assert record is not None
            if record.get("proof") is not None or time.monotonic() > deadline:
                break
            assert "no signed checkpoint covers" in record["proof_unavailable"]
            await asyncio.sleep(0.05)
        assert record["proof"] is not None, record
        assert record["span"]["span_id"] == span_id
    code, out = run(capsys, "key", "show")  # the key the server signed with (the tests' MCP_LEDGER_CHECKPOINT_KEY)
    public = out.strip()
    (tmp_path / "p.json").write_bytes(orjson.dumps(record["proof"]))
    code, out = verify_file(capsys, tmp_path / "p.json", public)
    assert code == 0, out
    assert cli(["verify", "--ledger-dir", str(app.ledger_dir), "--public-key", public]) == 0
