"""Merkle trees over hashes: one root seals many chain positions, and an inclusion proof is log-sized.

The tree is the one Certificate Transparency uses (RFC 6962 section 2.1 / RFC 9162 section 2.1): for n leaves,
split at k, the largest power of two below n, and hash the two subtrees; the empty tree's root is SHA-256("").
Leaves and inner nodes are domain-separated:

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)

so an inner node can never be passed off as a leaf (a second-preimage forgery: presenting l || r as leaf data
gives SHA-256(0x00 || l || r), not the node's hash), and a proof is verified against the tree size it claims,
which fixes the shape of the path.

Invariants (tests/unit/ledger/test_ledger_merkle.py checks each against a from-the-definition implementation):
- `root` equals the recursive definition for every size; `Accumulator` gives the same root incrementally, for
  every prefix, in O(log n) memory.
- For every size n and index i < n, `verify_inclusion(leaf, i, n, inclusion_path(leaves, i), root)` holds, and
  fails for any other index, size, leaf, root, or any path with one element changed, added or removed.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class Accumulator:
    """Appends leaf hashes and answers the root of everything appended so far.

    It keeps the roots of the perfect subtrees the leaves form (one per set bit of the size, largest first); the
    tree's root folds them from the right, which is exactly the RFC 6962 split."""

    __slots__ = ("size", "_stack")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), heights strictly decreasing

    def add(self, leaf: bytes) -> None:
        stack = self._stack
        h, x = 0, leaf
        while stack and stack[-1][0] == h:
            _, left = stack.pop()
            x = node_hash(left, x)
            h += 1
        stack.append((h, x))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1][1]
        for _, x in reversed(self._stack[:-1]):
            r = node_hash(x, r)
        return r


def root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree over `leaves` (already leaf-hashed)."""
    acc = Accumulator()
    for leaf in leaves:
        acc.add(leaf)
    return acc.root()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree over `leaves`, bottom-up."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} is not in a tree of {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index  # the subtree leaves[lo:hi] holds the leaf at relative position m
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo:lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


class InvalidProof(ValueError):
    pass


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that `path` proves `leaf` at `index` of a tree of `size` leaves is under (RFC 9162 2.1.3.2);
    InvalidProof when the path cannot belong to such a tree."""
    if not 0 <= index < size:
        raise InvalidProof(f"index {index} is outside a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if len(p) != 32:
            raise InvalidProof("a path element is not a 32-byte hash")
        if sn == 0:
            raise InvalidProof("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the path is shorter than the tree is deep")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes) -> bool:
    try:
        return root_from_path(leaf, index, size, path) == expected_root
    except InvalidProof:
        return False
