"""Inclusion proofs: evidence, checkable offline, that a span is in its chain as a signed checkpoint pins it.

A proof carries the span's exact line, its position (``leaf_index`` = its ``seq``), the RFC 9162
audit path from its leaf to the Merkle root, and the signed checkpoint holding that root. Anyone with
the public key (``mcp-ledger key show``) can check it without the ledger: the line hashes to the leaf,
the path leads to the checkpoint's root at the checkpoint's tree size, and the key signed the
checkpoint. Proving reads one chain only (the index says which), never the whole ledger.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mcp_ledger.provenance._checkpoint import CHECKPOINT_LOG, Checkpoint, CheckpointError, read_checkpoint_log
from mcp_ledger.provenance._index import IndexUnavailable, open_index
from mcp_ledger.provenance._keys import PublicKey
from mcp_ledger.provenance._merkle import inclusion_proof, leaf_hash, tree_root, verify_inclusion
from mcp_ledger.provenance._segments import Segment, iter_lines, list_chains

__all__ = ["PROOF_FORMAT", "ProofCheck", "ProofError", "prove_span", "verify_proof"]

PROOF_FORMAT = "mcp-ledger/inclusion-proof/v1"


class ProofError(Exception):
    """No proof can be made for this span (yet); the message says why and what to do."""


@dataclass(frozen=True)
class _Located:
    chain: str
    seq: int
    line: bytes


def _locate(directory: Path, span_id: str) -> _Located | None:
    """The span's chain, seq and exact line: through the index, else by scanning the segments."""
    try:
        index = open_index(directory)
        index.catch_up()
        located = index.select(["span_id = ?"], [span_id], order="spans.id", limit=5)
    except (IndexUnavailable, OSError):
        located = None
    if located is not None:
        for item in located:
            segment = Segment.parse(Path(item.segment))
            try:
                with open(directory / item.segment, "rb") as f:
                    line = os.pread(f.fileno(), item.length, item.offset)
            except FileNotFoundError:
                continue
            found = _match(line, span_id, segment)
            if found is not None:
                return found
        return None
    for segments in list_chains(directory).values():
        for segment in segments:
            for _, line in iter_lines(segment.path.read_bytes()):
                if span_id.encode() in line:
                    found = _match(line, span_id, segment)
                    if found is not None:
                        return found
    return None


def _match(line: bytes, span_id: str, segment: Segment | None) -> _Located | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if segment is None or not isinstance(record, dict) or record.get("span_id") != span_id:
        return None
    seq = record.get("seq")
    return _Located(segment.chain, seq, line) if isinstance(seq, int) and not isinstance(seq, bool) else None


def _latest_checkpoint(directory: Path, chain: str, seq: int) -> Checkpoint | None:
    best: Checkpoint | None = None
    for line in read_checkpoint_log(directory / CHECKPOINT_LOG):
        try:
            checkpoint = Checkpoint.parse(line)
        except CheckpointError:
            continue
        if (
            checkpoint.chain == chain
            and checkpoint.tree_size > seq
            and (best is None or checkpoint.tree_size > best.tree_size)
        ):
            best = checkpoint
    return best


def _chain_leaves(directory: Path, chain: str, size: int) -> list[bytes]:
    """The leaf hashes of the chain's first ``size`` lines."""
    leaves: list[bytes] = []
    for segment in list_chains(directory).get(chain, []):
        for _, line in iter_lines(segment.path.read_bytes()):
            leaves.append(leaf_hash(hashlib.sha256(line).digest()))
            if len(leaves) == size:
                return leaves
    return leaves


def prove_span(directory: Path, span_id: str) -> dict[str, Any]:
    """An inclusion proof of ``span_id`` against the latest signed checkpoint of its chain.

    Raises :class:`ProofError` when the span is unknown, no checkpoint covers it yet, or its chain no
    longer matches the checkpoint (then ``mcp-ledger verify --public-key`` says where).
    """
    directory = Path(directory)
    located = _locate(directory, span_id) if directory.is_dir() else None
    if located is None:
        raise ProofError(f"no span {span_id} in the ledger; list spans with prov_query / mcp-ledger query")
    checkpoint = _latest_checkpoint(directory, located.chain, located.seq)
    if checkpoint is None:
        raise ProofError(
            f"no signed checkpoint covers span {span_id} yet (line {located.seq} of chain {located.chain}); its "
            "server writes one every --checkpoint-every lines or --checkpoint-interval seconds and when it exits"
        )
    leaves = _chain_leaves(directory, located.chain, checkpoint.tree_size)
    if len(leaves) < checkpoint.tree_size or tree_root(leaves) != checkpoint.root_bytes:
        raise ProofError(
            f"chain {located.chain} does not match its signed checkpoint at seq {checkpoint.seq}; "
            "run `mcp-ledger verify --public-key KEY` to see where"
        )
    leaf = leaf_hash(hashlib.sha256(located.line).digest())
    if leaves[located.seq] != leaf:
        raise ProofError(f"span {span_id} is not line {located.seq} of chain {located.chain}; run mcp-ledger verify")
    try:
        text = located.line.decode()
    except UnicodeDecodeError:
        raise ProofError(f"the line of span {span_id} is not UTF-8; run mcp-ledger verify") from None
    return {
        "format": PROOF_FORMAT,
        "span_id": span_id,
        "chain": located.chain,
        "line": text,
        "line_hash": "sha256:" + hashlib.sha256(located.line).hexdigest(),
        "leaf_index": located.seq,
        "leaf_hash": leaf.hex(),
        "tree_size": checkpoint.tree_size,
        "audit_path": [node.hex() for node in inclusion_proof(located.seq, leaves)],
        "checkpoint": checkpoint.record,
    }


@dataclass(frozen=True)
class ProofCheck:
    ok: bool
    reason: str
    span_id: str | None = None
    checkpoint: Checkpoint | None = None


def _hex32(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def verify_proof(proof: Any, keys: Sequence[PublicKey]) -> ProofCheck:
    """Check an inclusion proof offline; the result says what was proven or the first thing that is wrong."""

    def fail(reason: str) -> ProofCheck:
        return ProofCheck(False, reason)

    if not isinstance(proof, dict) or proof.get("format") != PROOF_FORMAT:
        return fail(f"not an inclusion proof (expected format {PROOF_FORMAT!r})")
    span_id, chain, line, index, size = (proof.get(k) for k in ("span_id", "chain", "line", "leaf_index", "tree_size"))
    if not isinstance(line, str) or not isinstance(span_id, str) or not isinstance(chain, str):
        return fail("span_id, chain and line must be strings")
    if not isinstance(index, int) or not isinstance(size, int) or isinstance(index, bool) or isinstance(size, bool):
        return fail("leaf_index and tree_size must be integers")
    raw = line.encode()
    digest = hashlib.sha256(raw).digest()
    if proof.get("line_hash") != "sha256:" + digest.hex():
        return fail("line_hash is not the SHA-256 of line (the line or its hash was changed)")
    leaf = leaf_hash(digest)
    if _hex32(proof.get("leaf_hash")) != leaf:
        return fail("leaf_hash is not the RFC 9162 leaf hash of the line")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return fail("line is not JSON")
    if not isinstance(record, dict) or record.get("type") != "span" or record.get("span_id") != span_id:
        return fail(f"line is not the span {span_id}")
    if record.get("seq") != index:
        return fail(f"line has seq {record.get('seq')!r}, not leaf_index {index}")
    path_hex = proof.get("audit_path")
    path = [_hex32(node) for node in path_hex] if isinstance(path_hex, list) else [None]
    if any(node is None for node in path):
        return fail("audit_path must be a list of 64-hex-digit hashes")
    try:
        checkpoint = Checkpoint.from_record(proof.get("checkpoint"))
    except CheckpointError as exc:
        return fail(f"checkpoint is damaged ({exc})")
    key = next((k for k in keys if k.key_id == checkpoint.key_id), None)
    if key is None:
        return fail(f"checkpoint is signed by key {checkpoint.key_id}, not by the public key given")
    if not checkpoint.verify_signature(key):
        return fail("checkpoint signature is wrong (the checkpoint was forged or changed)")
    if checkpoint.chain != chain or checkpoint.tree_size != size:
        return fail("the proof's chain or tree_size is not the checkpoint's")
    if not verify_inclusion(index, size, leaf, [node for node in path if node is not None], checkpoint.root_bytes):
        return fail("the audit path does not lead from the line to the checkpoint's Merkle root")
    return ProofCheck(
        True,
        f"span {span_id} is line {index} of chain {chain}, covered by a checkpoint of {size} lines "
        f"signed by key {checkpoint.key_id}",
        span_id=span_id,
        checkpoint=checkpoint,
    )
