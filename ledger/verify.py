"""`ledger verify`: recompute everything the ledger claims and name the first place it does not hold.

Checked, in one read-only snapshot (REPEATABLE READ):
1. **Chains.** Every partition's postings, in seq order from 1 without gaps, rehashed from their content joined
   with their posting set: hash_n = SHA-256(hash_{n-1} || canonical(row_n)) must equal the stored hash.  The first
   mismatch per partition is reported with (partition, seq, expected, found); after it the walk resynchronises on
   the stored hashes so an independent second edit is reported too.
2. **Rows agree with their sets.** Each posting has its posting set, sits inside the set's seq range, and repeats
   the set's kind and time; each set has exactly entry_count postings, balanced per currency.
3. **Heads.** ledger_chain_heads equals the recomputed end of every chain.
4. **Seals.** Every seal follows the previous seal's root, its root is the Merkle root of its heads, and each head
   equals the recomputed chain hash and postings root at that seq.
5. **Balances.** ledger_accounts equals the totals recomputed from the postings (open holds as pending), and every
   recomputed balance satisfies its account's flags.

Seals are the anchor outside this database: `check_published_seals` compares the stored seals with the
LedgerSealed events read from the log, so even a consistent rewrite of every table here is caught.
Performance: one streamed pass over each partition's postings and sets (no join, no sort) plus three aggregate
queries; see bench/ledger.py for the figures.
"""

from __future__ import annotations

import time
from hashlib import sha256
from dataclasses import dataclass, field
from typing import Any, Iterable

import psycopg

from ledger import accounts, merkle
from ledger.accounts import Balance
from ledger.chain import GENESIS, canonical_in_set, set_block
from ledger.records import sealed_from_record
from ledger.seals import PostingProof, ProofRejected, check_proof, posting_leaf, seal_root

MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    what: str
    partition: str | None = None
    seq: int | None = None
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        where = f"{self.partition} seq {self.seq}: " if self.partition is not None else ""
        diff = f" (expected {self.expected}, found {self.found})" if self.expected or self.found else ""
        return f"{where}{self.what}{diff}"


@dataclass
class Report:
    postings: int = 0
    partitions: dict[str, int] = field(default_factory=dict)
    seals: int = 0
    #: seals on the log waiting for the chains they name to reach the named seqs (not a problem by themselves: a
    #: replay still reading those chains, or a seal of another ledger that ours has not caught up with)
    pending_seals: int = 0
    accounts: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first broken link: the lowest (partition, seq) chain problem, else the first problem found."""
        chain = [p for p in self.problems if p.partition is not None and p.seq is not None]
        if chain:
            return min(chain, key=lambda p: (p.partition, p.seq))
        return self.problems[0] if self.problems else None

    def add(self, p: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(p)

    def summary(self) -> str:
        if self.ok:
            pending = f" ({self.pending_seals} more pending)" if self.pending_seals else ""
            return (f"ledger OK: {self.postings:,} postings in {len(self.partitions)} partitions, {self.seals} seals"
                    f"{pending}, {self.accounts:,} account balances verified in {self.seconds:.2f} s")
        return (f"ledger BROKEN: first broken link: {self.first}; {len(self.problems)} problem(s) in "
                f"{self.postings:,} postings checked ({self.seconds:.2f} s)")


_PARTITIONS = """
WITH RECURSIVE t(p) AS (
    SELECT min(ledger_partition) FROM ledger_postings
    UNION ALL
    SELECT (SELECT min(ledger_partition) FROM ledger_postings WHERE ledger_partition > t.p) FROM t WHERE t.p IS NOT NULL
) SELECT p FROM t WHERE p IS NOT NULL
"""
_SETS = """
SELECT first_seq, entry_count, ledger_key, source_event_id, event_id, causation_id, kind,
       (extract(epoch FROM occurred_at) * 1000000)::bigint, occurred_at, session_id, hold_id, reverses, memo
FROM ledger_posting_sets WHERE ledger_partition = %s ORDER BY first_seq
"""
_POSTINGS = """
SELECT seq, ledger_key, source_event_id, entry_index, kind, occurred_at, account, direction, amount_minor, currency,
       hash
FROM ledger_postings WHERE ledger_partition = %s ORDER BY seq
"""


def verify(conn: psycopg.Connection) -> Report:
    """Verify the ledger in the connection's schema (search_path)."""
    report = Report()
    t0 = time.perf_counter()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET LOCAL work_mem = '64MB'")  # the aggregates below hash every account and set in memory
        seals = _load_seals(conn)
        sealed_at: dict[str, dict[int, list[tuple[int, bytes, bytes]]]] = {}
        for no, (_, _, heads) in seals.items():
            for part, seq, head, proot in heads:
                sealed_at.setdefault(part, {}).setdefault(seq, []).append((no, head, proot))
        ends = _walk_chains(conn, report, sealed_at)
        _check_heads(conn, report, ends)
        _check_seals(report, seals, sealed_at, ends)
        _check_sets(conn, report)
        _check_balances(conn, report)
        report.pending_seals = conn.execute("SELECT count(*) FROM ledger_pending_seals").fetchone()[0]
    report.seconds = time.perf_counter() - t0
    return report


def _load_seals(conn: psycopg.Connection) -> dict[int, tuple[bytes, bytes | None, list[tuple[str, int, bytes, bytes]]]]:
    seals: dict[int, tuple[bytes, bytes | None, list[tuple[str, int, bytes, bytes]]]] = {}
    for no, root, prev in conn.execute("SELECT seal_no, root, previous_root FROM ledger_seals ORDER BY seal_no"):
        seals[no] = (bytes(root), bytes(prev) if prev is not None else None, [])
    for no, part, seq, head, proot in conn.execute(
            "SELECT seal_no, ledger_partition, seq, head_hash, postings_root FROM ledger_seal_heads "
            "ORDER BY seal_no, ledger_partition"):
        if no in seals:
            seals[no][2].append((part, seq, bytes(head), bytes(proot)))
    return seals


def _walk_chains(conn: psycopg.Connection, report: Report,
                 sealed_at: dict[str, dict[int, list[tuple[int, bytes, bytes]]]]) -> dict[str, tuple[int, bytes]]:
    """Rehash every chain; check seal points on the way; return each partition's recomputed (seq, head).

    Per partition, two ordered streams are merged here instead of joined in SQL: the postings by seq and their
    posting sets by first_seq (a set's postings are the seqs first_seq .. first_seq + entry_count - 1), so each
    set's fields are read and encoded once, and nothing is sorted."""
    ends: dict[str, tuple[int, bytes]] = {}
    parts = [r[0] for r in conn.execute(_PARTITIONS)]
    for part in parts:
        ends[part] = _walk_partition(conn, report, part, sealed_at.get(part, {}))
        report.partitions[part] = ends[part][0]
    return ends


def _walk_partition(conn: psycopg.Connection, report: Report, part: str,
                    marks: dict[int, list[tuple[int, bytes, bytes]]]) -> tuple[int, bytes]:
    seq, head = 0, GENESIS
    acc = merkle.Accumulator()
    with conn.cursor(name="ledger_verify_sets") as sc, conn.cursor(name="ledger_verify_postings") as pc:
        sc.itersize = pc.itersize = 20_000
        sc.execute(_SETS, (part,))
        pc.execute(_POSTINGS, (part,))
        sets = iter(sc)
        cur = next(sets, None)
        block = b""
        block_of: int | None = None
        for r in pc:
            report.postings += 1
            n = r[0]
            stored = bytes(r[10])
            while cur is not None and cur[0] + cur[1] <= n:  # sets wholly before this posting
                cur = next(sets, None)
            if n != seq + 1:
                report.add(Problem("a posting is missing or out of order", part, seq + 1, f"seq {seq + 1}",
                                   f"seq {n}"))
                seq, head = n, stored  # resynchronise on the stored hash of the row that is there
                while acc.size < seq:
                    acc.add(posting_leaf(stored))
                continue
            if cur is None or cur[0] > n:
                report.add(Problem("posting without its posting set", part, n, f"set {r[1]}/{r[2]}", "none"))
                seq, head = n, stored
                acc.add(posting_leaf(stored))
                continue
            if (r[1], r[2], r[3], r[4], r[5]) != (cur[2], cur[3], n - cur[0], cur[6], cur[8]):
                report.add(Problem("posting disagrees with its posting set (set, position, kind or time)", part, n,
                                   f"{cur[2]}/{cur[3]} entry {n - cur[0]}", f"{r[1]}/{r[2]} entry {r[3]}"))
            if block_of != cur[0]:  # the set's fields repeat for each of its postings: encode them once
                block_of = cur[0]
                block = set_block(cur[4], cur[5], cur[2], cur[3], cur[6], int(cur[7]), cur[9], cur[10], cur[11],
                                  cur[12])
            got = sha256(head + canonical_in_set(part, n, block, r[3], r[6], r[7], r[8], r[9])).digest()
            if got != stored:
                report.add(Problem("posting content does not match its hash (edited row or broken link)", part,
                                   n, got.hex(), stored.hex()))
            acc.add(posting_leaf(got))
            seq, head = n, stored if got != stored else got
            points = marks.get(seq)
            if points:
                root = acc.root()
                for no, shead, proot in points:
                    if shead != got:
                        report.add(Problem(f"seal {no} sealed a different chain head here", part, seq, shead.hex(),
                                           got.hex()))
                    if proot != root:
                        report.add(Problem(f"seal {no} sealed a different postings root here", part, seq,
                                           proot.hex(), root.hex()))
    return seq, head


def _check_heads(conn: psycopg.Connection, report: Report, ends: dict[str, tuple[int, bytes]]) -> None:
    stored = {p: (s, bytes(h)) for p, s, h in conn.execute(
        "SELECT ledger_partition, seq, hash FROM ledger_chain_heads")}
    for part in sorted(set(stored) | set(ends)):
        want = ends.get(part, (0, GENESIS))
        got = stored.get(part)
        if got is None:
            report.add(Problem("chain head missing", part, want[0], f"seq {want[0]}", "none"))
        elif got != want:
            report.add(Problem("chain head differs from the end of the chain", part, got[0],
                               f"seq {want[0]} {want[1].hex()}", f"seq {got[0]} {got[1].hex()}"))


def _check_seals(report: Report, seals: dict[int, tuple[bytes, bytes | None, list[tuple[str, int, bytes, bytes]]]],
                 sealed_at: dict[str, dict[int, list[tuple[int, bytes, bytes]]]],
                 ends: dict[str, tuple[int, bytes]]) -> None:
    from ledger.seals import SealHead

    report.seals = len(seals)
    prev: bytes | None = None
    for expected_no, (no, (root, previous, heads)) in enumerate(sorted(seals.items()), start=1):
        if no != expected_no:
            report.add(Problem(f"seal numbers skip from {expected_no - 1} to {no}", expected=str(expected_no),
                               found=str(no)))
        if previous != prev:
            report.add(Problem(f"seal {no} does not follow the previous seal", expected=prev.hex() if prev else "none",
                               found=previous.hex() if previous else "none"))
        want = seal_root([SealHead(*h) for h in heads])
        if want != root:
            report.add(Problem(f"seal {no}: root is not the Merkle root of its heads", expected=want.hex(),
                               found=root.hex()))
        for part, seq, _, _ in heads:
            end = ends.get(part, (0, GENESIS))[0]
            if seq > end:
                report.add(Problem(f"seal {no} seals {part} up to seq {seq} but the chain ends at {end}", part,
                                   end + 1, f"seq {seq}", f"seq {end}"))
        prev = root


def _check_sets(conn: psycopg.Connection, report: Report) -> None:
    for key, src, want, got in conn.execute(
            "SELECT s.ledger_key, s.source_event_id, s.entry_count, count(p.seq) FROM ledger_posting_sets s "
            "LEFT JOIN ledger_postings p ON p.ledger_key = s.ledger_key AND p.source_event_id = s.source_event_id "
            "GROUP BY 1, 2, 3 HAVING count(p.seq) <> s.entry_count LIMIT %s", (MAX_PROBLEMS,)):
        report.add(Problem(f"posting set {key}/{src} has {got} postings, not {want}", expected=str(want),
                           found=str(got)))
    for key, src, cur, diff in conn.execute(
            "SELECT ledger_key, source_event_id, currency, "
            "sum(CASE direction WHEN 'D' THEN amount_minor ELSE -amount_minor END) FROM ledger_postings "
            "GROUP BY 1, 2, 3 HAVING sum(CASE direction WHEN 'D' THEN amount_minor ELSE -amount_minor END) <> 0 "
            "LIMIT %s", (MAX_PROBLEMS,)):
        report.add(Problem(f"posting set {key}/{src} is unbalanced in {cur}", expected="debits = credits",
                           found=f"debits - credits = {diff}"))


_BALANCES = """
SELECT p.account, p.currency,
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'D' AND p.kind IN ('POSTING', 'POST_HOLD', 'REVERSAL')), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'C' AND p.kind IN ('POSTING', 'POST_HOLD', 'REVERSAL')), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'D' AND p.kind = 'HOLD' AND r.ledger_key IS NULL), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'C' AND p.kind = 'HOLD' AND r.ledger_key IS NULL), 0)
FROM ledger_postings p
LEFT JOIN ledger_posting_sets h
       ON p.kind = 'HOLD' AND h.ledger_key = p.ledger_key AND h.source_event_id = p.source_event_id
LEFT JOIN ledger_posting_sets r
       ON r.ledger_key = h.ledger_key AND r.hold_id = h.hold_id AND r.kind IN ('POST_HOLD', 'VOID_HOLD')
GROUP BY 1, 2
"""


def _check_balances(conn: psycopg.Connection, report: Report) -> None:
    want = {(a, c): Balance(int(d), int(cr), int(dp), int(cp)) for a, c, d, cr, dp, cp in conn.execute(_BALANCES)}
    stored = {(a, c): Balance(int(d), int(cr), int(dp), int(cp)) for a, c, d, cr, dp, cp in conn.execute(
        "SELECT account, currency, debits_posted, credits_posted, debits_pending, credits_pending "
        "FROM ledger_accounts")}
    report.accounts = len(stored)
    for k in sorted(set(want) | set(stored)):
        w, s = want.get(k), stored.get(k)
        if w != s:
            report.add(Problem(f"balance of {k[0]} ({k[1]}) differs from its postings", expected=_bal(w),
                               found=_bal(s)))
        if w is not None:
            try:
                why = w.violation(accounts.parse(k[0]).flags)
            except accounts.InvalidAccount as exc:
                why = str(exc)
            if why:
                report.add(Problem(f"{k[0]} ({k[1]}) breaks its limit: {why}"))


def _bal(b: Balance | None) -> str:
    if b is None:
        return "no account"
    return f"D {b.debits_posted} C {b.credits_posted} pending D {b.debits_pending} C {b.credits_pending}"


def check_published_seals(conn: psycopg.Connection, records: Iterable[dict[str, Any]]) -> list[Problem]:
    """Compare the stored seals with LedgerSealed records read from the log (the anchor this database cannot
    rewrite): every published seal that the ledger accepted must be stored with the same root and heads."""
    problems = []
    with conn.transaction():
        stored = {eid: bytes(root) for eid, root in conn.execute("SELECT event_id, root FROM ledger_seals")}
        refused = {r[0] for r in conn.execute("SELECT event_id FROM ledger_rejections WHERE event_type = "
                                              "'LedgerSealed'")}
    for rec in records:
        eid = rec["event_id"]
        _, root, _ = sealed_from_record(rec)
        if eid in refused:
            continue
        if eid not in stored:
            problems.append(Problem(f"published seal {eid} is not in the ledger", expected=root.hex(), found="none"))
        elif stored[eid] != root:
            problems.append(Problem(f"seal {eid} in the ledger differs from the one on the log", expected=root.hex(),
                                    found=stored[eid].hex()))
    return problems


def verify_proof(proof: PostingProof | dict[str, Any], trusted_root: bytes | None = None) -> PostingProof:
    """Check an inclusion proof (object or its JSON form); return it, or raise ProofRejected with the reason."""
    p = proof if isinstance(proof, PostingProof) else PostingProof.from_json(proof)
    check_proof(p, trusted_root)
    return p


__all__ = ["verify", "Report", "Problem", "verify_proof", "ProofRejected", "check_published_seals"]
