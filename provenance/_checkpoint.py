"""Signed checkpoints: the tail of every chain, pinned by a signature the chain's files cannot forge.

A hash chain shows an edit anywhere but at its end: lines cut off the end, a deleted last segment or
chain, an edited last line, or a chain rewritten with every hash recomputed all still verify. A
checkpoint names a chain, its last ``seq`` and that line's hash, the RFC 9162 Merkle root over the
chain's lines (``_merkle``) and the tree size, and the time, signed with the Ed25519 key of
``_keys`` (kept outside the ledger directory). It is written when a chain closes and every
``every`` lines or ``interval`` seconds, to ``checkpoints.jsonl`` in the ledger directory and, when
configured, to the same file in a witness directory the writer cannot rewrite.

Checkpoint records form their own hash chain (``log_seq``, ``log_prev``), so a checkpoint removed
from the middle of the log shows. What no checkpoint can show: lines written after a chain's last
checkpoint, and, without a witness, the newest checkpoints cut off the log together with the lines
they cover (the README says so).

Writing never slows an append: the store hands over the digests of new lines (it computes them for
``prev`` anyway) and a thread of this module folds them into the tree, signs and appends. A
checkpoint covers only lines the store has already flushed to disk (its fsync policy's own
flushes; everything with ``--fsync never``), so a power loss never looks like a cut tail, and it
adds no fsync of the segment: an extra flush would stall the appends that write to its last page.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mcp_ledger.provenance._keys import PublicKey, SigningKey
from mcp_ledger.provenance._merkle import MerkleAccumulator
from mcp_ledger.provenance._redact import canonical_json
from mcp_ledger.provenance._segments import iter_lines, list_chains

__all__ = [
    "CHECKPOINT_LOG",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFailure",
    "CheckpointReport",
    "CheckpointWriter",
    "check_checkpoints",
    "read_checkpoint_log",
    "signed_message",
]

logger = logging.getLogger("mcp_ledger.checkpoint")

CHECKPOINT_LOG = "checkpoints.jsonl"
CHECKPOINT_VERSION = 1
# Domain separation: a signature over a checkpoint can never be replayed as a signature over anything else.
SIGNING_CONTEXT = b"mcp-ledger checkpoint v1\n"
_TAIL_READ = 64 * 1024


class CheckpointError(Exception):
    """A checkpoint record is malformed; the message says which field."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint as stored (``line`` is its exact bytes)."""

    chain: str
    seq: int
    hash: str
    tree_size: int
    root: str
    time_ns: int
    closed: bool
    key_id: str
    log_seq: int
    log_prev: str | None
    signature: bytes
    record: dict[str, Any]
    line: bytes

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise CheckpointError("not JSON") from None
        return cls.from_record(record, line)

    @classmethod
    def from_record(cls, record: Any, line: bytes | None = None) -> Checkpoint:
        if not isinstance(record, dict) or record.get("type") != "checkpoint":
            raise CheckpointError("not a checkpoint record")
        try:
            signature = base64.b64decode(str(record["sig"]), validate=True)
            checkpoint = cls(
                chain=_typed(record, "chain", str),
                seq=_typed(record, "seq", int),
                hash=_digest_field(record, "hash"),
                tree_size=_typed(record, "tree_size", int),
                root=_digest_field(record, "root"),
                time_ns=int(_typed(record, "time_ns", str)),
                closed=_typed(record, "closed", bool),
                key_id=_typed(record, "key_id", str),
                log_seq=_typed(record, "log_seq", int),
                log_prev=None if record.get("log_prev") is None else _digest_field(record, "log_prev"),
                signature=signature,
                record=record,
                line=line if line is not None else canonical_json(record),
            )
        except KeyError as exc:
            raise CheckpointError(f"field {exc.args[0]} is missing") from None
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError(str(exc) or "a field has a bad value") from None
        if checkpoint.tree_size != checkpoint.seq + 1 or checkpoint.seq < 0:
            raise CheckpointError("tree_size is not seq + 1")
        return checkpoint

    @property
    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root.removeprefix("sha256:"))

    def verify_signature(self, key: PublicKey) -> bool:
        return self.key_id == key.key_id and key.verify(self.signature, signed_message(self.record))


def _typed(record: dict[str, Any], name: str, kind: type) -> Any:
    value = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"field {name} is not a {kind.__name__}")
    return value


def _digest_field(record: dict[str, Any], name: str) -> str:
    value = _typed(record, name, str)
    hexpart = value.removeprefix("sha256:")
    if not value.startswith("sha256:") or len(hexpart) != 64 or hexpart.strip("0123456789abcdef"):
        raise CheckpointError(f"field {name} is not sha256:<64 hex>")
    return str(value)


def signed_message(record: dict[str, Any]) -> bytes:
    """What the signature covers: every field but ``sig``, as canonical JSON, after a context string."""
    return SIGNING_CONTEXT + canonical_json({k: v for k, v in record.items() if k != "sig"})


def _line_digest(line: bytes) -> str:
    return "sha256:" + hashlib.sha256(line).hexdigest()


def read_checkpoint_log(path: Path) -> list[bytes]:
    """The complete lines of a checkpoint log (an unterminated last line is a torn write, not a checkpoint)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [line for _, line in iter_lines(data)]


def _append_line(path: Path, make_line: Callable[[bytes | None], bytes], *, durable: bool) -> bytes:
    """Append one line under an exclusive flock; ``make_line`` gets the current last line (or None).

    A torn last line (a writer killed mid-append; it held the lock, so it is gone) is set aside first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, _TAIL_READ), size - min(size, _TAIL_READ))
        if tail and not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            torn_start = size - len(tail) + cut
            with open(path.with_name(path.name + ".torn"), "ab") as torn:
                torn.write(tail[cut:])
            os.ftruncate(fd, torn_start)
            tail = tail[:cut]
            logger.warning("%s ended with a torn checkpoint; moved it to %s.torn", path, path.name)
        last: bytes | None = None
        if tail:
            start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
            # A last line longer than the tail read is not one of ours: link to what was read of it.
            last = tail[start:-1]
        line = make_line(last)
        os.write(fd, line + b"\n")
        if durable:
            os.fsync(fd)
        return line
    finally:
        os.close(fd)


class CheckpointWriter:
    """Signs checkpoints of one store's chain from a thread of its own, and a last one when the chain closes."""

    def __init__(
        self,
        directory: Path,
        key: SigningKey,
        *,
        every: int = 1000,
        interval: float = 10.0,
        witness: Path | None = None,
        durable: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.key = key
        self.every = every if every > 0 else 1 << 62  # read by the store on every append
        self.interval = interval if interval > 0 else None
        self.witness = Path(witness) if witness is not None else None
        self.durable = durable
        self.written = 0
        self.witness_failures = 0
        self._tree = MerkleAccumulator()
        self._pending: list[str] = []  # digests of lines after the tree, not yet known to be on disk
        self._last_digest: str | None = None  # of the tree's last line
        self._chain: str | None = None
        self._take: Callable[[], tuple[list[str], int]] | None = None
        self._last_size = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def bind(self, chain: str, take: Callable[[], tuple[list[str], int]]) -> None:
        """Start checkpointing ``chain``: ``take`` hands over the digests of new lines and the last seq on disk."""
        self._chain, self._take = chain, take
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mcp-ledger-checkpoint", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return  # close() writes the last one
            try:
                self.checkpoint()
            except OSError as exc:
                logger.warning("could not write a checkpoint to %s: %s", self.directory / CHECKPOINT_LOG, exc)

    def close(self) -> None:
        """Stop the thread and write the chain's closing checkpoint (its writer appends nothing more)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._take is None:
            return
        try:
            self.checkpoint(closed=True)
        except OSError as exc:
            logger.warning("could not write the closing checkpoint to %s: %s", self.directory / CHECKPOINT_LOG, exc)

    def checkpoint(self, *, closed: bool = False) -> Checkpoint | None:
        """Sign and append a checkpoint of every line written so far; None when there is nothing new."""
        with self._lock:
            if self._take is None or self._chain is None:
                return None
            digests, durable_seq = self._take()
            self._pending.extend(digests)
            # Only lines on disk may be checkpointed, else a power loss would look like a cut tail.
            ready = max(0, min(durable_seq + 1 - self._tree.size, len(self._pending)))
            if ready:
                raw = bytes.fromhex("".join(digest[7:] for digest in self._pending[:ready]))  # "sha256:" + hex
                for i in range(0, len(raw), 32):
                    self._tree.append(raw[i : i + 32])
                self._last_digest = self._pending[ready - 1]
            del self._pending[:ready]
            size = self._tree.size
            if size == 0 or self._last_digest is None or (size == self._last_size and not closed):
                return None
            body: dict[str, Any] = {
                "type": "checkpoint",
                "v": CHECKPOINT_VERSION,
                "chain": self._chain,
                "seq": size - 1,
                "hash": self._last_digest,
                "tree_size": size,
                "root": "sha256:" + self._tree.root().hex(),
                "time_ns": str(time.time_ns()),
                "closed": closed,
                "key_id": self.key.key_id,
            }

            def make_line(last: bytes | None) -> bytes:
                body["log_seq"], body["log_prev"] = _next_log_position(last)
                body["sig"] = base64.b64encode(self.key.sign(signed_message(body))).decode()
                return canonical_json(body)

            line = _append_line(self.directory / CHECKPOINT_LOG, make_line, durable=self.durable)
            self._last_size = size
            self.written += 1
            if self.witness is not None:
                self._witness(line)
            return Checkpoint.parse(line)

    def _witness(self, line: bytes) -> None:
        assert self.witness is not None
        try:
            _append_line(self.witness / CHECKPOINT_LOG, lambda _: line, durable=self.durable)
        except OSError as exc:
            self.witness_failures += 1
            logger.warning("could not write a checkpoint to the witness %s: %s", self.witness, _describe(exc))


def _next_log_position(last: bytes | None) -> tuple[int, str | None]:
    if last is None:
        return 0, None
    try:
        previous = orjson.loads(last)
        log_seq = int(previous["log_seq"]) + 1
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log_seq = 0  # a damaged last line: verify reports it; the log goes on linked to its bytes
    return log_seq, _line_digest(last)


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return f"{reason} ({name})" if name else reason


@dataclass(frozen=True)
class CheckpointFailure:
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class CheckpointReport:
    """What the signed checkpoints say about the ledger's chains."""

    checkpoints: int = 0
    witness_checkpoints: int | None = None
    covered: dict[str, int] = field(default_factory=dict)  # chain -> lines its newest valid checkpoint covers
    uncovered: list[str] = field(default_factory=list)  # chains on disk that no checkpoint names
    failures: list[CheckpointFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checkpoints": self.checkpoints,
            "witness_checkpoints": self.witness_checkpoints,
            "chains_covered": len(self.covered),
            "uncovered_chains": self.uncovered,
            "failures": [{"where": f.where, "reason": f.reason} for f in self.failures],
        }


def _read_signed(
    path: Path, label: str, keys: Sequence[PublicKey], report: CheckpointReport, *, linked: bool
) -> list[Checkpoint]:
    """The checkpoints in ``path`` whose signature checks; every other line is a failure in ``report``."""
    by_id = {key.key_id: key for key in keys}
    good: list[Checkpoint] = []
    prev: bytes | None = None
    for lineno, line in enumerate(read_checkpoint_log(path), 1):
        where = f"{label}:{lineno}"
        try:
            checkpoint = Checkpoint.parse(line)
        except CheckpointError as exc:
            report.failures.append(CheckpointFailure(where, f"damaged checkpoint ({exc})"))
            prev = line
            continue
        if linked:
            expected = _next_log_position(prev)
            if (checkpoint.log_seq, checkpoint.log_prev) != expected:
                report.failures.append(
                    CheckpointFailure(
                        where,
                        f"log_seq/log_prev do not follow line {lineno - 1} "
                        "(a checkpoint before it was removed, inserted or changed)",
                    )
                )
        prev = line
        key = by_id.get(checkpoint.key_id)
        if key is None:
            report.failures.append(
                CheckpointFailure(where, f"signed by key {checkpoint.key_id}, not by the public key given")
            )
            continue
        if not checkpoint.verify_signature(key):
            report.failures.append(CheckpointFailure(where, "signature is wrong (the checkpoint is forged or changed)"))
            continue
        good.append(checkpoint)
    return good


def check_checkpoints(directory: Path, keys: Sequence[PublicKey], *, witness: Path | None = None) -> CheckpointReport:
    """Check every signed checkpoint of ``directory`` (and of ``witness``) against the chains on disk.

    Fails when a signature is wrong, a checkpoint was removed from the log (or is held by the witness
    only), a checkpointed chain is missing or ends before its checkpoint, a checkpointed line or the
    Merkle root over the chain does not match, or lines follow a chain's closing checkpoint.
    """
    directory = Path(directory)
    report = CheckpointReport()
    # Checkpoints first: every line a checkpoint names was on disk before the checkpoint was written.
    checkpoints = _read_signed(directory / CHECKPOINT_LOG, CHECKPOINT_LOG, keys, report, linked=True)
    report.checkpoints = len(checkpoints)
    if witness is not None:
        witness_log = Path(witness) / CHECKPOINT_LOG
        witnessed = _read_signed(witness_log, str(witness_log), keys, report, linked=False)
        report.witness_checkpoints = len(witnessed)
        known = {c.signature for c in checkpoints}
        for c in witnessed:
            if c.signature not in known:
                report.failures.append(
                    CheckpointFailure(
                        str(witness_log),
                        f"the witness holds checkpoint of chain {c.chain} at seq {c.seq} that the ledger's "
                        "checkpoint log lacks (the log was cut or rewritten)",
                    )
                )
                checkpoints.append(c)
                known.add(c.signature)
    by_chain: dict[str, list[Checkpoint]] = {}
    for c in checkpoints:
        by_chain.setdefault(c.chain, []).append(c)
    chains = list_chains(directory)
    report.uncovered = [chain for chain in chains if chain not in by_chain]
    for chain, pinned in sorted(by_chain.items()):
        pinned.sort(key=lambda c: c.tree_size)
        segments = chains.get(chain)
        if not segments:
            newest = pinned[-1]
            report.failures.append(
                CheckpointFailure(
                    chain,
                    f"chain is missing: a signed checkpoint covers it up to seq {newest.seq} "
                    "(its segment files were deleted)",
                )
            )
            continue
        _check_chain(chain, pinned, (s.path for s in segments), report)
    return report


def _check_chain(chain: str, pinned: list[Checkpoint], paths: Iterable[Path], report: CheckpointReport) -> None:
    """Stream the chain's lines once, comparing the line and the Merkle root at every checkpointed size."""
    tree = MerkleAccumulator()
    todo = iter(pinned)
    want = next(todo, None)
    closing = next((c for c in pinned if c.closed), None)
    failed = False
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            break
        for _, line in iter_lines(data):
            digest = hashlib.sha256(line).digest()
            tree.append(digest)
            while want is not None and tree.size == want.tree_size:
                if not failed:
                    failed = _compare(chain, want, digest, tree, report)
                want = next(todo, None)
            if closing is not None and tree.size == closing.tree_size + 1 and not failed:
                report.failures.append(
                    CheckpointFailure(
                        chain,
                        f"lines follow the chain's closing checkpoint at seq {closing.seq} "
                        "(they were appended after its writer closed it)",
                    )
                )
                failed = True
    if want is not None and not failed:
        report.failures.append(
            CheckpointFailure(
                chain,
                f"chain ends at seq {tree.size - 1}, before its signed checkpoint at seq {pinned[-1].seq} "
                "(lines were cut off its end or its last segment was deleted)",
            )
        )
        failed = True
    if not failed:
        report.covered[chain] = pinned[-1].tree_size


def _compare(
    chain: str, checkpoint: Checkpoint, digest: bytes, tree: MerkleAccumulator, report: CheckpointReport
) -> bool:
    if "sha256:" + digest.hex() != checkpoint.hash:
        report.failures.append(
            CheckpointFailure(
                chain,
                f"line seq {checkpoint.seq} does not match its signed checkpoint "
                "(that line was changed, or the chain was rewritten)",
            )
        )
        return True
    if tree.root() != checkpoint.root_bytes:
        report.failures.append(
            CheckpointFailure(
                chain,
                f"the chain up to seq {checkpoint.seq} does not match the Merkle root of its signed checkpoint "
                "(lines were changed, or the chain was rewritten)",
            )
        )
        return True
    return False
