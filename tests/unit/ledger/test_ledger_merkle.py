"""Merkle trees (ledger/merkle.py) against the RFC 6962 definition and the Certificate Transparency reference
vectors; every inclusion proof verifies, and no altered one does."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle

# RFC 6962 reference data (the Certificate Transparency test vectors): leaf inputs and the roots of their prefixes
CT_DATA = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", bytes(range(0x50, 0x58)),
           bytes(range(0x60, 0x70))]
CT_ROOTS = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
CT_PATHS = {(0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
            (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]}
CT_LEAVES = [merkle.leaf_hash(d) for d in CT_DATA]


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_roots_match_the_rfc_6962_reference_vectors() -> None:
    for n in range(len(CT_DATA) + 1):
        assert merkle.root(CT_LEAVES[:n]).hex() == CT_ROOTS[n], n


def test_inclusion_paths_match_the_reference_vectors() -> None:
    for (i, n), path in CT_PATHS.items():
        assert [p.hex() for p in merkle.inclusion_path(CT_LEAVES[:n], i)] == path
        assert merkle.verify_inclusion(CT_LEAVES[i], i, n, [bytes.fromhex(p) for p in path],
                                       bytes.fromhex(CT_ROOTS[n]))


def test_root_and_accumulator_equal_the_definition_for_every_size_and_prefix() -> None:
    ls = leaves(130)
    acc = merkle.Accumulator()
    assert acc.root() == merkle.EMPTY_ROOT
    for n in range(1, len(ls) + 1):
        acc.add(ls[n - 1])
        want = reference_root(ls[:n])
        assert acc.root() == want == merkle.root(ls[:n]), n
        assert acc.size == n


def test_every_inclusion_proof_verifies_in_every_tree_up_to_40_leaves() -> None:
    for n in range(1, 41):
        ls = leaves(n)
        root = merkle.root(ls)
        for i in range(n):
            path = merkle.inclusion_path(ls, i)
            assert merkle.verify_inclusion(ls[i], i, n, path, root), (i, n)
            assert len(path) <= (n - 1).bit_length()


def test_altered_proofs_fail() -> None:
    for n in (1, 2, 3, 5, 8, 13, 33):
        ls = leaves(n)
        root = merkle.root(ls)
        for i in range(n):
            path = merkle.inclusion_path(ls, i)
            others = [j for j in range(n) if j != i]
            for j in others:
                assert not merkle.verify_inclusion(ls[i], j, n, path, root)  # another index
                assert not merkle.verify_inclusion(ls[j], i, n, path, root)  # another leaf
            # (the tree size is NOT authenticated by the path: leaf 0 of 3 and of 4 have the same path.  A seal
            # therefore carries each size inside its hashed head, see test_ledger_seals.py)
            for k in range(len(path)):
                flipped = list(path)
                flipped[k] = bytes([flipped[k][0] ^ 1]) + flipped[k][1:]
                assert not merkle.verify_inclusion(ls[i], i, n, flipped, root)
            assert not merkle.verify_inclusion(ls[i], i, n, path + [ls[0]], root)  # too long
            if path:
                assert not merkle.verify_inclusion(ls[i], i, n, path[:-1], root)  # too short
                assert not merkle.verify_inclusion(ls[i], i, n, path[1:], root)
            assert not merkle.verify_inclusion(ls[i], i, n, path, merkle.leaf_hash(b"other root"))


@pytest.mark.parametrize("index, size", [(-1, 4), (4, 4), (0, 0)])
def test_an_index_outside_the_tree_is_an_invalid_proof(index: int, size: int) -> None:
    with pytest.raises(merkle.InvalidProof, match="outside"):
        merkle.root_from_path(leaves(1)[0], index, size, [])
    assert not merkle.verify_inclusion(leaves(1)[0], index, size, [], merkle.EMPTY_ROOT)


def test_path_elements_must_be_hashes() -> None:
    ls = leaves(4)
    assert not merkle.verify_inclusion(ls[0], 0, 4, [b"short", ls[1]], merkle.root(ls))


def test_an_inner_node_cannot_be_passed_off_as_a_leaf() -> None:
    """Second preimage: l || r as leaf *data* hashes with the leaf prefix, never to the node hash."""
    ls = leaves(4)
    root = merkle.root(ls)
    left = merkle.node_hash(ls[0], ls[1])
    forged_leaf = merkle.leaf_hash(ls[0] + ls[1])
    assert forged_leaf != left
    # the inner node sits where leaf 0 of a 2-leaf tree would; as a leaf of the real 4-leaf tree it proves nothing
    assert not merkle.verify_inclusion(forged_leaf, 0, 2, [merkle.node_hash(ls[2], ls[3])], root)
    assert not merkle.verify_inclusion(forged_leaf, 0, 4, merkle.inclusion_path(ls, 0)[1:], root)
    assert merkle.leaf_hash(b"") != merkle.EMPTY_ROOT


def test_out_of_range_paths_are_refused() -> None:
    with pytest.raises(IndexError):
        merkle.inclusion_path(leaves(3), 3)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_random_trees_prove_random_leaves(n: int, data: st.DataObject) -> None:
    ls = leaves(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    root = merkle.root(ls)
    assert merkle.root_from_path(ls[i], i, n, merkle.inclusion_path(ls, i)) == root
