"""Posting sets: the only way money moves in the ledger.

A posting set turns one financial event (a priced session, a wallet top-up, a payment, a refund) into entries
between named accounts (ledger/accounts.py).  It carries the id of the event it comes from, so applying it twice
is a no-op (the store's unique key is (ledger_key, source_event_id)).

Kinds (TigerBeetle's two-phase transfers, generalised to many entries):
- POSTING: entries are posted at once.
- HOLD: entries are *pending*: they reserve amounts (a wallet's available balance drops) without posting.
- POST_HOLD: resolves the hold `hold_id`: releases its reservation and posts either the hold's entries (no entries
  given) or the given ones, which may take at most what the hold reserved, per account, side and currency.
- VOID_HOLD: resolves the hold `hold_id` by releasing its reservation; it posts nothing.
- REVERSAL: corrects the posting set `reverses` by posting its mirror image (every debit becomes a credit of the
  same amount).  Postings are never edited or deleted; a correction is a reversal plus a new posting set.

Invariants checked by `validate` (pure; each named by a test in tests/unit/ledger/test_ledger_postings.py):
- **Balanced.** Per currency, the sum of debits equals the sum of credits.
- **Exact, positive amounts.** Every entry is a positive Decimal representable in the currency's minor units; no
  zero entries, no floats.
- **Known accounts.** Every account name follows the naming scheme.
- **One writer per limited account.** Every entry on a flagged account is in a set published under that account's
  key, so the accept/reject decision for a limit never depends on how partitions interleave.
- **Kinds carry what they need.** HOLD/POST_HOLD/VOID_HOLD have a hold_id, REVERSAL has `reverses`, POSTING has
  neither; VOID_HOLD has no entries; POSTING and HOLD have at least two.
Invariants the engine checks against ledger state (ledger/engine.py): a hold resolves at most once, a set is
reversed at most once, a post takes at most what its hold reserved, and limits hold after every set.
"""

from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Iterable, NamedTuple, Sequence

from ledger import accounts, money
from ledger.accounts import Direction

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SetKind(str, Enum):
    POSTING = "POSTING"
    HOLD = "HOLD"
    POST_HOLD = "POST_HOLD"
    VOID_HOLD = "VOID_HOLD"
    REVERSAL = "REVERSAL"


#: kinds whose rows change posted balances
POSTED_KINDS = (SetKind.POSTING, SetKind.POST_HOLD, SetKind.REVERSAL)


class InvalidPostingSet(ValueError):
    """A posting set the ledger refuses.  `reason` is a stable code for the review queue; str() says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Entry:
    account: str
    direction: Direction
    amount: Decimal
    currency: str

    @property
    def minor(self) -> int:
        return money.to_minor(self.amount, self.currency)

    def mirrored(self) -> "Entry":
        return Entry(self.account, self.direction.opposite, self.amount, self.currency)


def debit(account: str, amount: Decimal | str, currency: str) -> Entry:
    return Entry(account, Direction.DEBIT, _dec(amount, currency), currency)


def credit(account: str, amount: Decimal | str, currency: str) -> Entry:
    return Entry(account, Direction.CREDIT, _dec(amount, currency), currency)


def _dec(amount: Decimal | str, currency: str) -> Decimal:
    return money.parse_amount(amount, currency) if isinstance(amount, str) else amount


@dataclass(frozen=True)
class PostingSet:
    source_event_id: str
    ledger_key: str
    occurred_at: datetime
    entries: tuple[Entry, ...]
    kind: SetKind = SetKind.POSTING
    session_id: str | None = None
    hold_id: str | None = None
    reverses: str | None = None
    memo: str | None = None

    @property
    def idempotency_key(self) -> tuple[str, str]:
        return (self.ledger_key, self.source_event_id)


class MinorEntry(NamedTuple):
    """An entry in minor units, as stored and hashed (a NamedTuple: one is made per entry validated)."""

    account: str
    direction: Direction
    amount: int
    currency: str

    def mirrored(self) -> "MinorEntry":
        return MinorEntry(self.account, self.direction.opposite, self.amount, self.currency)


def micros(t: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidPostingSet("bad_time", f"occurred_at {t!r} has no time zone")
    return (t - EPOCH) // _MICRO


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc) - EPOCH


def validate(ps: PostingSet) -> tuple[MinorEntry, ...]:
    """Check every rule that needs no ledger state; return the entries in minor units."""
    if not isinstance(ps.source_event_id, str) or not ps.source_event_id:
        raise InvalidPostingSet("bad_source", "source_event_id is empty")
    if not isinstance(ps.ledger_key, str) or not ps.ledger_key:
        raise InvalidPostingSet("bad_key", "ledger_key is empty")
    if not isinstance(ps.occurred_at, datetime):
        raise InvalidPostingSet("bad_time", f"occurred_at {ps.occurred_at!r} is not a datetime")
    micros(ps.occurred_at)
    try:
        kind = _kind(ps.kind)
    except ValueError:
        raise InvalidPostingSet("bad_kind", f"unknown kind {ps.kind!r}; one of "
                                f"{', '.join(k.value for k in SetKind)}") from None
    needs_hold = kind in (SetKind.HOLD, SetKind.POST_HOLD, SetKind.VOID_HOLD)
    if needs_hold and not ps.hold_id:
        raise InvalidPostingSet("bad_hold", f"a {kind.value} set needs a hold_id")
    if not needs_hold and ps.hold_id is not None:
        raise InvalidPostingSet("bad_hold", f"a {kind.value} set has no hold_id")
    if kind is SetKind.REVERSAL and not ps.reverses:
        raise InvalidPostingSet("bad_reversal", "a REVERSAL names the set it reverses (reverses)")
    if kind is not SetKind.REVERSAL and ps.reverses is not None:
        raise InvalidPostingSet("bad_reversal", f"only a REVERSAL reverses; this is a {kind.value}")
    if kind is SetKind.REVERSAL and ps.reverses == ps.source_event_id:
        raise InvalidPostingSet("bad_reversal", "a set cannot reverse itself")
    if kind is SetKind.VOID_HOLD and ps.entries:
        raise InvalidPostingSet("bad_entries", "a VOID_HOLD releases its hold and carries no entries")
    if kind in (SetKind.POSTING, SetKind.HOLD) and len(ps.entries) < 2:
        raise InvalidPostingSet("bad_entries", f"a {kind.value} needs at least one debit and one credit")
    out = []
    for i, e in enumerate(ps.entries):
        if not isinstance(e, Entry):
            raise InvalidPostingSet("bad_entries", f"entry {i} is not an Entry")
        try:
            acc = accounts.parse(e.account)
        except accounts.InvalidAccount as exc:
            raise InvalidPostingSet("bad_account", f"entry {i}: {exc}") from None
        try:
            minor = money.to_minor(e.amount, e.currency)
        except money.UnknownCurrency as exc:
            raise InvalidPostingSet("bad_currency", f"entry {i}: {exc}") from None
        except money.InvalidAmount as exc:
            raise InvalidPostingSet("bad_amount", f"entry {i}: {exc}") from None
        if not isinstance(e.direction, Direction):
            raise InvalidPostingSet("bad_entries", f"entry {i}: direction {e.direction!r} is not DEBIT/CREDIT")
        if acc.limited and acc.key != ps.ledger_key:
            raise InvalidPostingSet(
                "limited_account_key",
                f"entry {i}: {e.account} has a balance limit, so every set touching it must be published under "
                f"its key {acc.key!r} (this one is under {ps.ledger_key!r})")
        out.append(MinorEntry(e.account, e.direction, minor, e.currency))
    check_balanced(out)
    return tuple(out)


def check_balanced(entries: Sequence[MinorEntry]) -> None:
    """Debits equal credits in every currency."""
    net: dict[str, int] = {}
    for e in entries:
        net[e.currency] = net.get(e.currency, 0) + (e.amount if e.direction is Direction.DEBIT else -e.amount)
    if not any(net.values()):
        return
    for cur in sorted(c for c, v in net.items() if v):
        d = sum(e.amount for e in entries if e.currency == cur and e.direction is Direction.DEBIT)
        c = sum(e.amount for e in entries if e.currency == cur and e.direction is Direction.CREDIT)
        if d != c:
            raise InvalidPostingSet("unbalanced", f"{cur}: debits {money.format_amount(d, cur)} != credits "
                                    f"{money.format_amount(c, cur)}")


def sides(entries: Iterable[MinorEntry]) -> dict[tuple[str, Direction, str], int]:
    """Total amount per (account, direction, currency)."""
    out: dict[tuple[str, Direction, str], int] = defaultdict(int)
    for e in entries:
        out[(e.account, e.direction, e.currency)] += e.amount
    return dict(out)


def check_within_hold(held: Iterable[MinorEntry], posted: Iterable[MinorEntry]) -> None:
    """A post takes at most what its hold reserved, on the accounts and sides the hold reserved."""
    have = sides(held)
    for (acc, d, cur), amount in sorted(sides(posted).items(), key=lambda kv: (kv[0][0], kv[0][1].value, kv[0][2])):
        limit = have.get((acc, d, cur))
        if limit is None:
            raise InvalidPostingSet("exceeds_hold", f"the hold reserved nothing on {d.value} {acc} {cur}")
        if amount > limit:
            raise InvalidPostingSet("exceeds_hold", f"{d.value} {acc}: posts {money.format_amount(amount, cur)} "
                                    f"{cur} but the hold reserved {money.format_amount(limit, cur)}")


def check_mirror(original: Iterable[MinorEntry], reversal: Iterable[MinorEntry]) -> None:
    """A reversal is exactly the mirror image of the original (same multiset of entries, sides swapped)."""
    want = sorted(_entry_key(e.mirrored()) for e in original)
    got = sorted(_entry_key(e) for e in reversal)
    if want != got:
        raise InvalidPostingSet("not_a_mirror", "a reversal must mirror every entry of the set it reverses "
                                "(same accounts, amounts and currencies, debits and credits swapped)")


def _entry_key(e: MinorEntry) -> tuple[str, str, int, str]:
    return (e.account, e.direction.value, e.amount, e.currency)


# ---- builders -------------------------------------------------------------------------------------------------
def posting(source_event_id: str, ledger_key: str, occurred_at: datetime, entries: Iterable[Entry], *,
            session_id: str | None = None, memo: str | None = None) -> PostingSet:
    return PostingSet(source_event_id, ledger_key, occurred_at, tuple(entries), SetKind.POSTING,
                      session_id=session_id, memo=memo)


def hold(source_event_id: str, ledger_key: str, occurred_at: datetime, hold_id: str, entries: Iterable[Entry], *,
         session_id: str | None = None, memo: str | None = None) -> PostingSet:
    return PostingSet(source_event_id, ledger_key, occurred_at, tuple(entries), SetKind.HOLD,
                      session_id=session_id, hold_id=hold_id, memo=memo)


def post_hold(source_event_id: str, held: PostingSet, occurred_at: datetime,
              entries: Iterable[Entry] | None = None, *, memo: str | None = None) -> PostingSet:
    """Resolve `held` by posting `entries` (at most what it reserved) or, with None, everything it reserved."""
    return PostingSet(source_event_id, held.ledger_key, occurred_at, tuple(entries or ()), SetKind.POST_HOLD,
                      session_id=held.session_id, hold_id=held.hold_id, memo=memo)


def void_hold(source_event_id: str, held: PostingSet, occurred_at: datetime, *, memo: str | None = None
              ) -> PostingSet:
    return PostingSet(source_event_id, held.ledger_key, occurred_at, (), SetKind.VOID_HOLD,
                      session_id=held.session_id, hold_id=held.hold_id, memo=memo)


def reversal(original: PostingSet, *, source_event_id: str, occurred_at: datetime, memo: str | None = None,
             posted_entries: Iterable[Entry] | None = None) -> PostingSet:
    """The correction of `original`: every entry mirrored, same key and session.

    `posted_entries`: what the original actually posted when that differs from its own entries (a POST_HOLD with
    no entries posts its hold's); by default the original's entries."""
    kind = SetKind(original.kind)
    if kind not in (SetKind.POSTING, SetKind.POST_HOLD):
        raise InvalidPostingSet("bad_reversal", f"a {kind.value} cannot be reversed"
                                + ("; void the hold instead" if kind is SetKind.HOLD else ""))
    entries = tuple(posted_entries) if posted_entries is not None else original.entries
    if not entries:
        raise InvalidPostingSet("bad_reversal", "the original posted its hold's entries: pass them as posted_entries")
    return PostingSet(source_event_id, original.ledger_key, occurred_at, tuple(e.mirrored() for e in entries),
                      SetKind.REVERSAL, session_id=original.session_id, reverses=original.source_event_id,
                      memo=memo)


def correction(original: PostingSet, corrected: Iterable[Entry], *, reversal_source_id: str,
               corrected_source_id: str, occurred_at: datetime, memo: str | None = None) -> tuple[PostingSet,
                                                                                                   PostingSet]:
    """A correction as the ledger records it: the reversal of `original`, then the posting it should have been."""
    rev = reversal(original, source_event_id=reversal_source_id, occurred_at=occurred_at, memo=memo)
    new = PostingSet(corrected_source_id, original.ledger_key, occurred_at, tuple(corrected), SetKind.POSTING,
                     session_id=original.session_id, memo=memo)
    return rev, new


# ---- content fingerprint (conflicting re-deliveries) ------------------------------------------------------------
def content_hash(ps: PostingSet, entries: Iterable[MinorEntry]) -> bytes:
    """SHA-256 of what the set says (not which event carried it): two deliveries of the same source event with
    the same content are duplicates; with different content, a conflict for review."""
    parts = [b"chargeverse.ledger.set/1\x00", _s(ps.ledger_key), _s(ps.source_event_id), _s(_kind(ps.kind).value),
             _s(ps.session_id), _s(ps.hold_id), _s(ps.reverses), _s(ps.memo), _Q.pack(micros(ps.occurred_at))]
    for e in entries:
        parts += (_s(e.account), _s(e.direction.code), _s(e.currency), _Q.pack(e.amount))
    return hashlib.sha256(b"".join(parts)).digest()


_Q = struct.Struct(">q")


def _s(v: str | None) -> bytes:
    if v is None:
        return b"\x00"
    b = v.encode()
    return b"\x01" + struct.pack(">I", len(b)) + b


def _kind(k: SetKind | str) -> SetKind:
    return k if isinstance(k, SetKind) else SetKind(k)


@dataclass
class HoldState:
    """A hold's life: PENDING, then POSTED or VOIDED, once."""

    status: str = "PENDING"
    resolved_by: str | None = field(default=None)

    def resolve(self, kind: SetKind, by: str) -> None:
        if self.status != "PENDING":
            raise InvalidPostingSet("hold_resolved", f"the hold was already {self.status.lower()} by {self.resolved_by}"
                                    "; a hold resolves at most once")
        self.status = "POSTED" if kind is SetKind.POST_HOLD else "VOIDED"
        self.resolved_by = by
