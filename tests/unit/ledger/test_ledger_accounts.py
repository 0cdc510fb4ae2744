"""Accounts (ledger/accounts.py): the name decides kind, normal side, flags and writer key; limits as flags."""

from __future__ import annotations

import pytest

from ledger import accounts
from ledger.accounts import Balance, Direction, Flags, Kind


@pytest.mark.parametrize("name, kind, flags, key", [
    ("driver:u-42:wallet", Kind.LIABILITY, Flags.DEBITS_MUST_NOT_EXCEED_CREDITS, "driver:u-42"),
    ("driver:u-42:receivable", Kind.ASSET, Flags.NONE, "driver:u-42"),
    ("cpo:NL-GFX:payable", Kind.LIABILITY, Flags.NONE, "cpo:NL-GFX"),
    ("cpo:NL*GFX:advance", Kind.ASSET, Flags.CREDITS_MUST_NOT_EXCEED_DEBITS, "cpo:NL*GFX"),
    ("tax:NL:vat_payable", Kind.LIABILITY, Flags.NONE, "tax:NL"),
    ("psp:stripe:clearing", Kind.ASSET, Flags.NONE, "psp:stripe"),
    ("platform:charging:revenue", Kind.REVENUE, Flags.NONE, "platform:charging"),
    ("platform:psp_fees:expense", Kind.EXPENSE, Flags.NONE, "platform:psp_fees"),
    ("platform:owners:equity", Kind.EQUITY, Flags.NONE, "platform:owners"),
    ("fleet:acme.eu:wallet", Kind.LIABILITY, Flags.DEBITS_MUST_NOT_EXCEED_CREDITS, "fleet:acme.eu"),
])
def test_the_name_alone_decides_what_an_account_is(name: str, kind: Kind, flags: Flags, key: str) -> None:
    acc = accounts.parse(name)
    assert (acc.kind, acc.flags, acc.key) == (kind, flags, key)
    assert acc.limited == (flags != Flags.NONE)


def test_every_purpose_and_owner_combination_parses_and_no_purpose_has_both_limits() -> None:
    for purpose, p in accounts.PURPOSES.items():
        assert p.flags != Flags.DEBITS_MUST_NOT_EXCEED_CREDITS | Flags.CREDITS_MUST_NOT_EXCEED_DEBITS
        for owner in p.owners:
            assert accounts.parse(f"{owner}:x1:{purpose}").purpose == purpose
        for owner in set(accounts.OWNER_TYPES) - p.owners:
            with pytest.raises(accounts.InvalidAccount, match="belongs to"):
                accounts.parse(f"{owner}:x1:{purpose}")


@pytest.mark.parametrize("kind, side", [(Kind.ASSET, Direction.DEBIT), (Kind.EXPENSE, Direction.DEBIT),
                                        (Kind.LIABILITY, Direction.CREDIT), (Kind.EQUITY, Direction.CREDIT),
                                        (Kind.REVENUE, Direction.CREDIT)])
def test_normal_balance_sides(kind: Kind, side: Direction) -> None:
    assert kind.normal_side is side
    b = Balance(debits_posted=700, credits_posted=200)
    assert b.normal(kind) == (500 if side is Direction.DEBIT else -500)


@pytest.mark.parametrize("name, why", [
    ("driver:u1", "is not"), ("driver:u1:wallet:EUR", "is not"), ("", "is not"),
    ("bank:main:bank", "unknown owner type"), ("driver::wallet", "owner id"), ("driver:-u1:wallet", "owner id"),
    ("driver:u 1:wallet", "owner id"), ("driver:" + "x" * 101 + ":wallet", "owner id"),
    ("driver:u1:savings", "unknown purpose"), ("tax:NL:wallet", "belongs to"), ("driver:u1:revenue", "belongs to"),
    (None, "must be a string"), (42, "must be a string"),
])
def test_names_outside_the_scheme_are_refused_saying_which_part(name, why: str) -> None:  # noqa: ANN001
    with pytest.raises(accounts.InvalidAccount, match=why):
        accounts.parse(name)


def test_builders_spell_the_accounts_the_billing_processor_uses() -> None:
    assert accounts.driver_wallet("u1") == "driver:u1:wallet"
    assert accounts.driver_receivable("u1") == "driver:u1:receivable"
    assert accounts.cpo_payable("NL-GFX") == "cpo:NL-GFX:payable"
    assert accounts.vat_payable("DE") == "tax:DE:vat_payable"
    assert accounts.psp_clearing("adyen") == "psp:adyen:clearing"
    assert accounts.revenue() == "platform:charging:revenue"
    assert accounts.suspense() == "platform:holds:suspense"
    with pytest.raises(accounts.InvalidAccount):
        accounts.driver_wallet("bad id")


def test_a_wallet_never_goes_below_zero_counting_what_holds_reserve() -> None:
    f = Flags.DEBITS_MUST_NOT_EXCEED_CREDITS
    assert Balance(credits_posted=1000, debits_posted=1000).violation(f) is None  # exactly zero is fine
    assert "exceed credits" in Balance(credits_posted=1000, debits_posted=1001).violation(f)
    assert "exceed credits" in Balance(credits_posted=1000, debits_posted=600, debits_pending=401).violation(f)
    assert Balance(credits_posted=1000, debits_posted=600, debits_pending=400).violation(f) is None
    assert Balance(credits_posted=1000, debits_posted=1000, credits_pending=999).violation(f) is None
    assert Balance(debits_posted=5).violation(Flags.NONE) is None


def test_credits_must_not_exceed_debits_is_the_mirror() -> None:
    f = Flags.CREDITS_MUST_NOT_EXCEED_DEBITS
    assert Balance(debits_posted=500, credits_posted=500).violation(f) is None
    assert "exceed debits" in Balance(debits_posted=500, credits_posted=501).violation(f)
    assert "exceed debits" in Balance(debits_posted=500, credits_posted=400, credits_pending=101).violation(f)


def test_available_balance_subtracts_reservations_on_the_normal_side() -> None:
    b = Balance(credits_posted=5000, debits_posted=1000, debits_pending=3000)
    assert b.normal(Kind.LIABILITY) == 4000
    assert b.available(Kind.LIABILITY) == 1000
    a = Balance(debits_posted=5000, credits_pending=2000)
    assert a.available(Kind.ASSET) == 3000


def test_plus_adds_to_exactly_one_of_the_four_totals() -> None:
    b = Balance()
    assert b.plus(Direction.DEBIT, 5, pending=False) == Balance(5, 0, 0, 0)
    assert b.plus(Direction.CREDIT, 5, pending=False) == Balance(0, 5, 0, 0)
    assert b.plus(Direction.DEBIT, 5, pending=True) == Balance(0, 0, 5, 0)
    assert b.plus(Direction.CREDIT, 5, pending=True).plus(Direction.CREDIT, -5, pending=True) == b


def test_directions_have_one_letter_codes_and_opposites() -> None:
    assert [d.code for d in Direction] == ["D", "C"]
    assert all(Direction.from_code(d.code) is d and d.opposite.opposite is d for d in Direction)
