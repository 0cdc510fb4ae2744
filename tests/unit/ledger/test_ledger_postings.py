"""Posting sets (ledger/postings.py): balanced, exact, positive; kinds carry what they need; one writer per limited
account; holds are capped and resolve once; reversals mirror."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import accounts as A
from ledger import postings as P
from ledger.accounts import Direction
from ledger.postings import Entry, InvalidPostingSet, MinorEntry, PostingSet, SetKind

T = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
WALLET = A.driver_wallet("u1")
CLEARING = A.psp_clearing("stripe")
SUSPENSE = A.suspense()


def topup(amount: str = "50.00", key: str = "driver:u1", source: str = "ev-topup") -> PostingSet:
    return P.posting(source, key, T, [P.debit(CLEARING, amount, "EUR"), P.credit(WALLET, amount, "EUR")])


def charge(source: str = "ev-charge") -> PostingSet:
    return P.posting(source, "driver:u1", T, [
        P.debit(WALLET, "12.10", "EUR"),
        P.credit(A.cpo_payable("NL-GFX"), "8.00", "EUR"),
        P.credit(A.revenue(), "2.00", "EUR"),
        P.credit(A.vat_payable("NL"), "2.10", "EUR"),
    ], session_id="s-1")


def reason(ps: PostingSet) -> str:
    with pytest.raises(InvalidPostingSet) as info:
        P.validate(ps)
    return info.value.reason


def test_a_balanced_set_validates_into_minor_units() -> None:
    assert P.validate(charge()) == (
        MinorEntry(WALLET, Direction.DEBIT, 1210, "EUR"), MinorEntry(A.cpo_payable("NL-GFX"), Direction.CREDIT, 800, "EUR"),
        MinorEntry(A.revenue(), Direction.CREDIT, 200, "EUR"), MinorEntry(A.vat_payable("NL"), Direction.CREDIT, 210, "EUR"))


def test_debits_must_equal_credits_in_every_currency_separately() -> None:
    bad = replace(charge(), entries=charge().entries[:-1])
    assert reason(bad) == "unbalanced"
    # 10 EUR against 10 USD: equal numbers, two unbalanced currencies
    fx = P.posting("fx", "platform:x", T, [P.debit(A.name("platform", "main", "bank"), "10.00", "EUR"),
                                            P.credit(A.name("platform", "main", "bank"), "10.00", "USD")])
    assert reason(fx) == "unbalanced"
    both = P.posting("fx2", "platform:x", T, [
        P.debit(A.name("platform", "eur", "bank"), "10.00", "EUR"), P.credit(A.name("platform", "fx", "equity"), "10.00", "EUR"),
        P.debit(A.name("platform", "fx", "equity"), "11.00", "USD"), P.credit(A.name("platform", "usd", "bank"), "11.00", "USD")])
    assert len(P.validate(both)) == 4


@pytest.mark.parametrize("amount, why", [(Decimal("0"), "bad_amount"), (Decimal("-5.00"), "bad_amount"),
                                         (Decimal("1.005"), "bad_amount"), (1.5, "bad_amount")])
def test_entries_are_positive_exact_decimals(amount, why: str) -> None:  # noqa: ANN001
    ps = P.posting("e", "driver:u1", T, [Entry(CLEARING, Direction.DEBIT, amount, "EUR"),
                                         Entry(WALLET, Direction.CREDIT, amount, "EUR")])
    assert reason(ps) == why


def test_unknown_accounts_and_currencies_are_refused() -> None:
    assert reason(replace(topup(), entries=(P.debit("psp:stripe:float", "1.00", "EUR"),
                                            P.credit(WALLET, "1.00", "EUR")))) == "bad_account"
    assert reason(replace(topup(), entries=(Entry(CLEARING, Direction.DEBIT, Decimal("1"), "XBT"),
                                            Entry(WALLET, Direction.CREDIT, Decimal("1"), "XBT")))) == "bad_currency"
    assert reason(replace(topup(), entries=(Entry(CLEARING, "DEBIT", Decimal("1"), "EUR"),  # type: ignore[arg-type]
                                            Entry(WALLET, Direction.CREDIT, Decimal("1"), "EUR")))) == "bad_entries"


def test_every_set_touching_a_limited_account_is_under_its_key() -> None:
    assert P.validate(topup(key="driver:u1"))
    assert reason(topup(key="driver:u2")) == "limited_account_key"  # credits too: order would decide a later debit
    assert reason(topup(key="psp:stripe")) == "limited_account_key"
    # unlimited accounts may be posted under any key
    unlimited = P.posting("x", "session:s-9", T, [P.debit(A.driver_receivable("u1"), "1.00", "EUR"),
                                                   P.credit(A.revenue(), "1.00", "EUR")])
    assert P.validate(unlimited)


@pytest.mark.parametrize("change, why", [
    (dict(kind=SetKind.HOLD), "bad_hold"),  # no hold id
    (dict(hold_id="h1"), "bad_hold"),  # a POSTING with a hold id
    (dict(kind=SetKind.REVERSAL), "bad_reversal"),  # reverses nothing
    (dict(reverses="ev-x"), "bad_reversal"),  # a POSTING that reverses
    (dict(kind=SetKind.REVERSAL, reverses="ev-topup"), "bad_reversal"),  # itself
    (dict(kind=SetKind.VOID_HOLD, hold_id="h1"), "bad_entries"),  # a void with entries
    (dict(kind="REFUND"), "bad_kind"),
    (dict(source_event_id=""), "bad_source"),
    (dict(ledger_key=""), "bad_key"),
    (dict(occurred_at=datetime(2025, 3, 1)), "bad_time"),
    (dict(occurred_at="2025-03-01"), "bad_time"),
])
def test_kinds_carry_exactly_what_they_need(change: dict, why: str) -> None:
    assert reason(replace(topup(), **change)) == why


def test_postings_and_holds_need_two_entries_resolutions_and_reversals_may_have_none() -> None:
    one = replace(topup(), entries=topup().entries[:1])
    assert reason(one) == "bad_entries"
    assert reason(replace(one, kind=SetKind.HOLD, hold_id="h")) == "bad_entries"
    assert reason(replace(topup(), entries=())) == "bad_entries"
    assert P.validate(PostingSet("p", "driver:u1", T, (), SetKind.POST_HOLD, hold_id="h")) == ()
    assert P.validate(PostingSet("v", "driver:u1", T, (), SetKind.VOID_HOLD, hold_id="h")) == ()
    assert P.validate(PostingSet("r", "driver:u1", T, (), SetKind.REVERSAL, reverses="ev")) == ()


def test_a_post_takes_at_most_what_its_hold_reserved_per_account_side_and_currency() -> None:
    held = P.validate(P.hold("h", "driver:u1", T, "h1", [P.debit(WALLET, "30.00", "EUR"),
                                                          P.credit(SUSPENSE, "30.00", "EUR")]))
    P.check_within_hold(held, held)
    P.check_within_hold(held, [MinorEntry(WALLET, Direction.DEBIT, 1234, "EUR"),
                               MinorEntry(SUSPENSE, Direction.CREDIT, 1234, "EUR")])
    for bad in ([MinorEntry(WALLET, Direction.DEBIT, 3001, "EUR")],
                [MinorEntry(WALLET, Direction.CREDIT, 1, "EUR")],
                [MinorEntry(A.revenue(), Direction.CREDIT, 1, "EUR")],
                [MinorEntry(WALLET, Direction.DEBIT, 1, "USD")],
                [MinorEntry(WALLET, Direction.DEBIT, 2000, "EUR"), MinorEntry(WALLET, Direction.DEBIT, 1001, "EUR")]):
        with pytest.raises(InvalidPostingSet, match="exceeds_hold"):
            P.check_within_hold(held, bad)


def test_a_reversal_mirrors_every_entry_and_keeps_key_and_session() -> None:
    orig = charge()
    rev = P.reversal(orig, source_event_id="ev-fix", occurred_at=T + timedelta(days=1), memo="wrong tariff")
    assert (rev.kind, rev.reverses, rev.ledger_key, rev.session_id) == (SetKind.REVERSAL, orig.source_event_id,
                                                                        orig.ledger_key, orig.session_id)
    P.check_mirror(P.validate(orig), P.validate(rev))
    net: dict[str, int] = {}
    for e in P.validate(orig) + P.validate(rev):
        net[e.account] = net.get(e.account, 0) + (e.amount if e.direction is Direction.DEBIT else -e.amount)
    assert set(net.values()) == {0}
    with pytest.raises(InvalidPostingSet, match="not_a_mirror"):
        P.check_mirror(P.validate(orig), P.validate(orig))
    with pytest.raises(InvalidPostingSet, match="not_a_mirror"):
        P.check_mirror(P.validate(orig), P.validate(rev)[:-1])


def test_holds_and_voids_and_reversals_cannot_be_reversed_and_a_correction_is_reversal_plus_posting() -> None:
    held = P.hold("h", "driver:u1", T, "h1", [P.debit(WALLET, "30.00", "EUR"), P.credit(SUSPENSE, "30.00", "EUR")])
    with pytest.raises(InvalidPostingSet, match="void the hold instead"):
        P.reversal(held, source_event_id="x", occurred_at=T)
    posted_whole = P.post_hold("p", held, T)
    with pytest.raises(InvalidPostingSet, match="posted_entries"):
        P.reversal(posted_whole, source_event_id="x", occurred_at=T)
    assert P.validate(P.reversal(posted_whole, source_event_id="x", occurred_at=T, posted_entries=held.entries))
    rev, new = P.correction(charge(), charge().entries[:1] + (P.credit(A.cpo_payable("NL-GFX"), "12.10", "EUR"),),
                            reversal_source_id="fix-1", corrected_source_id="fix-2", occurred_at=T)
    assert rev.kind is SetKind.REVERSAL and new.kind is SetKind.POSTING and new.session_id == "s-1"
    P.validate(rev)
    P.validate(new)


def test_resolution_builders_inherit_the_holds_key_session_and_id() -> None:
    held = P.hold("h", "driver:u1", T, "h1", [P.debit(WALLET, "30.00", "EUR"), P.credit(SUSPENSE, "30.00", "EUR")],
                  session_id="s-1")
    for ps in (P.post_hold("p", held, T), P.void_hold("v", held, T)):
        assert (ps.ledger_key, ps.session_id, ps.hold_id) == ("driver:u1", "s-1", "h1")
        P.validate(ps)


def test_a_hold_resolves_at_most_once() -> None:
    s = P.HoldState()
    s.resolve(SetKind.POST_HOLD, "ev-post")
    assert (s.status, s.resolved_by) == ("POSTED", "ev-post")
    for kind in (SetKind.POST_HOLD, SetKind.VOID_HOLD):
        with pytest.raises(InvalidPostingSet, match="at most once"):
            s.resolve(kind, "ev-again")
    v = P.HoldState()
    v.resolve(SetKind.VOID_HOLD, "ev-void")
    assert v.status == "VOIDED"


def test_the_content_hash_covers_every_field_and_nothing_else() -> None:
    base = charge()
    h = P.content_hash(base, P.validate(base))
    assert P.content_hash(base, P.validate(base)) == h
    variants = [replace(base, memo="x"), replace(base, session_id=None), replace(base, session_id="s-2"),
                replace(base, occurred_at=T + timedelta(microseconds=1)), replace(base, source_event_id="other"),
                replace(base, ledger_key="driver:u1 "),
                replace(base, entries=base.entries[:1] + (P.credit(A.cpo_payable("NL-GFX"), "8.01", "EUR"),
                                                          P.credit(A.revenue(), "1.99", "EUR"), base.entries[3]))]
    hashes = {P.content_hash(v, P.validate(replace(v, ledger_key="driver:u1"))) for v in variants}
    assert h not in hashes and len(hashes) == len(variants)


def test_times_are_exact_microseconds_in_any_zone() -> None:
    cet = timezone(timedelta(hours=1))
    assert P.micros(datetime(2025, 3, 1, 13, 0, tzinfo=cet)) == P.micros(T)
    assert P.micros(T + timedelta(microseconds=7)) - P.micros(T) == 7


amounts = st.integers(min_value=1, max_value=10**9)
acct = st.sampled_from([A.cpo_payable("A"), A.cpo_payable("B"), A.revenue(), A.vat_payable("NL"), CLEARING,
                        A.driver_receivable("u1"), SUSPENSE])


@given(st.lists(st.tuples(acct, acct, amounts), min_size=1, max_size=8), st.sampled_from(["EUR", "JPY", "BHD"]))
def test_any_set_built_from_debit_credit_pairs_validates_and_its_reversal_nets_to_zero(pairs, currency) -> None:  # noqa: ANN001
    from ledger.money import from_minor

    entries = []
    for d, c, amt in pairs:
        entries += [Entry(d, Direction.DEBIT, from_minor(amt, currency), currency),
                    Entry(c, Direction.CREDIT, from_minor(amt, currency), currency)]
    ps = P.posting("src", "any:key", T, entries)
    minor = P.validate(ps)
    rev = P.validate(P.reversal(ps, source_event_id="rev", occurred_at=T))
    P.check_mirror(minor, rev)
    net: dict[str, int] = {}
    for e in minor + rev:
        net[e.account] = net.get(e.account, 0) + (e.amount if e.direction is Direction.DEBIT else -e.amount)
    assert set(net.values()) == {0}


@given(st.lists(st.tuples(acct, amounts), min_size=1, max_size=6), st.integers(min_value=1, max_value=10**6))
def test_any_set_whose_totals_differ_is_refused(debits, skew) -> None:  # noqa: ANN001
    from ledger.money import from_minor

    total = sum(a for _, a in debits)
    entries = [Entry(a, Direction.DEBIT, from_minor(x, "EUR"), "EUR") for a, x in debits]
    entries.append(Entry(A.revenue(), Direction.CREDIT, from_minor(total + skew, "EUR"), "EUR"))
    assert reason(P.posting("src", "k", T, entries)) == "unbalanced"
