"""Billing's plans fit the ledger as it is: every account name parses with ledger.accounts to the kind billing
states, and plans posted through the ledger's own engine (in memory) are accepted, hold/capture/release behave,
a wallet cannot be overspent, a replay is a duplicate.  If the ledger's scheme moves, these fail first."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ledger import accounts as ledger_accounts
from ledger.accounts import Direction
from ledger.billing import account_names as names
from ledger.billing.cdr_checks import Price
from ledger.billing.postings_plan import (
    DriverPayer, FleetPayer, PostingPlan, RoamingFee, capture_plan, energy_bill_forward_plan, hold_plan,
    own_session_plan, release_plan, reversal_plan, roamed_session_plan, wallet_spend_plan, wallet_top_up_plan,
)
from ledger.engine import Engine, LedgerState
from ledger.postings import Entry, PostingSet, SetKind, validate

D = Decimal
AT = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def to_set(plan: PostingPlan) -> PostingSet:
    return PostingSet(plan.posting_id, plan.ledger_key, AT,
                      tuple(Entry(leg.account, Direction(leg.side.value), leg.amount, leg.currency)
                            for leg in plan.legs),
                      SetKind(plan.ledger_kind.value), session_id=plan.session_id, hold_id=plan.hold_id,
                      reverses=plan.reverses, memo=plan.memo)


class Ledger:
    def __init__(self) -> None:
        self.engine = Engine(LedgerState())
        self.offset = 0

    def post(self, plan: PostingPlan):  # noqa: ANN201
        self.offset += 1
        return self.engine.post("ledger-0", self.offset, to_set(plan), f"evt-{self.offset}")

    def balance(self, account: str, currency: str = "EUR") -> Decimal:
        b = self.engine.state.balances.get((account, currency))
        if b is None:
            return D(0)
        kind = ledger_accounts.parse(account).kind
        return D(b.normal(kind)).scaleb(-2)

    def available(self, account: str, currency: str = "EUR") -> Decimal:
        b = self.engine.state.balances[(account, currency)]
        return D(b.available(ledger_accounts.parse(account).kind)).scaleb(-2)


BUILT_NAMES = [
    names.driver_receivable("u-1"), names.driver_wallet("u-1"), names.fleet_receivable("f-1"),
    names.psp_clearing("stripe"), names.cpo_payable("nl", "abc"), names.vat_payable("NLD"),
    names.REVENUE_CHARGING, names.REVENUE_ROAMING,
]


@pytest.mark.parametrize("account", BUILT_NAMES)
def test_every_billing_account_parses_in_the_ledger_with_the_same_kind(account: str) -> None:
    parsed = ledger_accounts.parse(account)
    assert parsed.kind.value == names.kind_of(account).value
    assert parsed.limited == names.is_limited(account)
    assert parsed.key == names.owner_key(account)


def test_the_supplier_receivable_needs_a_supplier_owner_type_in_the_ledger() -> None:
    """Energy-bill forwarding posts to supplier:{id}:receivable; the ledger must list 'supplier' (see report)."""
    account = names.supplier_receivable("eneco")
    try:
        parsed = ledger_accounts.parse(account)
    except ledger_accounts.InvalidAccount:
        pytest.xfail("ledger/accounts.py has no 'supplier' owner type yet (change requested in the billing report)")
    assert parsed.kind.value == "asset"


def test_billing_and_the_ledger_agree_on_minor_units() -> None:
    """Billing rounds to these exponents; the ledger refuses what it cannot represent.  (Billing knows a few more
    currencies than the ledger settles in; an account's currency is one the ledger settles.)"""
    from ledger import money as ledger_money
    from ledger.billing import money as billing_money

    shared = set(ledger_money.MINOR_UNITS) & set(billing_money.MINOR_UNITS)
    assert shared and all(ledger_money.MINOR_UNITS[c] == billing_money.MINOR_UNITS[c] for c in shared)


def test_plans_validate_as_ledger_posting_sets() -> None:
    payer = DriverPayer("u-1")
    plans = [
        own_session_plan(source_event_id="e1", session_id="s", payer=payer, total_cost=Price(D("4.00"), D("4.40")),
                         currency="EUR", vat_country="BE"),
        roamed_session_plan(source_event_id="e2", session_id="s", payer=FleetPayer("f-1", "CC1", "u-1"),
                            partner_cost=Price(D("10"), D("12.10")), currency="EUR", cpo_country_code="NL",
                            cpo_party_id="ABC", vat_country="NL", fee=RoamingFee(D("0.30"), D("5"), D("21"))),
        hold_plan(source_event_id="e3", session_id="s", account_id="u-1", provider="stripe", amount=D("30.00"),
                  currency="EUR", hold_id="pi_1"),
        capture_plan(source_event_id="e4", session_id="s", account_id="u-1", provider="stripe",
                     hold_amount=D("30.00"), captured=D("4.40"), currency="EUR", hold_id="pi_1", charge_id="pi_1"),
        release_plan(source_event_id="e5", session_id="s", account_id="u-1", provider="stripe", hold_id="pi_2"),
        wallet_top_up_plan(source_event_id="e6", account_id="u-1", provider="stripe", amount=D("5.00"),
                           currency="EUR", charge_id="ch"),
        wallet_spend_plan(source_event_id="e7", session_id="s", account_id="u-1", amount=D("4.40"), currency="EUR"),
    ]
    for plan in plans:
        validate(to_set(plan))


def test_hold_then_capture_settles_the_session_and_releases_the_rest() -> None:
    ledger = Ledger()
    hold = hold_plan(source_event_id="start", session_id="s", account_id="u-1", provider="stripe",
                     amount=D("30.00"), currency="EUR", hold_id="pi_1")
    charge = own_session_plan(source_event_id="cdr", session_id="s", payer=DriverPayer("u-1"),
                              total_cost=Price(D("20.00"), D("24.20")), currency="EUR", vat_country="NL")
    capture = capture_plan(source_event_id="captured", session_id="s", account_id="u-1", provider="stripe",
                           hold_amount=D("30.00"), captured=D("24.20"), currency="EUR", hold_id="pi_1",
                           charge_id="pi_1")
    for plan in (hold, charge, capture):
        assert ledger.post(plan) is not None and not ledger.engine.out.rejections, ledger.engine.out.rejections
    assert ledger.balance("driver:u-1:receivable") == 0
    assert ledger.available("driver:u-1:receivable") == 0  # no reservation left: the rest was released
    assert ledger.balance("psp:stripe:clearing") == D("24.20")
    assert ledger.balance("platform:charging:revenue") == D("20.00")
    assert ledger.balance("tax:NL:vat_payable") == D("4.20")
    # the hold resolves once: a second capture or a release is refused
    again = capture_plan(source_event_id="captured-again", session_id="s", account_id="u-1", provider="stripe",
                         hold_amount=D("30.00"), captured=D("1.00"), currency="EUR", hold_id="pi_1", charge_id="x")
    ledger.post(again)
    assert ledger.engine.out.rejections[-1].reason == "hold_resolved"


def test_a_released_hold_posts_nothing() -> None:
    ledger = Ledger()
    ledger.post(hold_plan(source_event_id="start", session_id="s", account_id="u-1", provider="p", amount=D("30.00"),
                          currency="EUR", hold_id="h"))
    ledger.post(release_plan(source_event_id="end", session_id="s", account_id="u-1", provider="p", hold_id="h"))
    assert not ledger.engine.out.rejections
    assert ledger.balance("psp:p:clearing") == 0 and ledger.available("psp:p:clearing") == 0


def test_the_ledger_refuses_to_overspend_a_wallet_billing_names() -> None:
    ledger = Ledger()
    ledger.post(wallet_top_up_plan(source_event_id="top", account_id="u-1", provider="p", amount=D("5.00"),
                                   currency="EUR", charge_id="c"))
    ledger.post(wallet_spend_plan(source_event_id="cdr-1", session_id="s1", account_id="u-1", amount=D("4.40"),
                                  currency="EUR"))
    assert not ledger.engine.out.rejections
    ledger.post(wallet_spend_plan(source_event_id="cdr-2", session_id="s2", account_id="u-1", amount=D("4.40"),
                                  currency="EUR"))
    assert ledger.engine.out.rejections[-1].reason == "limit"
    assert ledger.balance("driver:u-1:wallet") == D("0.60")


def test_replaying_a_plan_is_a_duplicate_and_a_reversal_nets_to_zero() -> None:
    ledger = Ledger()
    charge = own_session_plan(source_event_id="cdr", session_id="s", payer=DriverPayer("u-1"),
                              total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BE")
    assert ledger.post(charge) is not None
    assert ledger.post(charge) is None and ledger.engine.out.duplicates == 1
    ledger.post(reversal_plan(charge, source_event_id="credit-cdr", reason="credit CDR"))
    assert not ledger.engine.out.rejections
    for account in ("driver:u-1:receivable", "platform:charging:revenue", "tax:BE:vat_payable"):
        assert ledger.balance(account) == 0


def test_energy_bill_forwarding_validates_once_the_supplier_owner_exists() -> None:
    plan = energy_bill_forward_plan(source_event_id="x", payer=DriverPayer("u-1"), supplier_id="eneco",
                                    amount=D("3.00"), currency="EUR", export_id="EBX")
    try:
        validate(to_set(plan))
    except Exception as exc:  # noqa: BLE001 - the ledger's refusal type is its own
        if "supplier" in str(exc):
            pytest.xfail("ledger/accounts.py has no 'supplier' owner type yet")
        raise
