"""The accounting plan: exact legs for each billing fact, and every plan balances per currency (property)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.billing import account_names as names
from ledger.billing.cdr_checks import Price
from ledger.billing.postings_plan import (
    AmountAboveHold, DriverPayer, FleetPayer, LedgerKind, Leg, PlanKind, PostingPlan, RoamingFee, Side,
    UnbalancedPlan, capture_plan, direct_charge_plan, energy_bill_forward_plan, hold_plan, own_session_plan,
    refund_plan, release_plan, reversal_plan, roamed_session_plan, session_charge, settle_against_hold,
    split_wallet_payment, wallet_spend_plan, wallet_top_up_plan,
)

D = Decimal
DR, CR = Side.DEBIT, Side.CREDIT


def legs(plan: PostingPlan) -> set[tuple[str, str, Decimal]]:
    return {(leg.account, leg.side.value, leg.amount) for leg in plan.legs}


# -- (a) own station ------------------------------------------------------------------------------------------

def test_own_session_debits_the_driver_gross_and_credits_revenue_and_vat() -> None:
    """The OCPI CDR example: 4.00 excl / 4.40 incl at a Belgian station."""
    plan = own_session_plan(source_event_id="ev-1", session_id="s-1", payer=DriverPayer("u-1"),
                            total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BEL")
    assert legs(plan) == {("driver:u-1:receivable", "DEBIT", D("4.40")),
                          ("platform:charging:revenue", "CREDIT", D("4.00")),
                          ("tax:BE:vat_payable", "CREDIT", D("0.40"))}
    assert plan.ledger_kind is LedgerKind.POSTING and plan.ledger_key == "driver:u-1"
    assert session_charge(plan) == D("4.40")


def test_ocpi_four_decimals_are_rounded_once_and_vat_is_the_difference() -> None:
    """tariff_3 style: 5.125 excl / 5.6375 incl -> the driver pays 5.64, revenue 5.13, VAT 0.51 (not 0.5125)."""
    plan = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                            total_cost=Price(D("5.125"), D("5.6375")), currency="EUR", vat_country="NL")
    assert legs(plan) == {("driver:u:receivable", "DEBIT", D("5.64")), ("platform:charging:revenue", "CREDIT",
                                                                         D("5.13")),
                          ("tax:NL:vat_payable", "CREDIT", D("0.51"))}


def test_no_vat_known_means_no_vat_leg_and_a_free_session_posts_nothing() -> None:
    plan = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                            total_cost=Price(D("0.5502")), currency="EUR", vat_country="NL")
    assert legs(plan) == {("driver:u:receivable", "DEBIT", D("0.55")),
                          ("platform:charging:revenue", "CREDIT", D("0.55"))}
    free = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                            total_cost=Price(D("0"), D("0")), currency="EUR", vat_country="NL")
    assert free.is_empty


def test_negative_session_costs_are_refused_use_a_reversal() -> None:
    with pytest.raises(ValueError, match="reversal"):
        own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                         total_cost=Price(D("-4.00"), D("-4.40")), currency="EUR", vat_country="NL")
    with pytest.raises(ValueError, match="VAT"):
        own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                         total_cost=Price(D("4.00"), D("3.00")), currency="EUR", vat_country="NL")


# -- (b) roamed -----------------------------------------------------------------------------------------------

def test_roamed_session_passes_the_partner_cost_through_and_adds_our_fee() -> None:
    """Partner: 10.00 excl / 12.10 incl.  Fee 0.30 + 5 % of 10.00 = 0.80 net, 21 % VAT = 0.17."""
    plan = roamed_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                               partner_cost=Price(D("10.00"), D("12.10")), currency="EUR", cpo_country_code="nl",
                               cpo_party_id="abc", vat_country="NL",
                               fee=RoamingFee(fixed=D("0.30"), percent=D("5"), vat_rate=D("21")))
    assert legs(plan) == {("driver:u:receivable", "DEBIT", D("13.07")), ("cpo:NL-ABC:payable", "CREDIT", D("12.10")),
                          ("platform:roaming:revenue", "CREDIT", D("0.80")),
                          ("tax:NL:vat_payable", "CREDIT", D("0.17"))}
    assert plan.metadata["cpo"] == "NL-ABC" and plan.metadata["fee_net"] == "0.80"


def test_roamed_without_a_fee_owes_the_cpo_exactly_what_the_driver_pays() -> None:
    plan = roamed_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                               partner_cost=Price(D("4.00"), D("4.40")), currency="EUR", cpo_country_code="BE",
                               cpo_party_id="BEC", vat_country="BE")
    assert legs(plan) == {("driver:u:receivable", "DEBIT", D("4.40")), ("cpo:BE-BEC:payable", "CREDIT", D("4.40"))}


# -- (e) fleets -----------------------------------------------------------------------------------------------

def test_fleet_sessions_are_charged_to_the_fleet_with_cost_centre_and_driver() -> None:
    payer = FleetPayer("f-9", cost_centre="CC-SALES", driver_id="u-1")
    plan = own_session_plan(source_event_id="ev", session_id="s", payer=payer,
                            total_cost=Price(D("4.00"), D("4.84")), currency="EUR", vat_country="NL")
    assert ("fleet:f-9:receivable", "DEBIT", D("4.84")) in legs(plan)
    assert plan.ledger_key == "fleet:f-9"
    assert {"payer": "FLEET", "fleet_id": "f-9", "cost_centre": "CC-SALES", "driver_id": "u-1"}.items() \
        <= plan.metadata.items()


# -- (c) payments ---------------------------------------------------------------------------------------------

def test_hold_capture_release_refund_legs_and_ledger_kinds() -> None:
    hold = hold_plan(source_event_id="ev-start", session_id="s", account_id="u", provider="stripe",
                     amount=D("30.00"), currency="EUR", hold_id="pi_1")
    assert hold.ledger_kind is LedgerKind.HOLD and hold.hold_id == "pi_1"
    assert legs(hold) == {("psp:stripe:clearing", "DEBIT", D("30.00")), ("driver:u:receivable", "CREDIT", D("30.00"))}
    cap = capture_plan(source_event_id="ev-cdr", session_id="s", account_id="u", provider="stripe",
                       hold_amount=D("30.00"), captured=D("22.50"), currency="EUR", hold_id="pi_1", charge_id="pi_1")
    assert cap.ledger_kind is LedgerKind.POST_HOLD and cap.hold_id == "pi_1" and cap.ledger_key == hold.ledger_key
    assert legs(cap) == {("psp:stripe:clearing", "DEBIT", D("22.50")), ("driver:u:receivable", "CREDIT", D("22.50"))}
    assert cap.metadata["released"] == "7.50"
    rel = release_plan(source_event_id="ev-end", session_id="s", account_id="u", provider="stripe", hold_id="pi_2")
    assert rel.ledger_kind is LedgerKind.VOID_HOLD and rel.legs == () and not rel.is_empty
    ref = refund_plan(source_event_id="ev-refund", session_id="s", payer=DriverPayer("u"), provider="stripe",
                      amount=D("5.00"), currency="EUR", charge_id="pi_1", refund_id="re_1")
    assert legs(ref) == {("driver:u:receivable", "DEBIT", D("5.00")), ("psp:stripe:clearing", "CREDIT", D("5.00"))}


def test_a_capture_above_its_hold_is_refused_and_the_excess_is_charged_separately() -> None:
    with pytest.raises(AmountAboveHold):
        capture_plan(source_event_id="ev", session_id="s", account_id="u", provider="p", hold_amount=D("30.00"),
                     captured=D("30.01"), currency="EUR", hold_id="h", charge_id="c")
    s = settle_against_hold(D("30.00"), D("42.10"))
    assert (s.capture, s.release, s.excess) == (D("30.00"), D("0"), D("12.10"))
    excess = direct_charge_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"), provider="p",
                                amount=s.excess, currency="EUR", charge_id="ch_2")
    assert legs(excess) == {("psp:p:clearing", "DEBIT", D("12.10")), ("driver:u:receivable", "CREDIT", D("12.10"))}
    s = settle_against_hold(D("30.00"), D("4.40"))
    assert (s.capture, s.release, s.excess) == (D("4.40"), D("25.60"), D("0"))


def test_amounts_with_sub_cent_precision_are_refused_for_payments() -> None:
    with pytest.raises(ValueError, match="minor units"):
        hold_plan(source_event_id="ev", session_id="s", account_id="u", provider="p", amount=D("1.005"),
                  currency="EUR", hold_id="h")


# -- (d) wallet -----------------------------------------------------------------------------------------------

def test_wallet_top_up_and_spend() -> None:
    top = wallet_top_up_plan(source_event_id="ev", account_id="u", provider="p", amount=D("50.00"), currency="EUR",
                             charge_id="ch")
    assert legs(top) == {("psp:p:clearing", "DEBIT", D("50.00")), ("driver:u:wallet", "CREDIT", D("50.00"))}
    spend = wallet_spend_plan(source_event_id="ev2", session_id="s", account_id="u", amount=D("4.40"),
                              currency="EUR")
    assert legs(spend) == {("driver:u:wallet", "DEBIT", D("4.40")), ("driver:u:receivable", "CREDIT", D("4.40"))}
    assert top.ledger_key == spend.ledger_key == "driver:u"
    assert names.is_limited("driver:u:wallet") and not names.is_limited("driver:u:receivable")


def test_split_wallet_payment() -> None:
    assert split_wallet_payment(D("10.00"), D("4.40")) == (D("4.40"), D("0.00"))
    assert split_wallet_payment(D("3.00"), D("4.40")) == (D("3.00"), D("1.40"))
    assert split_wallet_payment(D("0"), D("4.40")) == (D("0"), D("4.40"))
    assert split_wallet_payment(D("-2"), D("4.40")) == (D("0"), D("4.40"))


def test_a_plan_touching_a_wallet_must_go_under_the_wallets_key() -> None:
    with pytest.raises(ValueError, match="limited"):
        PostingPlan(PlanKind.WALLET_SPEND, "ev", None, "driver:someone-else",
                    (Leg("driver:u:wallet", DR, D("1.00"), "EUR"), Leg("driver:u:receivable", CR, D("1.00"), "EUR")))


# -- (f) energy bill, reversals -------------------------------------------------------------------------------

def test_energy_bill_forwarding_moves_the_debt_to_the_supplier() -> None:
    plan = energy_bill_forward_plan(source_event_id="ev", payer=DriverPayer("u"), supplier_id="eneco",
                                    amount=D("31.20"), currency="EUR", export_id="EBX-1")
    assert legs(plan) == {("supplier:eneco:receivable", "DEBIT", D("31.20")),
                          ("driver:u:receivable", "CREDIT", D("31.20"))}


def test_a_reversal_mirrors_the_original_and_nets_every_account_to_zero() -> None:
    original = own_session_plan(source_event_id="ev-cdr", session_id="s", payer=DriverPayer("u"),
                                total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BE")
    rev = reversal_plan(original, source_event_id="ev-credit-cdr", reason="credit CDR 12345-C")
    assert rev.ledger_kind is LedgerKind.REVERSAL and rev.reverses == original.posting_id
    assert rev.ledger_key == original.ledger_key
    net: dict[Any, Decimal] = {}
    for p in (original, rev):
        for k, v in p.balance_changes().items():
            net[k] = net.get(k, D(0)) + v
    assert all(v == 0 for v in net.values())
    hold = hold_plan(source_event_id="ev", session_id="s", account_id="u", provider="p", amount=D("1.00"),
                     currency="EUR", hold_id="h")
    with pytest.raises(ValueError, match="cannot be reversed"):
        reversal_plan(hold, source_event_id="ev2", reason="x")


# -- plan invariants ------------------------------------------------------------------------------------------

def test_an_unbalanced_plan_cannot_be_built() -> None:
    with pytest.raises(UnbalancedPlan):
        PostingPlan(PlanKind.OWN_SESSION_CHARGE, "ev", "s", "driver:u",
                    (Leg("driver:u:receivable", DR, D("4.40"), "EUR"),
                     Leg("platform:charging:revenue", CR, D("4.00"), "EUR")))
    with pytest.raises(UnbalancedPlan):  # balanced in sum, not per currency
        PostingPlan(PlanKind.OWN_SESSION_CHARGE, "ev", "s", "driver:u",
                    (Leg("driver:u:receivable", DR, D("4"), "EUR"),
                     Leg("platform:charging:revenue", CR, D("4"), "USD")))


def test_legs_are_positive_minor_unit_amounts_on_known_accounts() -> None:
    for bad in (D("0"), D("-1"), D("1.001")):
        with pytest.raises(ValueError):
            PostingPlan(PlanKind.OWN_SESSION_CHARGE, "ev", "s", "driver:u",
                        (Leg("driver:u:receivable", DR, bad, "EUR"), Leg("platform:charging:revenue", CR, bad, "EUR")))
    with pytest.raises(ValueError):
        PostingPlan(PlanKind.OWN_SESSION_CHARGE, "ev", "s", "driver:u",
                    (Leg("revenue:charging", DR, D(1), "EUR"), Leg("platform:charging:revenue", CR, D(1), "EUR")))


def test_posting_ids_are_deterministic_and_distinct_per_kind() -> None:
    a = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                         total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BE")
    b = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                         total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BE")
    c = wallet_spend_plan(source_event_id="ev", session_id="s", account_id="u", amount=D("4.40"), currency="EUR")
    assert a.posting_id == b.posting_id != c.posting_id
    assert a.ledger_fields() == b.ledger_fields()


def test_ledger_fields_are_a_ledger_posting_set_payload() -> None:
    plan = own_session_plan(source_event_id="ev", session_id="s", payer=DriverPayer("u"),
                            total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="BE")
    f = plan.ledger_fields()
    assert f["kind"] == "POSTING" and f["ledger_key"] == "driver:u" and f["source_event_id"] == plan.posting_id
    assert {"account": "tax:BE:vat_payable", "direction": "CREDIT", "amount": "0.40", "currency": "EUR"} in f["entries"]
    assert "ev" in f["memo"]


def test_account_names_refuse_separators_and_spaces() -> None:
    for bad in ("", "a:b", "a b", "-x"):
        with pytest.raises(ValueError):
            names.driver_receivable(bad)
    with pytest.raises(ValueError):
        names.cpo_payable("NLD", "ABC")
    with pytest.raises(ValueError):
        names.vat_payable("XYZ")
    assert names.vat_payable("nld") == "tax:NL:vat_payable"


# -- the balance property over every builder ------------------------------------------------------------------

CURRENCIES = {"EUR": 2, "JPY": 0, "KWD": 3}
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


@st.composite
def any_plan(draw: Any) -> PostingPlan:
    cur = draw(st.sampled_from(sorted(CURRENCIES)))
    exp = CURRENCIES[cur]

    def amount(lo: int = 1) -> Decimal:
        return D(draw(st.integers(lo, 10**9))).scaleb(-exp)

    def raw(places: int = 4) -> Decimal:
        return draw(st.decimals(min_value=0, max_value=10**6, places=places))

    payer = draw(st.sampled_from([DriverPayer(draw(ids)), FleetPayer(draw(ids), draw(st.none() | ids), draw(ids))]))
    ev, acc, prov = draw(ids), draw(ids), draw(ids)
    excl = raw()
    vat_rate = draw(st.sampled_from([D(0), D("5.5"), D(10), D(21), D("25.5")]))
    price = Price(excl, (excl * (1 + vat_rate / 100)).quantize(D("0.0001")) if draw(st.booleans()) else None)
    fee = draw(st.none() | st.builds(RoamingFee, st.decimals(min_value=0, max_value=5, places=2),
                                     st.decimals(min_value=0, max_value=20, places=2), st.sampled_from([D(0), D(21)])))
    hold = amount()
    builders: list[Callable[[], PostingPlan]] = [
        lambda: own_session_plan(source_event_id=ev, session_id="s", payer=payer, total_cost=price, currency=cur,
                                 vat_country="NL"),
        lambda: roamed_session_plan(source_event_id=ev, session_id="s", payer=payer, partner_cost=price,
                                    currency=cur, cpo_country_code="DE", cpo_party_id="XYZ", vat_country="DE",
                                    fee=fee),
        lambda: hold_plan(source_event_id=ev, session_id="s", account_id=acc, provider=prov, amount=hold,
                          currency=cur, hold_id="h"),
        lambda: capture_plan(source_event_id=ev, session_id="s", account_id=acc, provider=prov, hold_amount=hold,
                             captured=min(hold, amount()), currency=cur, hold_id="h", charge_id="c"),
        lambda: direct_charge_plan(source_event_id=ev, session_id="s", payer=payer, provider=prov, amount=amount(),
                                   currency=cur, charge_id="c"),
        lambda: refund_plan(source_event_id=ev, session_id="s", payer=payer, provider=prov, amount=amount(),
                            currency=cur, charge_id="c", refund_id="r"),
        lambda: wallet_top_up_plan(source_event_id=ev, account_id=acc, provider=prov, amount=amount(),
                                   currency=cur, charge_id="c"),
        lambda: wallet_spend_plan(source_event_id=ev, session_id="s", account_id=acc, amount=amount(),
                                  currency=cur),
        lambda: energy_bill_forward_plan(source_event_id=ev, payer=payer, supplier_id=acc, amount=amount(),
                                         currency=cur, export_id="x"),
    ]
    plan = draw(st.sampled_from(builders))()
    if draw(st.booleans()) and plan.ledger_kind is LedgerKind.POSTING and plan.legs:
        plan = reversal_plan(plan, source_event_id=ev + "-r", reason="property")
    return plan


@given(any_plan())
def test_every_plan_balances_per_currency_with_positive_minor_unit_legs(plan: PostingPlan) -> None:
    for cur, (dr, cr) in plan.totals().items():
        assert dr == cr
    assert sum(plan.balance_changes().values(), D(0)) == 0
    for leg in plan.legs:
        assert leg.amount > 0 and leg.amount == leg.amount.quantize(D(1).scaleb(-CURRENCIES[leg.currency]))
        names.kind_of(leg.account)


@given(st.decimals(min_value=0, max_value=10**5, places=2), st.decimals(min_value=0, max_value=10**5, places=2))
def test_settlement_always_adds_up(hold: Decimal, charge: Decimal) -> None:
    s = settle_against_hold(hold, charge)
    assert s.capture + s.release == hold and s.capture + s.excess == charge
    assert min(s.capture, s.release, s.excess) >= 0 and (s.release == 0 or s.excess == 0)
