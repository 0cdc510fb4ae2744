"""Seals and inclusion proofs (ledger/seals.py): a proof built from a ledger verifies against its seal root with
nothing but the proof; altering any part of it is caught with the step that failed."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from ledger import accounts as A
from ledger import merkle
from ledger import postings as P
from ledger.engine import Engine, LedgerState
from ledger.seals import (PostingProof, ProofRejected, Seal, SealHead, build_proof, check_proof, ordered,
                          posting_leaf, seal_root)
from ledger.verify import verify_proof

T = datetime(2025, 3, 1, tzinfo=timezone.utc)


def ledger(parts: int = 3, sets: int = 7):  # noqa: ANN201
    """An in-memory ledger over `parts` partitions and its seal."""
    state = LedgerState()
    rows: dict[str, list] = defaultdict(list)
    for i in range(sets * parts):
        part = f"ledger:{i % parts}"
        ps = P.posting(f"src-{i}", f"driver:u{i}", T, [P.debit(A.driver_receivable(f"u{i}"), f"{i + 1}.00", "EUR"),
                                                       P.credit(A.revenue(), f"{i + 1}.00", "EUR")],
                       session_id=f"s-{i}")
        eng = Engine(state)
        eng.post(part, i, ps, f"evt-{i}")
        for s in eng.out.posted:
            rows[part].extend(s.rows)
    heads = [SealHead(p, r[-1][0].seq, r[-1][1], merkle.root([posting_leaf(h) for _, h in r]))
             for p, r in sorted(rows.items())]
    seal = Seal(1, "seal-evt", seal_root(heads), None, tuple(heads))
    return rows, seal


def proofs():  # noqa: ANN201
    rows, seal = ledger()
    for part, rs in rows.items():
        hashes = [h for _, h in rs]
        for row, _ in rs:
            yield build_proof(row, hashes, seal), seal


def test_every_posting_has_a_proof_that_verifies_against_the_seal_root() -> None:
    n = 0
    for proof, seal in proofs():
        check_proof(proof, seal.root)
        n += 1
    assert n == 3 * 7 * 2


def test_proofs_survive_json_and_verify_without_the_database() -> None:
    proof, seal = next(proofs())
    doc = json.loads(json.dumps(proof.to_json()))
    assert verify_proof(doc, seal.root) == proof


def tamper(p: PostingProof, what: str) -> PostingProof:
    flip = lambda b: bytes([b[0] ^ 1]) + b[1:]  # noqa: E731
    return {
        "amount": lambda: replace(p, row=p.row._replace(amount_minor=p.row.amount_minor + 1)),
        "account": lambda: replace(p, row=p.row._replace(account="driver:mallory:receivable")),
        "direction": lambda: replace(p, row=p.row._replace(direction="C" if p.row.direction == "D" else "D")),
        "session": lambda: replace(p, row=p.row._replace(session_id="s-other")),
        "seq": lambda: replace(p, row=p.row._replace(seq=p.row.seq + 1 if p.row.seq < p.head.seq else p.row.seq - 1)),
        "prev_hash": lambda: replace(p, prev_hash=flip(p.prev_hash)),
        "posting_path": lambda: replace(p, posting_path=(flip(p.posting_path[0]),) + p.posting_path[1:]),
        "posting_path_short": lambda: replace(p, posting_path=p.posting_path[:-1]),
        "head_root": lambda: replace(p, head=replace(p.head, postings_root=flip(p.head.postings_root))),
        "head_seq": lambda: replace(p, head=replace(p.head, seq=p.head.seq + 1)),
        "head_hash": lambda: replace(p, head=replace(p.head, head_hash=flip(p.head.head_hash))),
        "seal_index": lambda: replace(p, seal_index=(p.seal_index + 1) % p.seal_size),
        "seal_path": lambda: replace(p, seal_path=(flip(p.seal_path[0]),) + p.seal_path[1:]),
        "seal_root": lambda: replace(p, seal_root=flip(p.seal_root)),
    }[what]()


@pytest.mark.parametrize("what", ["amount", "account", "direction", "session", "seq", "prev_hash", "posting_path",
                                  "posting_path_short", "head_root", "head_seq", "head_hash", "seal_index",
                                  "seal_path", "seal_root"])
def test_a_corrupted_proof_is_rejected(what: str) -> None:
    for proof, seal in proofs():
        with pytest.raises(ProofRejected):
            check_proof(tamper(proof, what), seal.root)


def test_a_consistent_proof_against_another_root_is_rejected() -> None:
    """A forger can build a self-consistent proof over a ledger of his own: only the root on the log decides."""
    proof, _ = next(proofs())
    forged_rows, forged_seal = ledger(parts=3, sets=8)
    part_rows = forged_rows[proof.row.ledger_partition]
    forged = build_proof(part_rows[0][0], [h for _, h in part_rows], forged_seal)
    check_proof(forged)  # consistent on its own...
    with pytest.raises(ProofRejected, match="not the published root"):
        check_proof(forged, proof.seal_root)  # ...but not under the sealed root


@pytest.mark.parametrize("doc", [{}, {"posting": {}}, {"posting": None}, "not a proof"])
def test_malformed_proof_documents_are_rejected_not_crashing(doc) -> None:  # noqa: ANN001
    with pytest.raises(ProofRejected, match="malformed"):
        verify_proof(doc if isinstance(doc, dict) else {"posting": doc})


def test_a_proof_whose_row_has_the_wrong_types_is_rejected() -> None:
    proof, seal = next(proofs())
    doc = proof.to_json()
    doc["posting"]["amount_minor"] = str(doc["posting"]["amount_minor"])
    with pytest.raises(ProofRejected):
        verify_proof(doc, seal.root)
    doc["posting"]["amount_minor"] = True
    with pytest.raises(ProofRejected):
        verify_proof(doc, seal.root)


def test_the_seal_root_does_not_depend_on_the_order_heads_are_listed_but_refuses_duplicates() -> None:
    _, seal = ledger()
    assert seal_root(reversed(seal.heads)) == seal.root
    with pytest.raises(ValueError, match="twice"):
        ordered(seal.heads + seal.heads[:1])


def test_building_a_proof_for_what_the_seal_does_not_cover_fails() -> None:
    rows, seal = ledger()
    rs = rows["ledger:0"]
    with pytest.raises(ValueError, match="covers"):
        build_proof(rs[0][0], [h for _, h in rs][:-1], seal)
    with pytest.raises(ValueError, match="does not cover"):
        build_proof(rs[0][0]._replace(ledger_partition="ledger:9"), [h for _, h in rs], seal)
