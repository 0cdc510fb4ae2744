"""Sessions at our stations started with a roaming partner's token (streams/billing/partner.py and the billing
fold's partner path): priced with our tariff like a driver's session, a CDR the partner accepts, booked as a
receivable from the partner.  Each test names an invariant of those modules' docstrings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeverse.avro import default_codec
from chargeverse.events import envelope
from edges.ocpi.models import CDR
from ledger import accounts as ledger_accounts
from ledger.accounts import Direction
from ledger.billing.cdr_checks import Price, check_cdr
from ledger.billing.postings_plan import DriverPayer, own_session_plan
from ledger.engine import Engine, LedgerState
from ledger.postings import Entry, PostingSet, SetKind, validate
from streams.billing.fold import Lookups, Operator, apply
from streams.billing.partner import EmspPayer, cdr_token, partner_session_plan

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "ocpi" / "examples"
if not EXAMPLES.exists():  # pragma: no cover - a checkout elsewhere
    EXAMPLES = Path("/work/shared/data/ocpi/examples")
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh excl., VAT 10%
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
D = Decimal
OP = Operator(country_code="NL", party_id="CPY", vat_country="NL", location_country="NLD")
PARTNER = {"partner_id": "x", "country_code": "nl", "party_id": "emx", "uid": "TAG1", "type": "RFID",
           "contract_id": "NL-EMX-C00001"}
STATION = {"name": "Y depot", "address": "Kade 1", "latitude": 52.1, "longitude": 4.3,
           "connectors": {"1": {"standard": "IEC_62196_T2_COMBO", "max_power_kw": 150.0}}}


def _lookups(*, account: str | None = None, partner: dict[str, Any] | None = PARTNER,
             station: dict[str, Any] | None = STATION, tariff: dict[str, Any] | None = TARIFF) -> Lookups:
    return Lookups(
        tariff_at=lambda s, at: {"tariff": tariff, "time_zone": "Europe/Amsterdam",
                                 "currency": "EUR"} if tariff else None,
        payer_of=lambda uid: {"account_id": account, "fleet_id": None, "cost_centre": None} if account else None,
        partner_of=lambda uid: partner, location_of=lambda sid: station)


def _ev(**kw: Any) -> dict[str, Any]:
    rec = envelope(source="t", correlation_id="s1")
    rec.update(kw)
    return rec


def _session(energy_wh: float = 22_000.0, minutes: int = 60) -> list[tuple[str, dict[str, Any]]]:
    base = dict(session_id="S1", charge_point_id="CP1", transaction_id="7")
    started = _ev(**base, ocpp_version="ocpp1.6", evse_id=None, connector_id=1, id_token="TAG1",
                  id_token_type="ISO14443", started_at=T0, meter_start_wh=0.0)
    samples = [_ev(**base, at=T0 + timedelta(minutes=m), energy_wh=energy_wh * m / minutes, power_w=22_000.0,
                   current_a=32.0) for m in range(10, minutes, 10)]
    stopped = _ev(**base, started_at=T0, stopped_at=T0 + timedelta(minutes=minutes), energy_wh=energy_wh,
                  reason="Local")
    return [("SessionStarted", started), *(("SessionMeterSample", s) for s in samples), ("SessionStopped", stopped)]


def _run(events: list[tuple[str, dict[str, Any]]], lookups: Lookups) -> tuple[Any, list[Any]]:
    state, outs = None, []
    for etype, rec in events:
        state, o = apply(state, etype, rec, lookups, OP)
        outs.extend(o)
    return state, outs


def _to_set(plan: Any) -> PostingSet:
    return PostingSet(plan.posting_id, plan.ledger_key, T0,
                      tuple(Entry(leg.account, Direction(leg.side.value), leg.amount, leg.currency)
                            for leg in plan.legs), SetKind(plan.ledger_kind.value), session_id=plan.session_id,
                      memo=plan.memo)


# ---- the fold ------------------------------------------------------------------------------------------------


def test_a_partner_session_is_priced_with_our_tariff_exactly_like_a_drivers() -> None:
    _, partner_outs = _run(_session(), _lookups())
    _, driver_outs = _run(_session(), _lookups(account="acc-1"))
    assert [(t, e) for t, _, e, _ in partner_outs] == [("billing", "CdrPriced"), ("ledger", "LedgerPostingSet")]
    p, d = partner_outs[0][3], driver_outs[0][3]
    for f in ("total_cost_excl_vat", "total_cost_incl_vat", "total_energy_kwh", "total_time_hours", "currency",
              "tariff_id", "origin", "cost_parts"):
        assert p[f] == d[f], f
    assert (p["total_cost_excl_vat"], p["total_cost_incl_vat"]) == ("5.50", "6.05")  # 22 kWh x 0.25 + 10 %
    pc, dc = json.loads(p["cdr"]), json.loads(d["cdr"])
    assert pc["charging_periods"] == dc["charging_periods"] and pc["total_cost"] == dc["total_cost"]


def test_partner_key_the_cdr_and_the_postings_name_the_paying_emsp() -> None:
    _, outs = _run(_session(), _lookups())
    (_, bkey, _, priced), (_, lkey, _, posting) = outs
    assert bkey == lkey == priced["account_id"] == posting["ledger_key"] == "emsp:NL-EMX"
    assert (priced["partner_country_code"], priced["partner_party_id"]) == ("NL", "EMX")
    assert priced["fleet_id"] is None and priced["origin"] == "OWN"
    entries = {(e["account"], e["direction"]): D(e["amount"]) for e in posting["entries"]}
    assert entries == {("emsp:NL-EMX:receivable", "DEBIT"): D("6.05"),
                       ("platform:charging:revenue", "CREDIT"): D("5.50"),
                       ("tax:NL:vat_payable", "CREDIT"): D("0.55")}
    assert "payer=EMSP" in posting["memo"] and "emsp=NL-EMX" in posting["memo"]


def test_spec_shape_the_partners_cdr_validates_as_an_ocpi_cdr_with_its_token_and_our_station() -> None:
    _, outs = _run(_session(), _lookups())
    cdr = json.loads(outs[0][3]["cdr"])
    CDR.model_validate(cdr)  # what the partner's receiver checks
    assert (cdr["country_code"], cdr["party_id"], cdr["id"]) == ("NL", "CPY", "S1")
    assert cdr["cdr_token"] == {"country_code": "NL", "party_id": "EMX", "uid": "TAG1", "type": "RFID",
                                "contract_id": "NL-EMX-C00001"}
    loc = cdr["cdr_location"]
    assert (loc["id"], loc["name"], loc["address"], loc["country"], loc["evse_uid"], loc["connector_id"]) == (
        "CP1", "Y depot", "Kade 1", "NLD", "CP1-1", "1")
    assert loc["coordinates"] == {"latitude": "52.100000", "longitude": "4.300000"}
    assert (loc["connector_standard"], loc["connector_format"], loc["connector_power_type"]) == (
        "IEC_62196_T2_COMBO", "CABLE", "DC")
    assert [(t["country_code"], t["party_id"], t["id"]) for t in cdr["tariffs"]] == [("NL", "CPY", "16")]
    assert not check_cdr(cdr, known_tariffs={"16": "EUR"}, tariff_id="16")
    codec = default_codec()
    assert codec.decode(codec.encode("CdrPriced", outs[0][3]))[1]["cdr"] == outs[0][3]["cdr"]
    assert codec.decode(codec.encode("LedgerPostingSet", outs[1][3]))[1]["entries"] == outs[1][3]["entries"]


def test_an_account_holding_the_uid_pays_not_the_partner() -> None:
    _, outs = _run(_session(), _lookups(account="acc-1"))
    assert outs[0][3]["account_id"] == "acc-1" and outs[0][3]["partner_party_id"] is None
    assert json.loads(outs[0][3]["cdr"])["cdr_token"]["party_id"] == "CPY"  # our own driver's token


def test_exactly_one_outcome_a_partner_session_without_a_station_snapshot_goes_to_review() -> None:
    _, outs = _run(_session(), _lookups(station=None))
    assert [(t, e) for t, _, e, _ in outs] == [("billing", "BillingReview")]
    assert {r["code"] for r in outs[0][3]["reasons"]} == {"UNKNOWN_LOCATION"}
    _, outs = _run(_session(), _lookups(partner={**PARTNER, "party_id": "TOOLONG"}))
    assert [e for _, _, e, _ in outs] == ["BillingReview"]
    assert {r["code"] for r in outs[0][3]["reasons"]} == {"BAD_PARTNER"}
    _, outs = _run(_session(), _lookups(partner=None))  # nobody's token: as before
    assert {r["code"] for r in outs[0][3]["reasons"]} == {"NO_ACCOUNT"}


def test_deterministic_a_redelivered_stop_changes_nothing_and_a_replay_emits_the_same_ids() -> None:
    events = _session()
    state, a = _run(events, _lookups())
    again, more = apply(state, *events[-1], _lookups(), OP)
    assert more == [] and again == state
    _, b = _run(events, _lookups())
    assert [o[3]["event_id"] for o in a] == [o[3]["event_id"] for o in b]


def test_the_partner_is_looked_up_once_at_the_start_a_later_token_change_does_not_move_the_payer() -> None:
    events = _session()
    state, _ = apply(None, *events[0], _lookups(), OP)
    for etype, rec in events[1:]:
        state, outs = apply(state, etype, rec, _lookups(partner={**PARTNER, "party_id": "OTH"}), OP)
    assert outs[0][1] == "emsp:NL-EMX"


def test_a_free_session_is_priced_but_posts_nothing() -> None:
    free = {**TARIFF, "elements": [{"price_components": [{"type": "ENERGY", "price": 0, "step_size": 1}]}]}
    _, outs = _run(_session(), _lookups(tariff=free))
    assert [e for _, _, e, _ in outs] == ["CdrPriced"] and outs[0][3]["total_cost_excl_vat"] == "0.00"


# ---- the plan ------------------------------------------------------------------------------------------------


def test_balanced_the_partner_plan_fits_the_ledger_and_books_the_receivable() -> None:
    payer = EmspPayer("nl", "emx", "x")
    plan = partner_session_plan(source_event_id="e1", session_id="s", payer=payer,
                                total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="NLD")
    validate(_to_set(plan))
    acc = ledger_accounts.parse(payer.receivable)
    assert (acc.kind.value, acc.key, acc.limited) == ("asset", "emsp:NL-EMX", False)
    engine = Engine(LedgerState())
    engine.post("ledger-0", 1, _to_set(plan), "evt-1")
    assert not engine.out.rejections
    bal = engine.state.balances[("emsp:NL-EMX:receivable", "EUR")]
    assert D(bal.normal(acc.kind)).scaleb(-2) == D("4.40")
    # same legs as a driver's own-station plan, only the receivable differs
    drv = own_session_plan(source_event_id="e1", session_id="s", payer=DriverPayer("u-1"),
                           total_cost=Price(D("4.00"), D("4.40")), currency="EUR", vat_country="NL")
    assert [(leg.side, leg.amount) for leg in plan.legs] == [(leg.side, leg.amount) for leg in drv.legs]
    assert plan.posting_id == drv.posting_id  # one charge per session whoever pays: the ledger dedups it


def test_the_partner_plan_refuses_what_cannot_be_booked() -> None:
    with pytest.raises(ValueError):
        partner_session_plan(source_event_id="e", session_id="s", payer=EmspPayer("NL", "EMX"),
                             total_cost=Price(D("-1.00"), D("-1.10")), currency="EUR", vat_country="NL")
    with pytest.raises(ValueError):
        partner_session_plan(source_event_id="e", session_id="s", payer=EmspPayer("NL", "EMX"),
                             total_cost=Price(D("1.00"), D("0.90")), currency="EUR", vat_country="NL")
    with pytest.raises(ValueError):
        EmspPayer("NLD", "EMX").receivable  # noqa: B018


def test_cdr_token_keeps_what_the_emsp_gave_us_and_defaults_the_rest() -> None:
    assert cdr_token({"country_code": "de", "party_id": "abc", "type": "APP_USER", "contract_id": "DE-ABC-1"},
                     "U1") == {"country_code": "DE", "party_id": "ABC", "uid": "U1", "type": "APP_USER",
                               "contract_id": "DE-ABC-1"}
    assert cdr_token({"country_code": "DE", "party_id": "ABC", "type": "weird"}, "U2") == {
        "country_code": "DE", "party_id": "ABC", "uid": "U2", "type": "RFID", "contract_id": "U2"}


@given(excl=st.decimals(min_value=0, max_value=10_000, places=4),
       vat=st.decimals(min_value=0, max_value=30, places=1),
       currency=st.sampled_from(["EUR", "GBP", "SEK", "JPY"]))
def test_balanced_for_every_total_the_partner_owes_the_gross_and_debits_equal_credits(
        excl: Decimal, vat: Decimal, currency: str) -> None:
    incl = excl * (1 + vat / 100)
    plan = partner_session_plan(source_event_id="e", session_id="s", payer=EmspPayer("NL", "EMX"),
                                total_cost=Price(excl, incl), currency=currency, vat_country="NL")
    (dr, cr), = plan.totals().values() or [(D(0), D(0))]
    assert dr == cr
    receivable = sum((leg.amount for leg in plan.legs if leg.account == "emsp:NL-EMX:receivable"), D(0))
    assert receivable == dr and {leg.account for leg in plan.legs if leg.side.value == "DEBIT"} <= {
        "emsp:NL-EMX:receivable"}
