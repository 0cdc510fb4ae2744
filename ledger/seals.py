"""Seals: a Merkle root over every partition's chain position, published on the log, and the inclusion proofs
that tie one posting to such a root.

A seal lists, per ledger partition, a *head*: (partition, seq, head hash = hash_seq of the chain, postings root =
Merkle root over leaf_hash(hash_1) ... leaf_hash(hash_seq)).  The seal root is the Merkle root over the heads'
leaves, in partition-name order.  The LedgerSealed event carrying it goes to the log (the record nobody can
quietly rewrite), and each seal names the root of the one before, so seals form a chain of their own.

An inclusion proof for posting (partition, n) against a seal is: the row, hash_{n-1} (so the verifier recomputes
hash_n from the row itself), the audit path from leaf_hash(hash_n) to the partition's postings root, the head, and
the audit path from the head's leaf to the seal root.  A verifier needs nothing from our database: only the proof
and the sealed root from the log.

Invariants (tests/unit/ledger/test_ledger_seals.py): a proof built from a ledger verifies against its seal root;
changing any field of the row, the previous hash, any path element, the indexes, the head or the root makes it
fail with a reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ledger import merkle
from ledger.chain import PostingRow, encode_fields, link

SEAL_MAGIC = b"CVLS1"


@dataclass(frozen=True)
class SealHead:
    ledger_partition: str
    seq: int
    head_hash: bytes
    postings_root: bytes

    def leaf(self) -> bytes:
        return merkle.leaf_hash(encode_fields(SEAL_MAGIC, (self.ledger_partition, self.seq, self.head_hash,
                                                           self.postings_root)))


def ordered(heads: Iterable[SealHead]) -> list[SealHead]:
    out = sorted(heads, key=lambda h: h.ledger_partition)
    names = [h.ledger_partition for h in out]
    if len(set(names)) != len(names):
        raise ValueError("a seal lists a partition twice")
    return out


def seal_root(heads: Iterable[SealHead]) -> bytes:
    return merkle.root([h.leaf() for h in ordered(heads)])


def posting_leaf(chain_hash: bytes) -> bytes:
    """The leaf of a posting in its partition's tree: the chain hash, which commits to the row and its history."""
    return merkle.leaf_hash(chain_hash)


@dataclass(frozen=True)
class Seal:
    seal_no: int
    event_id: str
    root: bytes
    previous_root: bytes | None
    heads: tuple[SealHead, ...] = field(default=())


class ProofRejected(ValueError):
    """The proof does not show the posting under the root; the message says which step failed."""


@dataclass(frozen=True)
class PostingProof:
    row: PostingRow
    prev_hash: bytes
    posting_path: tuple[bytes, ...]
    head: SealHead
    seal_index: int
    seal_size: int
    seal_path: tuple[bytes, ...]
    seal_no: int
    seal_event_id: str
    seal_root: bytes

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "posting": {
                "ledger_partition": r.ledger_partition, "seq": r.seq, "event_id": r.event_id,
                "causation_id": r.causation_id, "ledger_key": r.ledger_key, "source_event_id": r.source_event_id,
                "kind": r.kind, "occurred_at_us": r.occurred_at_us, "session_id": r.session_id,
                "hold_id": r.hold_id, "reverses": r.reverses, "memo": r.memo, "entry_index": r.entry_index,
                "account": r.account, "direction": r.direction, "amount_minor": r.amount_minor,
                "currency": r.currency,
            },
            "prev_hash": self.prev_hash.hex(),
            "posting_path": [p.hex() for p in self.posting_path],
            "head": {"ledger_partition": self.head.ledger_partition, "seq": self.head.seq,
                     "head_hash": self.head.head_hash.hex(), "postings_root": self.head.postings_root.hex()},
            "seal_index": self.seal_index,
            "seal_size": self.seal_size,
            "seal_path": [p.hex() for p in self.seal_path],
            "seal_no": self.seal_no,
            "seal_event_id": self.seal_event_id,
            "seal_root": self.seal_root.hex(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PostingProof":
        try:
            p = d["posting"]
            row = PostingRow(**{k: p[k] for k in PostingRow._fields})
            h = d["head"]
            return cls(row, bytes.fromhex(d["prev_hash"]), tuple(bytes.fromhex(x) for x in d["posting_path"]),
                       SealHead(h["ledger_partition"], int(h["seq"]), bytes.fromhex(h["head_hash"]),
                                bytes.fromhex(h["postings_root"])),
                       int(d["seal_index"]), int(d["seal_size"]), tuple(bytes.fromhex(x) for x in d["seal_path"]),
                       int(d["seal_no"]), str(d["seal_event_id"]), bytes.fromhex(d["seal_root"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofRejected(f"malformed proof: {type(exc).__name__}: {exc}") from None


def build_proof(row: PostingRow, chain_hashes: Sequence[bytes], seal: Seal) -> PostingProof:
    """The proof of `row` (seq n) from its partition's chain hashes hash_1..hash_S (S = the seal's seq for that
    partition) and the seal."""
    heads = ordered(seal.heads)
    idx = next((i for i, h in enumerate(heads) if h.ledger_partition == row.ledger_partition), None)
    if idx is None:
        raise ValueError(f"seal {seal.seal_no} does not cover {row.ledger_partition}")
    head = heads[idx]
    if not 1 <= row.seq <= head.seq or len(chain_hashes) != head.seq:
        raise ValueError(f"seal {seal.seal_no} covers {head.ledger_partition} up to {head.seq}, not {row.seq}")
    leaves = [posting_leaf(h) for h in chain_hashes]
    prev = chain_hashes[row.seq - 2] if row.seq > 1 else bytes(32)
    return PostingProof(row, prev, tuple(merkle.inclusion_path(leaves, row.seq - 1)), head, idx, len(heads),
                        tuple(merkle.inclusion_path([h.leaf() for h in heads], idx)), seal.seal_no, seal.event_id,
                        seal.root)


def check_proof(proof: PostingProof, trusted_root: bytes | None = None) -> None:
    """Raise ProofRejected unless the proof shows its posting under its seal root (and that root is
    `trusted_root`, the root read from the LedgerSealed event on the log, when given)."""
    row, head = proof.row, proof.head
    if row.ledger_partition != head.ledger_partition:
        raise ProofRejected(f"the posting is in {row.ledger_partition} but the head is of {head.ledger_partition}")
    if not 1 <= row.seq <= head.seq:
        raise ProofRejected(f"posting seq {row.seq} is not within the sealed 1..{head.seq}")
    if len(proof.prev_hash) != 32:
        raise ProofRejected("prev_hash is not a 32-byte hash")
    try:
        chain_hash = link(proof.prev_hash, row)
    except (TypeError, AttributeError, struct.error) as exc:
        raise ProofRejected(f"the posting row is malformed: {exc}") from None
    if row.seq == head.seq and chain_hash != head.head_hash:
        raise ProofRejected("the posting is the sealed head but its hash is not the head hash")
    try:
        got = merkle.root_from_path(posting_leaf(chain_hash), row.seq - 1, head.seq, proof.posting_path)
    except merkle.InvalidProof as exc:
        raise ProofRejected(f"posting path: {exc}") from None
    if got != head.postings_root:
        raise ProofRejected("the posting path does not lead to the partition's sealed postings root "
                            "(the row, its previous hash or the path was altered)")
    try:
        top = merkle.root_from_path(head.leaf(), proof.seal_index, proof.seal_size, proof.seal_path)
    except merkle.InvalidProof as exc:
        raise ProofRejected(f"seal path: {exc}") from None
    if top != proof.seal_root:
        raise ProofRejected("the head does not lead to the seal root (the head or the seal path was altered)")
    if trusted_root is not None and proof.seal_root != trusted_root:
        raise ProofRejected(f"the proof's seal root {proof.seal_root.hex()} is not the published root "
                            f"{trusted_root.hex()}")
