"""Invoices: month by the account's time zone, deterministic numbers, lines that add up to what was charged,
VAT per rate, fleet grouping and CSV, the energy-bill export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from conftest import OCPI_EXAMPLES, load
from hypothesis import given
from hypothesis import strategies as st

from ledger.billing.cdr_checks import CdrTotals, Price
from ledger.billing.invoices import (
    FLEET_CSV_COLUMNS, ChargeLine, InvoiceKind, PricedSession, charge_lines, driver_invoices, energy_bill_export,
    fleet_invoices, fleet_report_csv, invoice_number, month_bounds, priced_session_from_cdr,
)
from ledger.billing.postings_plan import DriverPayer, own_session_plan, session_charge

D = Decimal
UTC = timezone.utc


def session(sid: str, ended: datetime, *, account: str = "u-1", net: str = "10.00", vat: str = "2.10",
            rate: str = "21", currency: str = "EUR", fleet: str | None = None, cc: str | None = None,
            kwh: str = "20") -> PricedSession:
    return PricedSession(sid, account, currency, ended - timedelta(hours=1), ended, D(kwh),
                         (ChargeLine("ENERGY", "Energy", D(net), D(rate), D(vat)),), "Somewhere 1", fleet, cc)


# -- from a CDR -----------------------------------------------------------------------------------------------

def test_the_ocpi_cdr_example_becomes_one_time_line_at_the_tariffs_10_percent(cdr_example: dict) -> None:
    s = priced_session_from_cdr(cdr_example, session_id="s-1", account_id="u-1")
    (line,) = s.charges
    assert (line.component, line.net, line.vat, line.vat_rate) == ("TIME", D("4.00"), D("0.40"), D("10.00"))
    assert s.location == "Gent Zuid, F.Rooseveltlaan 3A, Gent" and s.energy_kwh == D("15.342")
    assert s.ended_at == datetime(2015, 6, 29, 23, 37, 32, tzinfo=UTC)


def test_lines_add_up_to_what_the_posting_charged_even_when_parts_round_apart() -> None:
    """Three parts of x.xx5 each round up, the total rounds once: the cent goes on the largest line."""
    totals = CdrTotals("EUR", Price(D("3.015"), D("3.015")), {
        "total_fixed_cost": Price(D("0.505"), D("0.505")), "total_energy_cost": Price(D("2.005"), D("2.005")),
        "total_parking_cost": Price(D("0.505"), D("0.505"))})
    lines = charge_lines(totals)
    charged = session_charge(own_session_plan(source_event_id="e", session_id="s", payer=DriverPayer("u"),
                                              total_cost=totals.total_cost, currency="EUR", vat_country="NL"))
    assert sum(ln.gross for ln in lines) == charged == D("3.02")
    assert [ln.component for ln in lines] == ["FIXED", "ENERGY", "PARKING"]
    assert lines[1].net == D("2.00")  # 2.01 - the extra cent


def test_a_min_price_cap_gets_its_own_adjustment_line() -> None:
    tariff = load(OCPI_EXAMPLES / "tariff_12_025kwh_min_price.json")
    totals = CdrTotals("EUR", Price(D("0.50"), D("0.55")), {"total_energy_cost": Price(D("0.30"), D("0.33"))})
    lines = charge_lines(totals, vat_rates={"ENERGY": D("10")})
    assert [(ln.component, ln.net, ln.vat) for ln in lines] == [("ENERGY", D("0.30"), D("0.03")),
                                                                ("ADJUSTMENT", D("0.20"), D("0.02"))]
    assert lines[1].vat_rate == D("10.00") and tariff["min_price"]["excl_vat"] == D("0.50")


def test_a_roaming_fee_is_its_own_line() -> None:
    totals = CdrTotals("EUR", Price(D("10.00"), D("12.10")), {})
    lines = charge_lines(totals, roaming_fee=(D("0.80"), D("0.17"), D("21")))
    assert [(ln.component, ln.gross) for ln in lines] == [("SESSION", D("12.10")), ("ROAMING_FEE", D("0.97"))]


def test_credit_cdr_lines_are_negative(cdr_example: dict) -> None:
    cdr_example.update(credit=True, credit_reference_id="12345",
                       total_cost={"excl_vat": D("-4.00"), "incl_vat": D("-4.40")})
    s = priced_session_from_cdr(cdr_example, session_id="s-1", account_id="u-1")
    assert [(ln.net, ln.vat) for ln in s.charges] == [(D("-4.00"), D("-0.40"))]


parts = st.fixed_dictionaries({}, optional={
    k: st.tuples(st.decimals(min_value=0, max_value=500, places=4), st.sampled_from([0, 6, 9, 21]))
    for k in ("total_fixed_cost", "total_energy_cost", "total_time_cost", "total_parking_cost")})


@given(parts)
def test_lines_always_reconcile_to_the_rounded_total(p: dict[str, Any]) -> None:
    prices = {k: Price(excl, (excl * (1 + D(r) / 100)).quantize(D("0.0001"))) for k, (excl, r) in p.items()}
    total = Price(sum((x.excl_vat for x in prices.values()), D(0)), sum((x.incl_vat for x in prices.values()), D(0)))
    lines = charge_lines(CdrTotals("EUR", total, prices))
    assert sum(ln.net for ln in lines) == total.excl_vat.quantize(D("0.01"), rounding="ROUND_HALF_UP")
    assert sum(ln.gross for ln in lines) == total.incl_vat.quantize(D("0.01"), rounding="ROUND_HALF_UP")
    assert all(ln.net == ln.net.quantize(D("0.01")) and ln.vat == ln.vat.quantize(D("0.01")) for ln in lines)


# -- driver invoices ------------------------------------------------------------------------------------------

def test_the_month_is_the_accounts_local_month() -> None:
    """2024-03-31T22:30Z is 00:30 on 1 April in Amsterdam (CEST since that morning) but still March in UTC."""
    s = session("late", datetime(2024, 3, 31, 22, 30, tzinfo=UTC))
    assert driver_invoices("u-1", [s], year=2024, month=3, tz="Europe/Amsterdam") == []
    (april,) = driver_invoices("u-1", [s], year=2024, month=4, tz="Europe/Amsterdam")
    assert april.lines[0].ended_at.isoformat() == "2024-04-01T00:30:00+02:00"
    (march_utc,) = driver_invoices("u-1", [s], year=2024, month=3, tz="UTC")
    assert march_utc.session_ids == ("late",)
    start, end = month_bounds(2024, 3, "Europe/Amsterdam")
    assert (start.utcoffset(), end.utcoffset()) == (timedelta(hours=1), timedelta(hours=2))
    dec = month_bounds(2024, 12, "UTC")
    assert dec[1] == datetime(2025, 1, 1, tzinfo=UTC)


def test_invoice_totals_and_vat_breakdown_per_rate() -> None:
    sessions = [session("a", datetime(2024, 5, 3, 10, tzinfo=UTC)),
                session("b", datetime(2024, 5, 9, 10, tzinfo=UTC), net="4.00", vat="0.40", rate="10"),
                session("c", datetime(2024, 5, 20, 10, tzinfo=UTC), net="2.50", vat="0.53"),
                session("other-month", datetime(2024, 6, 1, 10, tzinfo=UTC)),
                session("other-driver", datetime(2024, 5, 3, 10, tzinfo=UTC), account="u-2"),
                session("fleet-paid", datetime(2024, 5, 3, 10, tzinfo=UTC), fleet="f-1")]
    (inv,) = driver_invoices("u-1", sessions, year=2024, month=5, tz="Europe/Amsterdam")
    assert inv.session_ids == ("a", "b", "c") and inv.kind is InvoiceKind.DRIVER
    assert (inv.net, inv.vat, inv.gross) == (D("16.50"), D("3.03"), D("19.53"))
    assert [(b.rate, b.net, b.vat) for b in inv.vat_breakdown] == [(D(10), D("4.00"), D("0.40")),
                                                                   (D(21), D("12.50"), D("2.63"))]
    assert inv.energy_kwh == D(60) and inv.period == "2024-05"


def test_one_invoice_per_currency() -> None:
    sessions = [session("a", datetime(2024, 5, 3, tzinfo=UTC)),
                session("b", datetime(2024, 5, 4, tzinfo=UTC), currency="CHF", net="5.00", vat="0.41", rate="8.1")]
    invs = driver_invoices("u-1", sessions, year=2024, month=5, tz="Europe/Zurich")
    assert [i.currency for i in invs] == ["CHF", "EUR"]
    assert invs[0].number != invs[1].number


def test_invoice_numbers_are_deterministic_and_distinct() -> None:
    n = invoice_number(InvoiceKind.DRIVER, "u-1", 2024, 5, "EUR")
    assert n == invoice_number(InvoiceKind.DRIVER, "u-1", 2024, 5, "EUR")
    assert n.startswith("CV-D-202405-") and n.endswith("-EUR")
    others = {invoice_number(InvoiceKind.DRIVER, "u-2", 2024, 5, "EUR"),
              invoice_number(InvoiceKind.DRIVER, "u-1", 2024, 6, "EUR"),
              invoice_number(InvoiceKind.FLEET, "u-1", 2024, 5, "EUR"),
              invoice_number(InvoiceKind.DRIVER, "u-1", 2024, 5, "CHF")}
    assert n not in others and len(others) == 4


def test_a_replay_builds_the_identical_invoice_whatever_the_input_order() -> None:
    sessions = [session(f"s{i}", datetime(2024, 5, 1 + i, tzinfo=UTC)) for i in range(5)]
    a = driver_invoices("u-1", sessions, year=2024, month=5, tz="UTC")
    b = driver_invoices("u-1", list(reversed(sessions)), year=2024, month=5, tz="UTC")
    assert a == b


# -- fleet invoices and CSV -----------------------------------------------------------------------------------

def test_fleet_invoice_groups_by_cost_centre_and_driver_and_renders_csv() -> None:
    day = datetime(2024, 5, 10, 9, tzinfo=UTC)
    sessions = [session("s1", day, account="u-2", fleet="f-1", cc="SALES"),
                session("s2", day + timedelta(days=1), account="u-1", fleet="f-1", cc="SALES", net="5.00",
                        vat="1.05"),
                session("s3", day, account="u-1", fleet="f-1", cc="OPS"),
                session("s4", day, account="u-1", fleet="f-1", cc="SALES", net="1.00", vat="0.21"),
                session("private", day, account="u-1")]
    (inv,) = fleet_invoices("f-1", sessions, year=2024, month=5, tz="Europe/Amsterdam")
    assert inv.kind is InvoiceKind.FLEET and inv.number.startswith("CV-F-202405-")
    assert [(g.cost_centre, g.account_id, [ln.session_id for ln in g.lines]) for g in inv.groups] == [
        ("OPS", "u-1", ["s3"]), ("SALES", "u-1", ["s4", "s2"]), ("SALES", "u-2", ["s1"])]
    assert sum(g.gross for g in inv.groups) == inv.gross == D("31.46")
    rows = list(csv.DictReader(io.StringIO(fleet_report_csv(inv))))
    assert tuple(rows[0]) == FLEET_CSV_COLUMNS
    lines = [r for r in rows if r["component"] not in ("SUBTOTAL", "TOTAL")]
    assert [r["session_id"] for r in lines] == ["s3", "s4", "s2", "s1"]
    assert lines[0]["started_at"] == "2024-05-10T10:00:00+02:00" and lines[0]["gross"] == "12.10"
    subtotals = [r for r in rows if r["component"] == "SUBTOTAL"]
    assert [(r["cost_centre"], r["driver_account"], r["gross"]) for r in subtotals] == [
        ("OPS", "u-1", "12.10"), ("SALES", "u-1", "7.26"), ("SALES", "u-2", "12.10")]
    total = rows[-1]
    assert (total["component"], total["net"], total["vat"], total["gross"]) == ("TOTAL", "26.00", "5.46", "31.46")


amount = st.integers(0, 10**6).map(lambda c: D(c).scaleb(-2))


@given(st.lists(st.tuples(amount, amount, st.sampled_from(["0", "9", "21"]), st.sampled_from([None, "A", "B"]),
                          st.sampled_from(["u-1", "u-2"]), st.integers(0, 30 * 24 - 1)), min_size=1, max_size=20))
def test_fleet_totals_equal_lines_groups_and_vat_breakdown(items: list) -> None:
    sessions = [PricedSession(f"s{i}", acc, "EUR", datetime(2024, 4, 1, tzinfo=UTC) + timedelta(hours=h),
                              datetime(2024, 4, 1, tzinfo=UTC) + timedelta(hours=h, minutes=30), D(1),
                              (ChargeLine("ENERGY", "Energy", net, D(rate), vat),), "", "f", cc)
                for i, (net, vat, rate, cc, acc, h) in enumerate(items)]
    (inv,) = fleet_invoices("f", sessions, year=2024, month=4, tz="UTC")
    assert inv.net == sum(ln.net for ln in inv.lines) == sum(g.net for g in inv.groups) \
        == sum(b.net for b in inv.vat_breakdown)
    assert inv.vat == sum(ln.vat for ln in inv.lines) == sum(g.vat for g in inv.groups) \
        == sum(b.vat for b in inv.vat_breakdown)
    assert len(inv.session_ids) == len(items)


# -- energy-bill export ---------------------------------------------------------------------------------------

def test_energy_bill_export_totals_the_period_for_one_customer_account() -> None:
    start, end = month_bounds(2024, 5, "Europe/Amsterdam")
    sessions = [session("a", datetime(2024, 5, 3, tzinfo=UTC), kwh="11.5"),
                session("b", datetime(2024, 5, 30, tzinfo=UTC), kwh="20", net="5.00", vat="1.05"),
                session("june", datetime(2024, 6, 3, tzinfo=UTC)),
                session("other", datetime(2024, 5, 3, tzinfo=UTC), account="u-2")]
    ex = energy_bill_export(supplier_id="eneco", customer_account="EN-778899", account_id="u-1", sessions=sessions,
                            period_start=start, period_end=end)
    assert ex is not None and ex.session_ids == ("a", "b")
    assert (ex.energy_kwh, ex.net, ex.vat, ex.gross, ex.currency) == (D("31.5"), D("15.00"), D("3.15"), D("18.15"),
                                                                      "EUR")
    again = energy_bill_export(supplier_id="eneco", customer_account="EN-778899", account_id="u-1",
                               sessions=list(reversed(sessions)), period_start=start, period_end=end)
    assert again == ex and ex.export_id.startswith("EBX-")
    assert energy_bill_export(supplier_id="eneco", customer_account="x", account_id="nobody", sessions=sessions,
                              period_start=start, period_end=end) is None


def test_energy_bill_export_refuses_mixed_currencies_and_naive_periods() -> None:
    start, end = month_bounds(2024, 5, "UTC")
    mixed = [session("a", datetime(2024, 5, 3, tzinfo=UTC)), session("b", datetime(2024, 5, 4, tzinfo=UTC),
                                                                      currency="CHF")]
    with pytest.raises(ValueError, match="currencies"):
        energy_bill_export(supplier_id="s", customer_account="c", account_id="u-1", sessions=mixed,
                           period_start=start, period_end=end)
    with pytest.raises(ValueError):
        energy_bill_export(supplier_id="s", customer_account="c", account_id="u-1", sessions=[],
                           period_start=datetime(2024, 5, 1), period_end=datetime(2024, 6, 1))


def test_priced_sessions_refuse_naive_times_and_sub_cent_lines() -> None:
    with pytest.raises(ValueError):
        PricedSession("s", "u", "EUR", datetime(2024, 1, 1), datetime(2024, 1, 1, 1), D(1), ())
    with pytest.raises(ValueError):
        PricedSession("s", "u", "EUR", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 1, tzinfo=UTC), D(1),
                      (ChargeLine("ENERGY", "e", D("1.001"), D(21), D("0.21")),))

