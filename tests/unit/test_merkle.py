"""RFC 6962 / RFC 9162 Merkle trees (``chalicelib.domain.merkle``).

Checked two ways:

* against the published known answers of the Certificate Transparency reference code
  (google/certificate-transparency ``cpp/merkletree/merkle_tree_test.cc`` and
  transparency-dev/merkle ``testonly/constants.go`` and ``proof/verify_test.go``);
* against an independent reference written here straight from RFC 6962 §2.1 — recursive
  MTH, PATH and PROOF over ``hashlib`` — plus recursive verifiers that mirror PATH and
  SUBPROOF (rather than the RFC 9162 bit-walking the module uses).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------- independent RFC 6962 §2.1 reference


def _ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Reference:
    """MTH(D[lo:hi]), PATH(m, D[n]) and PROOF(m, D[n]) as the RFC's recursive definitions."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.d = tuple(leaf_hashes)
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        if (lo, hi) not in self._mth:
            n = hi - lo
            if n == 0:
                value = hashlib.sha256(b"").digest()
            elif n == 1:
                value = self.d[lo]
            else:
                k = _split(n)
                value = _ref_node(self.mth(lo, lo + k), self.mth(lo + k, hi))
            self._mth[(lo, hi)] = value
        return self._mth[(lo, hi)]

    def path(self, m: int, n: int, lo: int = 0) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, k, lo), self.mth(lo + k, lo + n)]
        return [*self.path(m - k, n - k, lo + k), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self._subproof(m, n, 0, True)

    def _subproof(self, m: int, n: int, lo: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self.mth(lo, lo + n)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, k, lo, complete), self.mth(lo + k, lo + n)]
        return [*self._subproof(m - k, n - k, lo + k, False), self.mth(lo, lo + k)]


def _ref_root_from_path(leaf: bytes, m: int, n: int, proof: list[bytes]) -> bytes | None:
    """Undo PATH(m, D[n]) from its last element inwards; None if the proof has the wrong length."""
    if n == 1:
        return None if proof else leaf
    if not proof:
        return None
    k = _split(n)
    *rest, outer = proof
    if m < k:
        inner = _ref_root_from_path(leaf, m, k, rest)
        return None if inner is None else _ref_node(inner, outer)
    inner = _ref_root_from_path(leaf, m - k, n - k, rest)
    return None if inner is None else _ref_node(outer, inner)


def _path_sides(m: int, n: int) -> tuple[str, ...]:
    """Which side each PATH(m, D[n]) element sits on, leaf upwards ("R": sibling to the right)."""
    if n == 1:
        return ()
    k = _split(n)
    return (*_path_sides(m, k), "R") if m < k else (*_path_sides(m - k, n - k), "L")


def ref_verify_inclusion(leaf: bytes, m: int, n: int, proof: Sequence[bytes], root: bytes) -> bool:
    return 0 <= m < n and _ref_root_from_path(leaf, m, n, list(proof)) == root


def _ref_roots_from_proof(m: int, n: int, complete: bool, proof: list[bytes],
                          old_root: bytes) -> tuple[bytes, bytes] | None:
    """Undo SUBPROOF(m, D[n], b): the (old, new) subtree hashes, or None if the shape is wrong."""
    if m == n:
        if complete:
            return None if proof else (old_root, old_root)
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = _split(n)
    *rest, outer = proof
    if m <= k:
        inner = _ref_roots_from_proof(m, k, complete, rest, old_root)
        return None if inner is None else (inner[0], _ref_node(inner[1], outer))
    inner = _ref_roots_from_proof(m - k, n - k, False, rest, old_root)
    return None if inner is None else (_ref_node(outer, inner[0]), _ref_node(outer, inner[1]))


def ref_verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    return 0 < m <= n and _ref_roots_from_proof(m, n, True, list(proof), old_root) == (old_root, new_root)


def _flip_bit(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _flip_byte(value: bytes, position: int) -> bytes:
    out = bytearray(value)
    out[position] ^= 0xFF
    return bytes(out)


def _replace(proof: Sequence[bytes], at: int, value: bytes) -> list[bytes]:
    return [value if i == at else p for i, p in enumerate(proof)]


# ---------------------------------------------------------------- published CT / RFC 6962 vectors

H = bytes.fromhex
CT_LEAVES = [H(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                            "606162636465666768696a6b6c6d6e6f")]
# kSHA256Roots / testonly.RootHashes(): roots of the first n leaves, n = 0..8.
CT_ROOTS = [H(x) for x in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# testonly.NodeHashes(): every level of the 8-leaf tree (level 0 = leaf hashes).
CT_NODE_HASHES = [[H(x) for x in level] for level in (
    ("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",),
)]
# kLevelCounts: number of levels of the tree over the first n leaves, n = 1..8.
CT_LEVEL_COUNTS = [1, 2, 3, 3, 4, 4, 4, 4]
# proof/verify_test.go inclusionProofs (leaf index made 0-based here): (index, size, proof).
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
# proof/verify_test.go consistencyProofs: (old size, new size, proof).
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]
CT_HASHES = [leaf_hash(x) for x in CT_LEAVES]


def test_hashing_is_domain_separated_sha256() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert leaf_hash(b"") == CT_NODE_HASHES[0][0]
    # A leaf can never pose as an interior node over the same 64 bytes.
    assert leaf_hash(b"L" * 32 + b"R" * 32) != node_hash(b"L" * 32, b"R" * 32)


def test_empty_tree_root_is_sha256_of_the_empty_string() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == CT_ROOTS[0]
    assert root_of([]) == EMPTY_ROOT
    assert MerkleTree([]).root == EMPTY_ROOT
    assert MerkleTree([]).size == 0
    with pytest.raises(IndexError):
        MerkleTree([]).inclusion_proof(0)


@pytest.mark.parametrize("size", range(1, 9))
def test_prefix_roots_match_the_published_ct_roots(size: int) -> None:
    tree = MerkleTree.from_data(CT_LEAVES[:size])
    assert tree.root == CT_ROOTS[size]
    assert tree.size == size
    assert root_of(CT_HASHES[:size]) == CT_ROOTS[size]
    assert len(tree.levels) == CT_LEVEL_COUNTS[size - 1]


def test_eight_leaf_tree_levels_match_the_published_node_hashes() -> None:
    assert MerkleTree.from_data(CT_LEAVES).levels == CT_NODE_HASHES


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_published_inclusion_proofs_are_produced_and_verify(index: int, size: int, proof: list[bytes]) -> None:
    tree = MerkleTree(CT_HASHES[:size])
    assert tree.inclusion_proof(index) == proof
    root = CT_ROOTS[size]
    leaf = CT_HASHES[index]
    assert verify_inclusion(leaf, index, size, proof, root)
    # The corruptions verify_test.go applies (corruptInclusionProof), every bit of every hash.
    some_hash = H("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (leaf, index - 1, size, proof, root), (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root), (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root), (b"WrongLeaf", index, size, proof, root),
        (leaf, index, size, proof, EMPTY_ROOT), (leaf, index, size, proof, some_hash),
        (leaf, index, size, [*proof, b""], root), (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [b"", *proof], root), (leaf, index, size, [root, *proof], root),
    ]
    if proof:
        probes.append((leaf, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append((leaf, index, size, [proof[0], some_hash, *proof[1:]], root))
    probes += [(leaf, index, size, _replace(proof, k, _flip_bit(p, bit)), root)
               for k, p in enumerate(proof) for bit in range(256)]
    probes += [(leaf, index, size, proof, _flip_bit(root, bit)) for bit in range(256)]
    probes += [(_flip_bit(leaf, bit), index, size, proof, root) for bit in range(256)]
    accepted = [p[1:3] for p in probes if verify_inclusion(*p)]
    assert accepted == []


@pytest.mark.parametrize(("old_size", "new_size", "proof"), CT_CONSISTENCY)
def test_published_consistency_proofs_are_produced_and_verify(old_size: int, new_size: int,
                                                              proof: list[bytes]) -> None:
    assert consistency_proof(CT_HASHES[:new_size], old_size) == proof
    old_root, new_root = CT_ROOTS[old_size], CT_ROOTS[new_size]
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)
    if not proof:
        return
    # The corruptions verify_test.go applies (corruptConsistencyProof), every byte of every hash.
    probes = [
        (old_size - 1, new_size, old_root, new_root, proof), (old_size + 1, new_size, old_root, new_root, proof),
        (old_size ^ 2, new_size, old_root, new_root, proof), (old_size, new_size * 2, old_root, new_root, proof),
        (old_size, new_size // 2, old_root, new_root, proof), (old_size, new_size, b"WrongRoot", new_root, proof),
        (old_size, new_size, old_root, b"WrongRoot", proof), (old_size, new_size, new_root, old_root, proof),
        (old_size, new_size, old_root, new_root, []), (old_size, new_size, old_root, new_root, proof[:-1]),
        (old_size, new_size, old_root, new_root, [*proof, b""]),
        (old_size, new_size, old_root, new_root, [*proof, old_root]),
        (old_size, new_size, old_root, new_root, [*proof, new_root]),
        (old_size, new_size, old_root, new_root, [b"", *proof]),
        (old_size, new_size, old_root, new_root, [old_root, *proof]),
        (old_size, new_size, old_root, new_root, [new_root, *proof]),
        (old_size, new_size, old_root, new_root, [proof[0], *proof]),
    ]
    probes += [(old_size, new_size, old_root, new_root, _replace(proof, k, _flip_byte(p, at)))
               for k, p in enumerate(proof) for at in range(32)]
    probes += [(old_size, new_size, _flip_byte(old_root, at), new_root, proof) for at in range(32)]
    probes += [(old_size, new_size, old_root, _flip_byte(new_root, at), proof) for at in range(32)]
    accepted = [p[:2] for p in probes if verify_consistency(*p)]
    assert accepted == []


# ---------------------------------------------------------------- every inclusion proof, sizes 1..65

SWEEP = [leaf_hash(f"tally-{i}".encode()) for i in range(65)]
SWEEP_REF = Reference(SWEEP)
SWEEP_TREES = {n: MerkleTree(SWEEP[:n]) for n in range(1, 66)}


@pytest.mark.parametrize("size", range(1, 66))
def test_every_inclusion_proof_is_rfc_path_and_verifies(size: int) -> None:
    tree = SWEEP_TREES[size]
    root = tree.root
    assert root == SWEEP_REF.mth(0, size) == _ref_root_from_path(SWEEP[0], 0, size, SWEEP_REF.path(0, size))
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert proof == SWEEP_REF.path(index, size), index
        assert verify_inclusion(SWEEP[index], index, size, proof, root), index


@pytest.mark.parametrize("size", range(1, 66))
def test_inclusion_verification_rejects_tampering(size: int) -> None:
    tree = SWEEP_TREES[size]
    root = tree.root
    exhaustive = size <= 16  # every bit for small trees; a rotating set of bits beyond
    for index in range(size):
        proof = tree.inclusion_proof(index)
        leaf = SWEEP[index]
        bad: list[tuple[str, bytes, int, int, list[bytes], bytes]] = []
        bad += [("leaf", other, index, size, proof, root) for other in (SWEEP[(index + 1) % 65], leaf_hash(b"x"))]
        bad += [("index", leaf, i, size, proof, root)
                for i in {index - 1, index + 1, index ^ 1, index ^ 2, size - 1 - index, size, -1} - {index}]
        bad += [("truncated", leaf, index, size, proof[:cut], root) for cut in range(len(proof))]
        bad += [("extended", leaf, index, size, [*proof, extra], root) for extra in (root, leaf, SWEEP[-1])]
        bad += [("prepended", leaf, index, size, [leaf, *proof], root)]
        for k, element in enumerate(proof):
            bits = range(256) if exhaustive else range((size + 7 * index + 13 * k) % 32, 256, 32)
            bad += [(f"proof[{k}] bit {b}", leaf, index, size, _replace(proof, k, _flip_bit(element, b)), root)
                    for b in bits]
        bits = range(256) if exhaustive else range((size + index) % 16, 256, 16)
        bad += [(f"root bit {b}", leaf, index, size, proof, _flip_bit(root, b)) for b in bits]
        accepted = [(what, index) for what, *args in bad if verify_inclusion(*args)]
        assert accepted == []


@pytest.mark.parametrize("size", range(1, 66))
def test_inclusion_under_a_wrong_size_is_accepted_only_where_the_path_is_identical(size: int) -> None:
    """RFC 9162 verification binds the size only through the path's shape: a wrong size passes exactly
    when PATH(index) has the same length and left/right sides at both sizes (e.g. leaf 0 of 3 vs 4)."""
    tree = SWEEP_TREES[size]
    for index in range(size):
        proof = tree.inclusion_proof(index)
        for wrong in {size - 1, size + 1, size * 2, size // 2, size + 2 ** len(proof)} - {size}:
            expected = 0 <= index < wrong and _path_sides(index, wrong) == _path_sides(index, size)
            assert ref_verify_inclusion(SWEEP[index], index, wrong, proof, tree.root) is expected
            assert verify_inclusion(SWEEP[index], index, wrong, proof, tree.root) is expected, (index, wrong)


def test_a_wrong_size_with_the_same_path_shape_verifies_as_rfc_9162_specifies() -> None:
    proof = SWEEP_TREES[3].inclusion_proof(0)
    assert verify_inclusion(SWEEP[0], 0, 4, proof, SWEEP_TREES[3].root)
    assert not verify_inclusion(SWEEP[0], 0, 5, proof, SWEEP_TREES[3].root)


# ---------------------------------------------------------------- every consistency proof, 1 <= m <= n <= 40

CONSISTENCY_PAIRS = [(m, n) for n in range(1, 41) for m in range(1, n + 1)]


@pytest.mark.parametrize("new_size", range(1, 41))
def test_every_consistency_proof_is_rfc_proof_and_verifies(new_size: int) -> None:
    new_root = SWEEP_TREES[new_size].root
    for old_size in range(1, new_size + 1):
        proof = consistency_proof(SWEEP[:new_size], old_size)
        assert proof == SWEEP_REF.proof(old_size, new_size), old_size
        assert ref_verify_consistency(old_size, new_size, SWEEP_TREES[old_size].root, new_root, proof)
        assert verify_consistency(old_size, new_size, SWEEP_TREES[old_size].root, new_root, proof), old_size


@pytest.mark.parametrize("new_size", range(1, 41))
def test_consistency_verification_rejects_tampering(new_size: int) -> None:
    new_root = SWEEP_TREES[new_size].root
    for old_size in range(1, new_size + 1):
        old_root = SWEEP_TREES[old_size].root
        proof = consistency_proof(SWEEP[:new_size], old_size)
        m, n = old_size, new_size
        bad: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = []
        others = {SWEEP_TREES[s].root for s in {m - 1, m + 1, n - 1, n + 1} if 0 < s <= 65}
        bad += [("old root", m, n, r, new_root, proof) for r in [*others - {old_root}, _flip_byte(old_root, n % 32)]]
        bad += [("new root", m, n, old_root, r, proof) for r in [*others - {new_root}, _flip_byte(new_root, m % 32)]]
        if m != n:
            bad += [("swapped roots", m, n, new_root, old_root, proof), ("empty proof", m, n, old_root, new_root, [])]
        bad += [("truncated", m, n, old_root, new_root, proof[:cut]) for cut in range(len(proof))]
        bad += [("extended", m, n, old_root, new_root, [*proof, extra]) for extra in (old_root, new_root)]
        bad += [("prepended", m, n, old_root, new_root, [extra, *proof]) for extra in (old_root, new_root)]
        bad += [(f"proof[{k}] byte {at}", m, n, old_root, new_root, _replace(proof, k, _flip_byte(element, at)))
                for k, element in enumerate(proof) for at in {(m + n + k) % 32, 0, 31}]
        bad += [("old size 0", 0, n, old_root, new_root, proof), ("old > new", n + 1, n, old_root, new_root, proof)]
        accepted = [(what, m, n) for what, *args in bad if verify_consistency(*args)]
        assert accepted == []


@pytest.mark.parametrize("new_size", range(1, 41))
def test_consistency_under_wrong_sizes_agrees_with_the_recursive_reference(new_size: int) -> None:
    """Like inclusion, a consistency proof binds the sizes only through its shape; a wrong pair passes
    exactly when the recursive SUBPROOF reading of the same hashes also yields both roots."""
    new_root = SWEEP_TREES[new_size].root
    rejected = 0
    for old_size in range(1, new_size + 1):
        old_root = SWEEP_TREES[old_size].root
        proof = consistency_proof(SWEEP[:new_size], old_size)
        m, n = old_size, new_size
        for wm, wn in {(m - 1, n), (m + 1, n), (m ^ 2, n), (m, n + 1), (m, n - 1), (m, 2 * n), (m, n // 2),
                       (m + 1, n + 1), (m - 1, n - 1)} - {(m, n)}:
            expected = ref_verify_consistency(wm, wn, old_root, new_root, proof)
            assert verify_consistency(wm, wn, old_root, new_root, proof) is expected, (m, n, wm, wn)
            rejected += not expected
    assert rejected > 0


def test_consistency_proof_rejects_sizes_outside_the_tree() -> None:
    for old_size in (0, -1, 6):
        with pytest.raises(ValueError):
            consistency_proof(SWEEP[:5], old_size)


# ---------------------------------------------------------------- odd nodes are promoted, never duplicated


def _bitcoin_style_root(leaf_hashes: Sequence[bytes]) -> bytes:
    level = list(leaf_hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_ref_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_odd_last_leaf_is_promoted_not_duplicated(size: int) -> None:
    leaves = SWEEP[:size]
    root = root_of(leaves)
    assert root == SWEEP_REF.mth(0, size)
    assert root != _bitcoin_style_root(leaves)
    assert root != root_of([*leaves, leaves[-1]])
    # With duplication, [a, b, c] and [a, b, c, c] would share a root (CVE-2012-2459); here they do not.
    assert _bitcoin_style_root(leaves) == _bitcoin_style_root([*leaves, leaves[-1]])


@pytest.mark.parametrize("size", range(1, 66))
def test_levels_pair_adjacent_nodes_and_carry_an_odd_one_up_unchanged(size: int) -> None:
    levels = SWEEP_TREES[size].levels
    assert levels[0] == SWEEP[:size]
    assert len(levels[-1]) == 1
    assert len(levels) == 1 + math.ceil(math.log2(size))
    for below, above in itertools.pairwise(levels):
        assert len(above) == math.ceil(len(below) / 2)
        for j, node in enumerate(above):
            if 2 * j + 1 < len(below):
                assert node == _ref_node(below[2 * j], below[2 * j + 1])
            else:
                assert node == below[2 * j]
        duplicated = {_ref_node(x, x) for x in below}
        assert not duplicated & set(above)


# ---------------------------------------------------------------- property: random trees


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200).flatmap(lambda n: st.lists(st.binary(max_size=48), min_size=n, max_size=n)))
def test_random_trees_every_proof_verifies_and_is_at_most_log2_long(leaves: list[bytes]) -> None:
    tree = MerkleTree.from_data(leaves)
    n = len(leaves)
    assert tree.root == Reference([_ref_leaf(x) for x in leaves]).mth(0, n)
    bound = math.ceil(math.log2(n))
    for index, data in enumerate(leaves):
        proof = tree.inclusion_proof(index)
        assert len(proof) <= bound
        assert verify_inclusion(_ref_leaf(data), index, n, proof, tree.root)
