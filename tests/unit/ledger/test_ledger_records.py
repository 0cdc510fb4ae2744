"""The ledger's events (ledger/records.py + schemas/avro/Ledger*.avsc): every kind survives Avro encoding exactly;
bad fields become refusals with a reason; derived events re-emit identical bytes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chargeverse.avro import Codec
from chargeverse.events import envelope
from ledger import accounts as A
from ledger import postings as P
from ledger import records as R
from ledger.postings import InvalidPostingSet, PostingSet, SetKind
from ledger.seals import SealHead, seal_root

T = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
W = A.driver_wallet("u1")
H = P.hold("h", "driver:u1", T, "h1", [P.debit(W, "30.00", "EUR"), P.credit(A.suspense(), "30.00", "EUR")],
           session_id="s-1", memo="session start")
SETS = [
    P.posting("top", "driver:u1", T, [P.debit(A.psp_clearing("stripe"), "50.00", "EUR"), P.credit(W, "50.00", "EUR")]),
    H,
    P.post_hold("post", H, T, [P.debit(W, "12.34", "EUR"), P.credit(A.suspense(), "12.34", "EUR")]),
    P.post_hold("post-all", H, T),
    P.void_hold("void", H, T),
    PostingSet("rev", "driver:u1", T, (), SetKind.REVERSAL, reverses="top"),
    P.posting("jpy", "k", T, [P.debit(A.driver_receivable("u9"), "1500", "JPY"), P.credit(A.revenue(), "1500", "JPY")]),
]


@pytest.mark.parametrize("ps", SETS, ids=[s.source_event_id for s in SETS])
def test_every_kind_round_trips_through_avro_exactly(ps: PostingSet) -> None:
    codec = Codec()
    rec = R.posting_set_record(ps, source="streams.billing")
    etype, back = codec.decode(codec.encode(R.POSTING_SET, rec))
    assert etype == "LedgerPostingSet"
    assert R.posting_set_from_record(back) == ps
    assert R.key_of(ps) == ps.ledger_key


def test_amounts_travel_as_plain_decimal_text() -> None:
    rec = R.posting_set_record(SETS[2], source="t")
    assert [e["amount"] for e in rec["entries"]] == ["12.34", "12.34"]
    assert rec["entries"][0]["direction"] == "DEBIT" and rec["kind"] == "POST_HOLD"


def test_a_set_derived_from_an_event_has_a_stable_id_and_the_causal_chain() -> None:
    cause = envelope(source="streams.sessions", correlation_id="s-1")
    a = R.posting_set_record(SETS[0], source="streams.billing", cause=cause)
    b = R.posting_set_record(SETS[0], source="streams.billing", cause=cause)
    assert a == b and a["causation_id"] == cause["event_id"] and a["correlation_id"] == "s-1"
    assert a["occurred_at"] == T
    other = R.posting_set_record(SETS[1], source="streams.billing", cause=cause)
    assert other["event_id"] != a["event_id"]
    assert Codec().encode(R.POSTING_SET, a) == Codec().encode(R.POSTING_SET, b)


@pytest.mark.parametrize("change, why", [
    ({"kind": "REFUND"}, "bad_kind"),
    ({"entries": [{"account": W, "direction": "DEBIT", "amount": "1e2", "currency": "EUR"}]}, "bad_amount"),
    ({"entries": [{"account": W, "direction": "DEBIT", "amount": "-1.00", "currency": "EUR"}]}, "bad_amount"),
    ({"entries": [{"account": W, "direction": "DEBIT", "amount": "1.001", "currency": "EUR"}]}, "bad_amount"),
    ({"entries": [{"account": W, "direction": "DEBIT", "amount": "1.00", "currency": "XBT"}]}, "bad_currency"),
    ({"entries": [{"account": W, "direction": "SIDEWAYS", "amount": "1.00", "currency": "EUR"}]}, "bad_entries"),
])
def test_unreadable_fields_become_refusals_with_a_reason(change: dict, why: str) -> None:
    rec = R.posting_set_record(SETS[0], source="t")
    rec.update(change)
    with pytest.raises(InvalidPostingSet) as info:
        R.posting_set_from_record(rec)
    assert info.value.reason == why


def test_seal_records_round_trip_and_hashes_must_be_32_bytes() -> None:
    heads = [SealHead("ledger:0", 3, b"\x01" * 32, b"\x02" * 32), SealHead("ledger:1", 1, b"\x03" * 32, b"\x04" * 32)]
    root = seal_root(heads)
    codec = Codec()
    etype, back = codec.decode(codec.encode(R.SEALED, R.sealed_record(heads, root, b"\x05" * 32, source="cli")))
    assert etype == "LedgerSealed"
    assert R.sealed_from_record(back) == (heads, root, b"\x05" * 32)
    back["root"] = "ab"
    with pytest.raises(ValueError, match="32-byte"):
        R.sealed_from_record(back)


def test_the_schema_documents_every_kind_the_ledger_reads() -> None:
    import json

    from schemas import AVRO_DIR

    doc = json.loads((AVRO_DIR / "LedgerPostingSet.avsc").read_text())
    kind = next(f for f in doc["fields"] if f["name"] == "kind")
    assert kind["type"] == "string" and all(k.value in kind["doc"] for k in SetKind)
