"""The ledger's events as records (schemas/avro/LedgerPostingSet.avsc, LedgerSealed.avsc) and back.

Pure: builds and reads the dicts the platform's Codec encodes; publishing is the caller's (the billing processor's
producer, `cv ledger seal`).

The Kafka key of a LedgerPostingSet must be its `ledger_key` (`key_of`): that is what puts every posting set of a
limited account on one partition (ledger/accounts.py).  Seals are keyed SEAL_KEY, so they too are totally ordered.
Amounts travel as plain decimal strings ("12.34"), never floats; kinds as strings (an enum would make a new kind
unreadable by old consumers, and an unknown kind must reach the ledger to be refused with a reason, not be lost
to a decode error).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from chargeverse.events import derive, envelope
from ledger import money
from ledger.accounts import Direction
from ledger.postings import Entry, InvalidPostingSet, PostingSet, SetKind
from ledger.seals import SealHead

POSTING_SET = "LedgerPostingSet"
SEALED = "LedgerSealed"
SEAL_KEY = "ledger:seal"


_DIRECTIONS = {d.value: d for d in Direction}
_KINDS = {k.value: k for k in SetKind}


def key_of(ps: PostingSet) -> str:
    """The Kafka key to publish `ps` under."""
    return ps.ledger_key


def posting_set_record(ps: PostingSet, *, source: str, cause: dict[str, Any] | None = None,
                       correlation_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The LedgerPostingSet record of `ps`.  With `cause` (the event it was derived from) the record gets a
    deterministic event id and the cause's correlation/causation and times, so a processor re-running after a
    crash re-publishes identical bytes."""
    payload = {
        "ledger_key": ps.ledger_key,
        "source_event_id": ps.source_event_id,
        "kind": SetKind(ps.kind).value,
        "session_id": ps.session_id,
        "hold_id": ps.hold_id,
        "reverses": ps.reverses,
        "memo": ps.memo,
        "entries": [{"account": e.account, "direction": e.direction.value,
                     "amount": _amount_text(e.amount, e.currency), "currency": e.currency} for e in ps.entries],
    }
    if cause is not None:
        rec = derive(cause, tag=f"ledger/{ps.ledger_key}/{ps.source_event_id}", source=source, **payload)
        rec["occurred_at"] = ps.occurred_at
        return rec
    rec = envelope(source=source, correlation_id=correlation_id or ps.session_id or ps.source_event_id,
                   occurred_at=ps.occurred_at, event_id=event_id)
    rec.update(payload)
    return rec


def _amount_text(amount: Any, currency: str) -> str:
    """Plain decimal text of an amount, exactly as given (no exponent); validation happens at the ledger."""
    try:
        return format(amount, "f")
    except (TypeError, ValueError):
        return str(amount)


def posting_set_from_record(rec: dict[str, Any]) -> PostingSet:
    """The PostingSet a LedgerPostingSet record describes; InvalidPostingSet (with a reason code) if its fields
    cannot be read.  Ledger rules are checked later by `postings.validate`."""
    entries = []
    for i, e in enumerate(rec.get("entries") or ()):
        direction = _DIRECTIONS.get(e.get("direction"))
        if direction is None:
            raise InvalidPostingSet("bad_entries", f"entry {i}: direction {e.get('direction')!r} is not "
                                    "DEBIT or CREDIT")
        currency = e.get("currency")
        try:
            amount = money.parse_amount(e.get("amount"), currency)
        except money.UnknownCurrency as exc:
            raise InvalidPostingSet("bad_currency", f"entry {i}: {exc}") from None
        except money.InvalidAmount as exc:
            raise InvalidPostingSet("bad_amount", f"entry {i}: {exc}") from None
        entries.append(Entry(e.get("account"), direction, amount, currency))
    kind = _KINDS.get(rec.get("kind"))
    if kind is None:
        raise InvalidPostingSet("bad_kind", f"unknown kind {rec.get('kind')!r}; one of "
                                f"{', '.join(k.value for k in SetKind)}")
    return PostingSet(
        source_event_id=rec.get("source_event_id"), ledger_key=rec.get("ledger_key"),
        occurred_at=rec.get("occurred_at"), entries=tuple(entries), kind=kind, session_id=rec.get("session_id"),
        hold_id=rec.get("hold_id"), reverses=rec.get("reverses"), memo=rec.get("memo"))


def sealed_record(heads: Iterable[SealHead], root: bytes, previous_root: bytes | None, *, source: str,
                  occurred_at: datetime | None = None, correlation_id: str = "ledger-seal") -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id, occurred_at=occurred_at)
    rec.update(
        root=root.hex(),
        previous_root=previous_root.hex() if previous_root is not None else None,
        heads=[{"ledger_partition": h.ledger_partition, "seq": h.seq, "head_hash": h.head_hash.hex(),
                "postings_root": h.postings_root.hex()} for h in heads],
    )
    return rec


def sealed_from_record(rec: dict[str, Any]) -> tuple[list[SealHead], bytes, bytes | None]:
    """(heads, root, previous_root) of a LedgerSealed record; ValueError if a hash is not hex of 32 bytes."""
    heads = [SealHead(h["ledger_partition"], int(h["seq"]), _h32(h["head_hash"]), _h32(h["postings_root"]))
             for h in rec["heads"]]
    prev = rec.get("previous_root")
    return heads, _h32(rec["root"]), _h32(prev) if prev is not None else None


def _h32(text: str) -> bytes:
    b = bytes.fromhex(text)
    if len(b) != 32:
        raise ValueError(f"{text!r} is not a 32-byte hash")
    return b
