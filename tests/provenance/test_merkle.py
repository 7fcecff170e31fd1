"""The RFC 9162 Merkle tree: roots and inclusion proofs against the Certificate Transparency test
vectors and against a naive, literal reading of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mcp_ledger.provenance._merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion,
    tree_root,
    verify_inclusion,
)

# The leaves and roots of the Certificate Transparency reference test data (RFC 6962 trees; RFC 9162
# keeps the same hashing), as published with the CT implementations.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = {  # (leaf index, tree size 8) -> audit path
    0: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    5: [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, word for word."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]), word for word."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def test_roots_match_the_certificate_transparency_test_vectors() -> None:
    assert tree_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    for size in range(1, 9):
        assert tree_root(hashes[:size]).hex() == CT_ROOTS[size - 1]


def test_inclusion_proofs_match_the_certificate_transparency_test_vectors() -> None:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    root = bytes.fromhex(CT_ROOTS[7])
    for index, path in CT_PATHS.items():
        assert [p.hex() for p in inclusion_proof(index, hashes)] == path
        assert verify_inclusion(index, 8, hashes[index], [bytes.fromhex(p) for p in path], root)


@given(st.lists(st.binary(max_size=8), min_size=0, max_size=70))
def test_the_accumulator_has_the_naive_root_at_every_size(leaves: list[bytes]) -> None:
    acc = MerkleAccumulator()
    assert acc.root() == naive_mth([])
    for size, leaf in enumerate(leaves, 1):
        acc.append(leaf)
        assert acc.size == size
        assert acc.root() == naive_mth(leaves[:size])


@given(st.lists(st.binary(max_size=4), min_size=1, max_size=70), st.data())
def test_inclusion_proofs_equal_the_naive_path_and_verify(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    path = inclusion_proof(index, hashes)
    assert path == naive_path(index, leaves)
    root = naive_mth(leaves)
    assert verify_inclusion(index, len(leaves), hashes[index], path, root)


@given(st.lists(st.binary(max_size=4), min_size=2, max_size=40, unique=True), st.data())
def test_any_change_to_a_proof_fails_it(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    hashes = [leaf_hash(leaf) for leaf in leaves]
    path = inclusion_proof(index, hashes)
    root = tree_root(hashes)
    size = len(leaves)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    assert not verify_inclusion(other, size, hashes[index], path, root)  # another position
    assert not verify_inclusion(index, size, hashes[other], path, root)  # another leaf
    assert not verify_inclusion(index, size, hashes[index], [*path, root], root)  # a path too long
    if path:
        assert not verify_inclusion(index, size, hashes[index], path[:-1], root)  # too short
        flipped = data.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[flipped] = bytes([bad[flipped][0] ^ 1]) + bad[flipped][1:]
        assert not verify_inclusion(index, size, hashes[index], bad, root)
    assert root_from_inclusion(size, size, hashes[index], path) is None
    assert root_from_inclusion(-1, size, hashes[index], path) is None
