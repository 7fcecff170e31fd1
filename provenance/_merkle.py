"""RFC 9162 (Certificate Transparency 2.0) Merkle trees over a chain's lines.

The leaves of a chain's tree are its lines in ``seq`` order, header lines included, so leaf index
and ``seq`` are the same number. A leaf's data is the 32-byte SHA-256 of the line's exact bytes (the
digest ``prev`` already names), hashed as ``H(0x00 ‖ data)``; interior nodes are ``H(0x01 ‖ l ‖ r)``.
The two prefixes keep a leaf from ever passing for a node (second-preimage attacks).

:class:`MerkleAccumulator` keeps only the roots of the perfect subtrees left of the next leaf
(at most log2(n) hashes), so a writer can extend its tree one leaf at a time and read the root at
any size without holding the leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = [
    "MerkleAccumulator",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "tree_root",
    "verify_inclusion",
]

EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (iteratively, through an accumulator)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    acc = MerkleAccumulator()
    for leaf in leaf_hashes:
        acc.append_leaf_hash(leaf)
    return acc.root()


class MerkleAccumulator:
    """The tree of a growing list of leaves, kept as the roots of its perfect subtrees (left to right)."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []  # subtree roots, largest (leftmost) first

    def append(self, data: bytes) -> None:
        self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> None:
        stack = self._stack
        node = leaf
        size = self.size
        # Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        while size & 1:
            node = node_hash(stack.pop(), node)
            size >>= 1
        stack.append(node)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtrees folded right to left (RFC 9162 §2.1.1)."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaf_hashes`` (RFC 9162 §2.1.3.1), leaf to root."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaf_hashes)} leaves")
    lo, hi = 0, len(leaf_hashes)
    siblings: list[bytes] = []
    # Walk down from the root; the sibling subtree at each level is hashed whole (O(n) in all).
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            siblings.append(tree_root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            siblings.append(tree_root(leaf_hashes[lo : lo + k]))
            lo = lo + k
    return siblings[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` proves ``leaf`` at ``index`` into, or None when the path has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``root``?"""
    return root_from_inclusion(index, size, leaf, path) == root
