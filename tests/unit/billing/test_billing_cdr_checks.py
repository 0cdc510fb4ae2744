"""CDR checks: real CDRs pass; each kind of bad input is refused with its reason and field; nothing raises."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from conftest import OCPI_EXAMPLES, TANDEMDRIVE, load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.billing.cdr_checks import (
    CdrRejected, CheckPolicy, Reason, check_cdr, check_cdr_text, parse_cdr_json, read_totals,
)

D = Decimal


def reasons(problems: Any) -> set[tuple[str, str]]:
    return {(p.reason.value, p.field) for p in problems}


def codes(problems: Any) -> set[str]:
    return {p.reason.value for p in problems}


# -- real CDRs ------------------------------------------------------------------------------------------------

def test_the_ocpi_spec_cdr_example_passes_and_reads_exactly(cdr_example: dict) -> None:
    assert check_cdr(cdr_example, expected_currency="EUR") == ()
    t = read_totals(cdr_example)
    assert (t.currency, t.total_cost.excl_vat, t.total_cost.incl_vat) == ("EUR", D("4.00"), D("4.40"))
    assert t.parts["total_time_cost"].vat == D("0.40")
    assert t.total_energy == D("15.342") and t.total_time == D("1.973") and not t.credit


TANDEM_CDRS = sorted(TANDEMDRIVE.glob("*/cdr*.json"))


@pytest.mark.parametrize("path", TANDEM_CDRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tandemdrive_vector_cdr_passes(path) -> None:  # noqa: ANN001
    """Independent CDRs with expected totals (min_price, step sizes, grace periods, flat fees): all consistent.
    They embed no tariff, so the session's tariff is passed as the one it was priced with."""
    cdr = load(path)
    assert check_cdr(cdr, tariff_id="T1", known_tariffs={"T1": "EUR"}, expected_currency="EUR") == ()


def test_there_are_vector_cdrs_to_check() -> None:
    assert len(TANDEM_CDRS) >= 8


# -- each bad input, with its reason and where ----------------------------------------------------------------

def test_inconsistent_totals_are_total_cost_mismatch(cdr_example: dict) -> None:
    cdr_example["total_cost"] = {"excl_vat": D("5.00"), "incl_vat": D("5.50")}
    assert reasons(check_cdr(cdr_example)) == {("TOTAL_COST_MISMATCH", "total_cost.excl_vat"),
                                               ("TOTAL_COST_MISMATCH", "total_cost.incl_vat")}


def test_only_incl_vat_inconsistent(cdr_example: dict) -> None:
    cdr_example["total_cost"]["incl_vat"] = D("4.60")
    (p,) = check_cdr(cdr_example)
    assert (p.reason, p.field) == (Reason.TOTAL_COST_MISMATCH, "total_cost.incl_vat")
    assert "4.60" in p.detail and "4.40" in p.detail


def test_total_cost_is_the_sum_of_all_five_parts(cdr_example: dict) -> None:
    cdr_example.update(total_fixed_cost={"excl_vat": D("0.50"), "incl_vat": D("0.60")},
                       total_parking_cost={"excl_vat": D("1.00"), "incl_vat": D("1.20")},
                       total_reservation_cost={"excl_vat": D("0.25"), "incl_vat": D("0.30")},
                       total_energy_cost={"excl_vat": D("0"), "incl_vat": D("0")})
    assert codes(check_cdr(cdr_example)) == {"TOTAL_COST_MISMATCH"}
    cdr_example["total_cost"] = {"excl_vat": D("5.75"), "incl_vat": D("6.50")}
    assert check_cdr(cdr_example) == ()


def test_a_cent_of_independent_rounding_is_tolerated_two_is_not(cdr_example: dict) -> None:
    cdr_example["total_cost"] = {"excl_vat": D("4.01"), "incl_vat": D("4.41")}
    assert check_cdr(cdr_example) == ()
    cdr_example["total_cost"] = {"excl_vat": D("4.02"), "incl_vat": D("4.40")}
    assert codes(check_cdr(cdr_example)) == {"TOTAL_COST_MISMATCH"}
    assert check_cdr(cdr_example, policy=CheckPolicy(amount_tolerance_units=2)) == ()


def test_tolerance_follows_the_currencys_minor_units(cdr_example: dict) -> None:
    for el in cdr_example["tariffs"]:
        el["currency"] = "JPY"
    cdr_example.update(currency="JPY", total_cost={"excl_vat": 401, "incl_vat": 441},
                       total_time_cost={"excl_vat": 400, "incl_vat": 440})
    assert check_cdr(cdr_example) == ()  # one yen
    cdr_example["total_cost"] = {"excl_vat": D("400.5"), "incl_vat": 442}
    assert reasons(check_cdr(cdr_example)) == {("TOTAL_COST_MISMATCH", "total_cost.incl_vat")}


def test_unknown_tariff_is_refused_known_or_embedded_ones_pass(cdr_example: dict) -> None:
    cdr_example["charging_periods"][0]["tariff_id"] = "99"
    assert reasons(check_cdr(cdr_example)) == {("UNKNOWN_TARIFF", "charging_periods[0].tariff_id")}
    assert check_cdr(cdr_example, known_tariffs={"99": "EUR"}) == ()
    assert reasons(check_cdr(cdr_example, known_tariffs={"99": "EUR"}, tariff_id="nope")) == {
        ("UNKNOWN_TARIFF", "tariff_id")}


def test_a_cdr_that_names_no_tariff_cannot_be_repriced(cdr_example: dict) -> None:
    cdr_example["tariffs"] = []
    del cdr_example["charging_periods"][0]["tariff_id"]
    assert reasons(check_cdr(cdr_example)) == {("UNKNOWN_TARIFF", "tariffs")}
    assert check_cdr(cdr_example, policy=CheckPolicy(require_tariff=False)) == ()


def test_negative_total_energy_is_refused(cdr_example: dict) -> None:
    cdr_example["total_energy"] = D("-1.5")
    assert reasons(check_cdr(cdr_example)) == {("NEGATIVE_ENERGY", "total_energy")}


def test_a_v2g_period_may_be_negative_but_the_session_total_may_not(cdr_example: dict) -> None:
    """OCPI: a period's ENERGY is negative when more was fed back than charged."""
    cdr_example["charging_periods"] = [
        {"start_date_time": "2015-06-29T21:39:09Z", "dimensions": [{"type": "ENERGY", "volume": D("20")}],
         "tariff_id": "12"},
        {"start_date_time": "2015-06-29T22:39:09Z", "dimensions": [{"type": "ENERGY", "volume": D("-4.658")}],
         "tariff_id": "12"}]
    assert check_cdr(cdr_example) == ()
    strict = check_cdr(cdr_example, policy=CheckPolicy(allow_negative_period_energy=False))
    assert reasons(strict) == {("NEGATIVE_ENERGY", "charging_periods[1].dimensions[0].volume")}


def test_end_before_start_is_refused(cdr_example: dict) -> None:
    cdr_example["end_date_time"] = "2015-06-29T20:00:00Z"
    found = reasons(check_cdr(cdr_example))
    assert ("END_BEFORE_START", "end_date_time") in found


def test_currency_mismatch_against_the_account(cdr_example: dict) -> None:
    assert reasons(check_cdr(cdr_example, expected_currency="GBP")) == {("CURRENCY_MISMATCH", "currency")}


def test_currency_mismatch_against_an_embedded_or_known_tariff(cdr_example: dict) -> None:
    cdr_example["tariffs"][0]["currency"] = "USD"
    assert reasons(check_cdr(cdr_example)) == {("CURRENCY_MISMATCH", "tariffs[0].currency")}
    cdr_example["tariffs"] = []
    assert reasons(check_cdr(cdr_example, known_tariffs={"12": "CHF"})) == {
        ("CURRENCY_MISMATCH", "charging_periods[0].tariff_id")}


def test_unknown_currency(cdr_example: dict) -> None:
    cdr_example["currency"] = "EUX"
    assert reasons(check_cdr(cdr_example)) == {("UNKNOWN_CURRENCY", "currency")}


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c.pop("total_cost"), ("MALFORMED", "total_cost")),
    (lambda c: c.__setitem__("total_cost", {"excl_vat": "4.00", "incl_vat": D("4.40")}),
     ("MALFORMED", "total_cost.excl_vat")),
    (lambda c: c.__setitem__("total_energy", True), ("MALFORMED", "total_energy")),
    (lambda c: c.__setitem__("start_date_time", "29/06/2015 21:39"), ("MALFORMED", "start_date_time")),
    (lambda c: c.__setitem__("charging_periods", []), ("MALFORMED", "charging_periods")),
    (lambda c: c["charging_periods"][0].__setitem__("dimensions", [{"type": "TIME"}]),
     ("MALFORMED", "charging_periods[0].dimensions[0].volume")),
    (lambda c: c.__setitem__("currency", None), ("MALFORMED", "currency")),
    (lambda c: c.__setitem__("credit", "yes"), ("MALFORMED", "credit")),
])
def test_malformed_fields_are_named(cdr_example: dict, mutate, expected) -> None:  # noqa: ANN001
    mutate(cdr_example)
    assert expected in reasons(check_cdr(cdr_example))


@pytest.mark.parametrize("text", ["", "not json", "[1,2]", "null", b"\xff\xfe", '{"currency": "EUR"'])
def test_text_that_is_not_a_cdr_object_is_one_malformed_reason(text: Any) -> None:
    problems = check_cdr_text(text)
    assert problems and problems[0].reason is Reason.MALFORMED and problems[0].field == "$"


def test_negative_costs_and_negative_vat(cdr_example: dict) -> None:
    cdr_example["total_time_cost"] = {"excl_vat": D("-4.00"), "incl_vat": D("-4.40")}
    assert {"NEGATIVE_AMOUNT"} <= codes(check_cdr(cdr_example))
    c2 = copy.deepcopy(cdr_example)
    c2["total_time_cost"] = {"excl_vat": D("4.00"), "incl_vat": D("3.60")}
    c2["total_cost"] = {"excl_vat": D("4.00"), "incl_vat": D("3.60")}
    assert reasons(check_cdr(c2)) == {("VAT_INCONSISTENT", "total_time_cost.incl_vat"),
                                      ("VAT_INCONSISTENT", "total_cost.incl_vat")}


def test_a_missing_incl_vat_is_allowed_and_skips_that_sum(cdr_example: dict) -> None:
    del cdr_example["total_cost"]["incl_vat"]
    assert check_cdr(cdr_example) == ()
    assert read_totals(cdr_example).total_cost.vat is None


def test_min_price_caps_the_total_but_not_the_parts(cdr_example: dict) -> None:
    """OCPI tariff_12: 0.25/kWh, min_price 0.50/0.55.  1.2 kWh costs 0.30 in energy, the session 0.50."""
    tariff = load(OCPI_EXAMPLES / "tariff_12_025kwh_min_price.json")
    cdr_example.update(tariffs=[tariff], total_energy=D("1.2"), total_time=D("1.973"),
                       charging_periods=[{"start_date_time": "2015-06-29T21:39:09Z", "tariff_id": "20",
                                          "dimensions": [{"type": "ENERGY", "volume": D("1.2")}]}],
                       total_energy_cost={"excl_vat": D("0.30"), "incl_vat": D("0.33")},
                       total_cost={"excl_vat": D("0.50"), "incl_vat": D("0.55")})
    del cdr_example["total_time_cost"]
    assert check_cdr(cdr_example) == ()
    cdr_example["total_cost"] = {"excl_vat": D("0.40"), "incl_vat": D("0.44")}
    assert codes(check_cdr(cdr_example)) == {"TOTAL_COST_MISMATCH"}


def test_max_price_caps_the_total(cdr_example: dict) -> None:
    tariff = load(OCPI_EXAMPLES / "tariff_6_025kwh_start_max_price.json")  # max 10.00/11.00
    cdr_example.update(tariffs=[tariff], total_energy=D("50"),
                       charging_periods=[{"start_date_time": "2015-06-29T21:39:09Z", "tariff_id": "16",
                                          "dimensions": [{"type": "ENERGY", "volume": D("50")}]}],
                       total_fixed_cost={"excl_vat": D("0.50"), "incl_vat": D("0.60")},
                       total_energy_cost={"excl_vat": D("12.50"), "incl_vat": D("13.75")},
                       total_cost={"excl_vat": D("10.00"), "incl_vat": D("11.00")})
    del cdr_example["total_time_cost"]
    assert check_cdr(cdr_example) == ()


def test_credit_cdrs_negate_total_cost_only_and_name_the_original(cdr_example: dict) -> None:
    cdr_example.update(id="12345-C", credit=True, credit_reference_id="12345",
                       total_cost={"excl_vat": D("-4.00"), "incl_vat": D("-4.40")})
    assert check_cdr(cdr_example) == ()
    assert read_totals(cdr_example).credit
    no_ref = copy.deepcopy(cdr_example)
    del no_ref["credit_reference_id"]
    assert reasons(check_cdr(no_ref)) == {("CREDIT_INCONSISTENT", "credit_reference_id")}
    positive = copy.deepcopy(cdr_example)
    positive["total_cost"] = {"excl_vat": D("4.00"), "incl_vat": D("4.40")}
    assert "CREDIT_INCONSISTENT" in codes(check_cdr(positive))


def test_a_negative_total_on_a_normal_cdr_is_refused(cdr_example: dict) -> None:
    cdr_example["total_cost"] = {"excl_vat": D("-4.00"), "incl_vat": D("-4.40")}
    assert "NEGATIVE_AMOUNT" in codes(check_cdr(cdr_example))


def test_quantities_must_agree(cdr_example: dict) -> None:
    c = copy.deepcopy(cdr_example)
    c["total_time"] = D("5")
    assert reasons(check_cdr(c)) == {("TIME_MISMATCH", "total_time")}
    c = copy.deepcopy(cdr_example)
    c["total_parking_time"] = D("3")
    assert ("TIME_MISMATCH", "total_parking_time") in reasons(check_cdr(c))
    c = copy.deepcopy(cdr_example)
    c["charging_periods"][0]["dimensions"].append({"type": "ENERGY", "volume": D("12")})
    assert reasons(check_cdr(c)) == {("ENERGY_MISMATCH", "total_energy")}
    c = copy.deepcopy(cdr_example)
    c["charging_periods"][0]["dimensions"].append({"type": "PARKING_TIME", "volume": D("0.5")})
    c["total_parking_time"] = D("0.25")
    assert reasons(check_cdr(c)) == {("PARKING_TIME_MISMATCH", "total_parking_time")}


def test_periods_must_start_inside_the_session_in_order(cdr_example: dict) -> None:
    p0 = cdr_example["charging_periods"][0]
    later = {**copy.deepcopy(p0), "start_date_time": "2015-06-29T22:00:00Z",
             "dimensions": [{"type": "MAX_POWER", "volume": D("11")}]}
    cdr_example["charging_periods"] = [later, p0]
    assert reasons(check_cdr(cdr_example)) == {("PERIOD_OUTSIDE_SESSION", "charging_periods[1].start_date_time")}
    cdr_example["charging_periods"] = [{**p0, "start_date_time": "2015-06-30T02:00:00Z"}]
    assert reasons(check_cdr(cdr_example)) == {("PERIOD_OUTSIDE_SESSION", "charging_periods[0].start_date_time")}


def test_a_datetime_without_zone_is_utc_per_ocpi(cdr_example: dict) -> None:
    cdr_example["start_date_time"] = "2015-06-29T21:39:09"
    assert check_cdr(cdr_example) == ()


def test_read_totals_refuses_what_check_cdr_refuses(cdr_example: dict) -> None:
    cdr_example["total_energy"] = D("-1")
    with pytest.raises(CdrRejected) as e:
        read_totals(cdr_example)
    assert e.value.problems[0].reason is Reason.NEGATIVE_ENERGY


def test_several_problems_are_all_reported(cdr_example: dict) -> None:
    cdr_example.update(currency="EUX", total_energy=D("-2"), end_date_time="2015-06-29T20:00:00Z")
    assert {"UNKNOWN_CURRENCY", "NEGATIVE_ENERGY", "END_BEFORE_START"} <= codes(check_cdr(cdr_example))


# -- properties -----------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["currency", "start_date_time", "end_date_time", "total_cost", "total_energy", "total_time",
          "total_parking_time", "charging_periods", "tariffs", "total_time_cost", "total_energy_cost", "credit",
          "credit_reference_id"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_never_raises_on_any_value_in_any_field_and_empty_means_readable(cdr_example: dict, field: str,
                                                                          value: Any) -> None:
    cdr = copy.deepcopy(cdr_example)
    cdr[field] = value
    problems = check_cdr(cdr, expected_currency="EUR")
    if not problems:
        read_totals(cdr, expected_currency="EUR")


@settings(max_examples=200)
@given(json_values)
def test_never_raises_on_any_json_document(doc: Any) -> None:
    problems = check_cdr(doc)
    assert isinstance(problems, tuple)
    check_cdr_text(json.dumps(doc, default=str))


money = st.decimals(min_value=0, max_value=1000, places=4)
rate = st.sampled_from([D(0), D("5.5"), D(10), D(19), D(21)])


@st.composite
def consistent_cdrs(draw: Any) -> dict:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=draw(st.integers(0, 10**6)))
    minutes = draw(st.integers(0, 48 * 60))
    end = start + timedelta(minutes=minutes)
    parts = {}
    for name in draw(st.sets(st.sampled_from(["total_fixed_cost", "total_energy_cost", "total_time_cost",
                                               "total_parking_cost", "total_reservation_cost"]), min_size=1)):
        excl, r = draw(money), draw(rate)
        parts[name] = {"excl_vat": excl, "incl_vat": (excl * (1 + r / 100)).quantize(D("0.0001"))}
    energy = draw(st.decimals(min_value=0, max_value=300, places=3))
    return {
        "id": "X", "currency": "EUR", "start_date_time": start.isoformat(), "end_date_time": end.isoformat(),
        "tariffs": [{"id": "T", "currency": "EUR", "elements": []}],
        "charging_periods": [{"start_date_time": start.isoformat(), "tariff_id": "T",
                              "dimensions": [{"type": "ENERGY", "volume": energy}]}],
        "total_energy": energy, "total_time": D(minutes) / 60,
        "total_cost": {"excl_vat": sum((p["excl_vat"] for p in parts.values()), D(0)),
                       "incl_vat": sum((p["incl_vat"] for p in parts.values()), D(0))},
        **parts,
    }


@given(consistent_cdrs())
def test_every_consistent_cdr_passes(cdr: dict) -> None:
    assert check_cdr(cdr, expected_currency="EUR") == ()


@given(consistent_cdrs(), st.decimals(min_value=D("0.02"), max_value=100, places=2), st.booleans())
def test_any_total_off_by_more_than_a_cent_is_caught(cdr: dict, delta: Decimal, up: bool) -> None:
    cdr["total_cost"]["excl_vat"] += delta if up else -delta
    found = reasons(check_cdr(cdr))
    assert ("TOTAL_COST_MISMATCH", "total_cost.excl_vat") in found or (
        not up and ("NEGATIVE_AMOUNT", "total_cost.excl_vat") in found)


def test_parse_keeps_decimals_exact() -> None:
    doc = parse_cdr_json('{"a": 0.1, "b": 4.40}')
    assert doc == {"a": D("0.1"), "b": D("4.40")} and isinstance(doc["a"], Decimal)
