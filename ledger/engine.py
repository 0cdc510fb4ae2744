"""The ledger's decisions, without I/O: given what the ledger already holds and the next events in log order,
which posting sets are posted (as which hash-chained rows), which are duplicates, and which are refused and why.

The Postgres store (ledger/store.py) loads the state a batch needs, runs this engine, and writes its output in one
transaction with the projection offsets; the same engine over an in-memory state is what the unit tests drive.

Invariants (each named by a test in tests/unit/ledger/test_ledger_engine.py):
- **Exactly once.** A posting set is identified by (ledger_key, source_event_id).  Seeing it again with the same
  content is a no-op (a duplicate); with different content it is refused as `conflicting_duplicate`, never applied.
- **Atomic sets.** A set is applied whole or not at all: a refused set changes no balance, no hold, no chain.
- **Limits.** After every applied set, every flagged account it touched satisfies its flags (accounts.Balance);
  a set that would break one is refused (`limit`), not posted.
- **Holds resolve at most once.** A hold id is used once per key; the first POST_HOLD or VOID_HOLD resolves it,
  any later one is refused (`hold_resolved`).  A post takes at most what the hold reserved (`exceeds_hold`).
- **Reversals.** Only a POSTING or POST_HOLD can be reversed, at most once, by its exact mirror, under its key.
- **Deterministic.** Outputs depend only on the state and the events (times come from events), so a rebuild from
  the log reproduces every row, hash and refusal byte for byte.  Every lookup is scoped to the set's ledger key,
  and a key lives on one log partition, so no decision depends on how partitions interleave.
- **Chained.** Rows get consecutive seqs per ledger partition and hash_n = SHA-256(hash_{n-1} || canonical(row)).
- **Seals wait for what they name.** A seal is judged only once every chain it names has reached the seq it names
  (until then it is *pending*); then it is accepted, or refused as `foreign_seal` / `stale_seal`.  The posting at
  a seq never changes, so the verdict does not depend on how a rebuild interleaves the seal's partition with the
  chains' partitions -- only when it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import sha256
from datetime import datetime
from typing import Any

from ledger import accounts
from ledger.accounts import Balance
from ledger.chain import GENESIS, PostingRow, canonical_in_set, set_block
from ledger.postings import (HoldState, InvalidPostingSet, MinorEntry, PostingSet, SetKind, check_mirror,
                             check_within_hold, content_hash, micros, validate)
from ledger.records import POSTING_SET, SEALED, posting_set_from_record, sealed_from_record
from ledger.seals import Seal, SealHead, seal_root

AccountKey = tuple[str, str]  # (account, currency)
SetKey = tuple[str, str]  # (ledger_key, source_event_id) or (ledger_key, hold_id)


@dataclass
class HoldInfo:
    source_event_id: str
    entries: tuple[MinorEntry, ...]
    state: HoldState = field(default_factory=HoldState)


@dataclass
class SetInfo:
    """What a reversal needs to know about the set it reverses."""

    kind: SetKind
    entries: tuple[MinorEntry, ...]
    reversed_by: str | None = None


@dataclass
class LedgerState:
    """The slice of the ledger a batch can touch.  `loaded` is the set of (account, currency) whose balances were
    looked up (absent from `balances` = not opened yet); None means `balances` is the whole ledger (in memory)."""

    balances: dict[AccountKey, Balance] = field(default_factory=dict)
    loaded: set[AccountKey] | None = None
    known: dict[SetKey, bytes] = field(default_factory=dict)  # (key, source) -> content hash
    holds: dict[SetKey, HoldInfo] = field(default_factory=dict)  # (key, hold_id)
    sets: dict[SetKey, SetInfo] = field(default_factory=dict)  # (key, source) of reversible sets
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    last_seal: tuple[int, bytes] | None = None
    seal_event_ids: set[str] = field(default_factory=set)
    #: (partition, seq) -> posting hash: the postings the batch's seals name (loaded by the store) and every
    #: posting this state has chained since (so a seal can be checked against the chain it claims to seal)
    posting_hashes: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: seals waiting for the chains they name to reach their seqs, in (partition, offset) order; `heads` must then
    #: hold every partition (the store loads them all when a seal is pending)
    pending: list["PendingSeal"] = field(default_factory=list)


@dataclass(frozen=True)
class PendingSeal:
    event_id: str
    ledger_partition: str
    log_offset: int
    sealed_at: datetime
    heads: tuple[SealHead, ...]
    root: bytes
    previous_root: bytes | None

    def ready(self, heads: dict[str, tuple[int, bytes]]) -> bool:
        """Every chain the seal names has reached the named seq."""
        return all(heads.get(h.ledger_partition, (0, b""))[0] >= h.seq for h in self.heads)


@dataclass
class PostedSet:
    ps: PostingSet
    event_id: str
    causation_id: str | None
    ledger_partition: str
    log_offset: int
    first_seq: int
    rows: list[tuple[PostingRow, bytes]]
    content_hash: bytes


@dataclass(frozen=True)
class Rejection:
    event_id: str
    event_type: str
    ledger_key: str | None
    source_event_id: str | None
    ledger_partition: str
    log_offset: int
    occurred_at: datetime | None
    reason: str
    detail: str


@dataclass
class SealRow:
    seal: Seal
    ledger_partition: str
    log_offset: int
    sealed_at: datetime


@dataclass
class Outcome:
    posted: list[PostedSet] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    seals: list[SealRow] = field(default_factory=list)
    duplicates: int = 0
    #: balances changed (absolute values) and accounts opened (with their opening time)
    balances: dict[AccountKey, Balance] = field(default_factory=dict)
    opened: dict[AccountKey, datetime] = field(default_factory=dict)
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    #: seals that started waiting in this batch, and event ids of pending seals judged in it (either may hold the
    #: same seal: the store inserts first, then deletes)
    pending_added: list[PendingSeal] = field(default_factory=list)
    pending_settled: list[str] = field(default_factory=list)

    @property
    def postings(self) -> int:
        return sum(len(p.rows) for p in self.posted)


class Engine:
    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.out = Outcome()

    # ---- events ------------------------------------------------------------------------------------------------
    def apply(self, ledger_partition: str, log_offset: int, event_type: str, record: dict[str, Any]) -> None:
        """Apply one event of the `ledger` topic; unknown event types raise ValueError (a poison message)."""
        if event_type == POSTING_SET:
            self._posting_set(ledger_partition, log_offset, record)
        elif event_type == SEALED:
            self._seal(ledger_partition, log_offset, record)
        else:
            raise ValueError(f"the ledger does not read {event_type!r} events")
        if self.state.pending:
            self._settle()

    def post(self, ledger_partition: str, log_offset: int, ps: PostingSet, event_id: str,
             causation_id: str | None = None) -> Rejection | PostedSet | None:
        """Apply one posting set; the posted set, its refusal, or None for a duplicate."""
        try:
            done: Rejection | PostedSet | None = self._post(ledger_partition, log_offset, ps, event_id, causation_id)
        except InvalidPostingSet as exc:
            return self._reject(event_id, POSTING_SET, ps.ledger_key, ps.source_event_id, ledger_partition,
                                log_offset, ps.occurred_at if isinstance(ps.occurred_at, datetime) else None,
                                exc.reason, exc.detail)
        if self.state.pending:
            self._settle()
        return done

    def _posting_set(self, part: str, offset: int, rec: dict[str, Any]) -> None:
        event_id = rec["event_id"]
        try:
            ps = posting_set_from_record(rec)
        except InvalidPostingSet as exc:
            self._reject(event_id, POSTING_SET, rec.get("ledger_key"), rec.get("source_event_id"), part, offset,
                         rec.get("occurred_at"), exc.reason, exc.detail)
            return
        self.post(part, offset, ps, event_id, rec.get("causation_id"))

    def _reject(self, event_id: str, event_type: str, key: str | None, source: str | None, part: str, offset: int,
                occurred_at: datetime | None, reason: str, detail: str) -> Rejection:
        r = Rejection(event_id, event_type, key, source, part, offset, occurred_at, reason, detail)
        self.out.rejections.append(r)
        return r

    # ---- posting sets ------------------------------------------------------------------------------------------
    def _post(self, part: str, offset: int, ps: PostingSet, event_id: str, causation_id: str | None
              ) -> PostedSet | None:
        st = self.state
        entries = validate(ps)
        kind = ps.kind if isinstance(ps.kind, SetKind) else SetKind(ps.kind)
        key = ps.idempotency_key
        digest = content_hash(ps, entries)
        seen = st.known.get(key)
        if seen is not None:
            if seen == digest:
                self.out.duplicates += 1
                return None
            raise InvalidPostingSet("conflicting_duplicate", f"{ps.ledger_key}/{ps.source_event_id} was already "
                                    "posted with different content; the first one stands")
        pending_delta: list[tuple[MinorEntry, int]] = []  # (entry, +1 reserve / -1 release)
        hold: HoldInfo | None = None
        original: SetInfo | None = None
        if kind is SetKind.POSTING:
            rows = entries
        elif kind is SetKind.HOLD:
            if (ps.ledger_key, ps.hold_id) in st.holds:
                raise InvalidPostingSet("duplicate_hold", f"hold {ps.hold_id} already exists under {ps.ledger_key}")
            rows = entries
            pending_delta = [(e, 1) for e in entries]
        elif kind in (SetKind.POST_HOLD, SetKind.VOID_HOLD):
            hold = st.holds.get((ps.ledger_key, ps.hold_id))
            if hold is None:
                raise InvalidPostingSet("unknown_hold", f"no hold {ps.hold_id} under {ps.ledger_key}")
            if hold.state.status != "PENDING":
                raise InvalidPostingSet("hold_resolved", f"hold {ps.hold_id} was already "
                                        f"{hold.state.status.lower()} by {hold.state.resolved_by}; a hold resolves "
                                        "at most once")
            if kind is SetKind.POST_HOLD and entries:
                check_within_hold(hold.entries, entries)
            rows = entries if entries else hold.entries
            pending_delta = [(e, -1) for e in hold.entries]
        else:  # REVERSAL
            original = st.sets.get((ps.ledger_key, ps.reverses))
            if original is None:
                raise InvalidPostingSet("unknown_original", f"no posting set {ps.reverses} under {ps.ledger_key} to "
                                        "reverse (a reversal is published under the original's key)")
            if original.kind not in (SetKind.POSTING, SetKind.POST_HOLD):
                raise InvalidPostingSet("bad_reversal", f"{ps.reverses} is a {original.kind.value}; only postings "
                                        "and posted holds are reversed (void a hold instead)")
            if original.reversed_by is not None:
                raise InvalidPostingSet("already_reversed", f"{ps.reverses} was already reversed by "
                                        f"{original.reversed_by}")
            if entries:
                check_mirror(original.entries, entries)
                rows = entries
            else:
                rows = tuple(e.mirrored() for e in original.entries)

        # balances after the set, checked against every touched account's flags before anything is committed
        posted = kind in (SetKind.POSTING, SetKind.POST_HOLD, SetKind.REVERSAL)
        new: dict[tuple[str, str], Balance] = {}
        for e, sign in pending_delta:
            k = (e.account, e.currency)
            new[k] = new.get(k, self._balance(k)).plus(e.direction, sign * e.amount, pending=True)
        if posted:
            for e in rows:
                k = (e.account, e.currency)
                new[k] = new.get(k, self._balance(k)).plus(e.direction, e.amount, pending=False)
        for (acc, cur), bal in sorted(new.items()):
            why = bal.violation(accounts.parse(acc).flags)
            if why is not None:
                raise InvalidPostingSet("limit", f"{acc} ({cur}): {why}")

        # commit
        for k, bal in new.items():
            if k not in st.balances and k not in self.out.opened:
                self.out.opened[k] = ps.occurred_at
            st.balances[k] = bal
            self.out.balances[k] = bal
        st.known[key] = digest
        if kind is SetKind.HOLD:
            st.holds[(ps.ledger_key, ps.hold_id)] = HoldInfo(ps.source_event_id, entries)
        elif hold is not None:
            hold.state.resolve(kind, ps.source_event_id)
        if original is not None:
            original.reversed_by = ps.source_event_id
        st.sets[key] = SetInfo(kind, tuple(rows))  # every kind: a refused reversal says why, whatever the batching
        seq, head = st.heads.get(part, (0, GENESIS))
        first = seq + 1
        t_us = micros(ps.occurred_at)
        chained = []
        block = set_block(event_id, causation_id, ps.ledger_key, ps.source_event_id, kind.value, t_us, ps.session_id,
                          ps.hold_id, ps.reverses, ps.memo)
        for i, e in enumerate(rows):
            seq += 1
            row = PostingRow(part, seq, event_id, causation_id, ps.ledger_key, ps.source_event_id, kind.value, t_us,
                             ps.session_id, ps.hold_id, ps.reverses, ps.memo, i, e.account, e.direction.code,
                             e.amount, e.currency)
            head = sha256(head + canonical_in_set(part, seq, block, i, e.account, e.direction.code, e.amount,
                                                  e.currency)).digest()
            chained.append((row, head))
            st.posting_hashes[(part, seq)] = head
        st.heads[part] = (seq, head)
        self.out.heads[part] = (seq, head)
        done = PostedSet(ps, event_id, causation_id, part, offset, first, chained, digest)
        self.out.posted.append(done)
        return done

    def _balance(self, k: tuple[str, str]) -> Balance:
        st = self.state
        b = st.balances.get(k)
        if b is not None:
            return b
        if st.loaded is not None and k not in st.loaded:
            raise RuntimeError(f"bug: balance of {k} was not loaded for this batch")
        return Balance()

    # ---- seals ------------------------------------------------------------------------------------------------
    def _seal(self, part: str, offset: int, rec: dict[str, Any]) -> None:
        st = self.state
        event_id = rec["event_id"]
        if event_id in st.seal_event_ids or any(p.event_id == event_id for p in st.pending):
            self.out.duplicates += 1
            return
        try:
            heads, root, previous = sealed_from_record(rec)
            want = seal_root(heads)
        except (KeyError, ValueError, TypeError) as exc:
            self._reject(event_id, SEALED, None, None, part, offset, rec.get("occurred_at"), "bad_seal",
                         f"{type(exc).__name__}: {exc}")
            return
        if want != root:
            self._reject(event_id, SEALED, None, None, part, offset, rec.get("occurred_at"), "bad_seal",
                         f"the root {root.hex()} is not the Merkle root of the listed heads ({want.hex()})")
            return
        pending = PendingSeal(event_id, part, offset, rec["occurred_at"], tuple(heads), root, previous)
        st.pending.append(pending)
        st.pending.sort(key=lambda p: (p.ledger_partition, p.log_offset))
        self.out.pending_added.append(pending)

    def _settle(self) -> None:
        """Judge, in log order, every pending seal whose chains have caught up.  One that names a seq its chain
        never reaches (a seal of another, longer ledger) waits without holding back the seals after it: our own
        seals name chains as they were when sealed, so a later seal is never ready before an earlier one of ours."""
        st = self.state
        ready, waiting = [], []
        for p in st.pending:
            (ready if p.ready(st.heads) else waiting).append(p)
        if not ready:
            return
        st.pending = waiting
        for p in ready:
            self.out.pending_settled.append(p.event_id)
            self._judge(p)

    def _judge(self, p: PendingSeal) -> None:
        st = self.state

        def reject(reason: str, detail: str) -> None:
            self._reject(p.event_id, SEALED, None, None, p.ledger_partition, p.log_offset, p.sealed_at, reason,
                         detail)

        for h in p.heads:
            ours = st.posting_hashes.get((h.ledger_partition, h.seq))
            if ours is None:
                reject("unknown_head", f"the ledger has no posting {h.ledger_partition} seq {h.seq}")
                return
            if ours != h.head_hash:
                # e.g. a seal built from another ledger's store (another schema) published on this topic
                reject("foreign_seal", f"{h.ledger_partition} seq {h.seq} has hash {ours.hex()}, the seal names "
                       f"{h.head_hash.hex()}")
                return
        last_root = st.last_seal[1] if st.last_seal else None
        if p.previous_root != last_root:
            reject("stale_seal", f"it follows root {p.previous_root.hex() if p.previous_root else None}, but the "
                   f"latest seal is {last_root.hex() if last_root else None}")
            return
        seal_no = (st.last_seal[0] if st.last_seal else 0) + 1
        seal = Seal(seal_no, p.event_id, p.root, p.previous_root,
                    tuple(sorted(p.heads, key=lambda h: h.ledger_partition)))
        st.last_seal = (seal_no, p.root)
        st.seal_event_ids.add(p.event_id)
        self.out.seals.append(SealRow(seal, p.ledger_partition, p.log_offset, p.sealed_at))


def seal_heads_of(state_heads: dict[str, tuple[int, bytes]], postings_roots: dict[str, bytes]) -> list[SealHead]:
    """The heads a new seal lists: every partition's chain position with its postings root."""
    return [SealHead(p, seq, head, postings_roots[p]) for p, (seq, head) in sorted(state_heads.items())]
