"""Roamed-session discrepancy: flagged exactly when a difference exceeds both the absolute and relative allowance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import TANDEMDRIVE, load
from hypothesis import given
from hypothesis import strategies as st

from ledger.billing.cdr_checks import CdrTotals, Price, cost_totals, read_totals
from ledger.billing.discrepancy import DEFAULT_THRESHOLD, Threshold, Verdict, compare_totals

D = Decimal


def totals(excl: str, incl: str | None = None, currency: str = "EUR", **parts: tuple[str, str | None]) -> CdrTotals:
    return CdrTotals(currency, Price(D(excl), None if incl is None else D(incl)),
                     {f"total_{k}_cost": Price(D(e), None if i is None else D(i)) for k, (e, i) in parts.items()})


def test_identical_totals_are_ok() -> None:
    partner = read_totals(load(TANDEMDRIVE / "025kwh_start" / "cdr1.json"), tariff_id="T", known_tariffs={"T": "EUR"})
    decision = compare_totals(partner, partner)
    assert decision.ok and decision.flagged == ()
    assert {d.field for d in decision.differences} == {
        "total_cost.excl_vat", "total_cost.incl_vat", "total_energy_cost.excl_vat", "total_energy_cost.incl_vat",
        "total_fixed_cost.excl_vat", "total_fixed_cost.incl_vat"}


def test_a_partner_overcharge_on_energy_is_flagged_per_figure() -> None:
    partner = totals("6.50", "7.15", energy=("6.00", "6.60"), fixed=("0.50", "0.55"))
    ours = totals("5.50", "6.05", energy=("5.00", "5.50"), fixed=("0.50", "0.55"))
    decision = compare_totals(partner, ours)
    assert decision.verdict is Verdict.DISCREPANCY
    flagged = {d.field: d for d in decision.flagged}
    assert set(flagged) == {"total_cost.excl_vat", "total_cost.incl_vat", "total_energy_cost.excl_vat",
                            "total_energy_cost.incl_vat"}
    d = flagged["total_energy_cost.excl_vat"]
    assert (d.partner, d.ours, d.difference, d.relative) == (D("6.00"), D("5.00"), D("1.00"), D("0.2"))


def test_the_absolute_floor_spares_cheap_sessions() -> None:
    """0.04 on a 1.00 session is 4 %, above the 1 % band but within the 0.05 floor: not flagged."""
    assert compare_totals(totals("1.04"), totals("1.00")).ok
    assert not compare_totals(totals("1.06"), totals("1.00")).ok


def test_the_relative_band_spares_expensive_sessions() -> None:
    """0.80 on a 100.00 session is 0.8 %: above the floor, within the band."""
    assert compare_totals(totals("100.80"), totals("100.00")).ok
    decision = compare_totals(totals("101.01"), totals("100.00"))
    assert not decision.ok and decision.flagged[0].allowed == D("1.00")


def test_undercharges_count_like_overcharges() -> None:
    assert not compare_totals(totals("90.00"), totals("100.00")).ok


def test_a_different_currency_cannot_be_compared_and_is_a_discrepancy() -> None:
    decision = compare_totals(totals("10.00", currency="EUR"), totals("10.00", currency="CHF"))
    assert decision.verdict is Verdict.DISCREPANCY and decision.currency_mismatch and decision.differences == ()


def test_parts_only_one_side_has_are_listed_not_compared() -> None:
    partner = totals("5.00", "5.50", energy=("5.00", "5.50"))
    ours = totals("5.00", "5.50", time=("5.00", "5.50"))
    decision = compare_totals(partner, ours)
    assert decision.ok
    assert set(decision.not_compared) == {"total_energy_cost", "total_time_cost"}
    # a zero part on one side is not worth listing
    assert compare_totals(totals("5.00", fixed=("0", "0")), totals("5.00")).not_compared == ()


def test_incl_vat_known_on_one_side_only_is_listed() -> None:
    decision = compare_totals(totals("5.00", "5.50"), totals("5.00"))
    assert decision.ok and decision.not_compared == ("total_cost.incl_vat",)


def test_relative_is_none_when_ours_is_zero() -> None:
    small = compare_totals(totals("0.04"), totals("0"))
    assert small.ok and small.differences[0].relative is None
    big = compare_totals(totals("0.10"), totals("0"))
    assert not big.ok and big.flagged[0].relative is None and big.flagged[0].allowed == D("0.05")


def test_zero_floor_flags_any_difference_above_the_band() -> None:
    assert not compare_totals(totals("0.10"), totals("0"), Threshold(D("0"), D("0.5"))).ok


def test_thresholds_are_not_negative() -> None:
    with pytest.raises(ValueError):
        Threshold(D("-1"), D("0"))


amounts = st.decimals(min_value=0, max_value=10_000, places=2)


@given(amounts, amounts, st.decimals(min_value=0, max_value=5, places=2), st.decimals(min_value=0, max_value=1,
                                                                                       places=3))
def test_flagged_iff_above_both_allowances(p: Decimal, o: Decimal, absolute: Decimal, relative: Decimal) -> None:
    decision = compare_totals(totals(str(p)), totals(str(o)), Threshold(absolute, relative))
    expected = abs(p - o) > absolute and abs(p - o) > relative * o
    assert (not decision.ok) == expected
    (d,) = decision.differences
    assert d.partner - d.ours == d.difference


def test_default_threshold_is_five_cents_or_one_percent() -> None:
    assert DEFAULT_THRESHOLD == Threshold(D("0.05"), D("0.01"))


def test_the_tariff_engines_repricing_plugs_in_through_cost_totals(cdr_example: dict) -> None:
    """The roamed flow end to end in pure code: re-price the partner's CDR with the tariff it embeds (the tariff
    engine, ledger/tariff), compare with the partner's totals.  cdr_example: 1.973 h at 2.00/h, step 300 s ->
    2 h -> 4.00 / 4.40, exactly what the CPO charged."""
    from ledger.tariff.engine import price_session  # the tariff helper's engine; imported here on purpose

    ours = price_session(cdr_example["tariffs"][0], cdr_example["charging_periods"],
                         start=cdr_example["start_date_time"], end=cdr_example["end_date_time"])
    decision = compare_totals(read_totals(cdr_example), cost_totals(ours.to_ocpi()))
    assert decision.ok and decision.flagged == ()
    cheaper = dict(cdr_example["tariffs"][0], elements=[{"price_components": [
        {"type": "TIME", "price": D("1.50"), "vat": D("10.0"), "step_size": 300}]}])
    ours = price_session(cheaper, cdr_example["charging_periods"], start=cdr_example["start_date_time"],
                         end=cdr_example["end_date_time"])
    decision = compare_totals(read_totals(cdr_example), cost_totals(ours.to_ocpi()))
    assert not decision.ok
    assert {d.field: d.difference for d in decision.flagged}["total_cost.excl_vat"] == D("1.00")


def test_cost_totals_refuses_what_is_not_totals() -> None:
    with pytest.raises(ValueError):
        cost_totals({"currency": "EUR"})
    with pytest.raises(ValueError):
        cost_totals({"total_cost": {"excl_vat": 1}})
