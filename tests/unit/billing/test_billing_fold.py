"""The billing fold's invariants (streams/billing/fold.py): one outcome per stopped session, priced by the tariff
engine, balanced postings, deterministic ids."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from chargeverse.events import envelope
from streams.billing.fold import Lookups, apply

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh excl., VAT 10%
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _lookups(tariff=TARIFF, account="acc-1", fleet=None):  # noqa: ANN001, ANN202
    return Lookups(
        tariff_at=lambda station, at: {"tariff": tariff, "time_zone": "Europe/Amsterdam",
                                       "currency": tariff["currency"]} if tariff else None,
        payer_of=lambda uid: ({"account_id": account, "fleet_id": fleet, "cost_centre": "CC-7" if fleet else None}
                              if account else None))


def _ev(**kw):  # noqa: ANN003, ANN202
    rec = envelope(source="t", correlation_id="s1")
    rec.update(kw)
    return rec


def _session(energy_wh: float = 22_000.0, minutes: int = 60):  # noqa: ANN202
    started = _ev(session_id="S1", charge_point_id="CP1", transaction_id="7", ocpp_version="ocpp1.6", evse_id=None,
                  connector_id=1, id_token="TAG1", id_token_type="ISO14443", started_at=T0, meter_start_wh=1000.0)
    samples = [_ev(session_id="S1", charge_point_id="CP1", transaction_id="7", at=T0 + timedelta(minutes=m),
                   energy_wh=energy_wh * m / minutes, power_w=22_000.0, current_a=32.0)
               for m in range(10, minutes, 10)]
    stopped = _ev(session_id="S1", charge_point_id="CP1", transaction_id="7", started_at=T0,
                  stopped_at=T0 + timedelta(minutes=minutes), energy_wh=energy_wh, reason="Local")
    return [("SessionStarted", started)] + [("SessionMeterSample", s) for s in samples] + [("SessionStopped", stopped)]


def _run(events, lookups):  # noqa: ANN001, ANN202
    state, outs = None, []
    for etype, rec in events:
        state, o = apply(state, etype, rec, lookups)
        outs.extend(o)
    return state, outs


def test_a_stopped_session_is_priced_by_the_tariff_engine_and_posted_balanced() -> None:
    _, outs = _run(_session(22_000.0), _lookups())
    kinds = [(topic, etype) for topic, _, etype, _ in outs]
    assert kinds == [("billing", "CdrPriced"), ("ledger", "LedgerPostingSet")]
    priced = outs[0][3]
    assert priced["total_cost_excl_vat"] == "5.50" and priced["total_cost_incl_vat"] == "6.05"  # 22 kWh x 0.25
    assert priced["account_id"] == "acc-1" and priced["origin"] == "OWN" and priced["tariff_id"] == "16"
    cdr = json.loads(priced["cdr"])
    assert Decimal(str(cdr["total_energy"])) == Decimal("22") and cdr["tariffs"][0]["id"] == "16"
    entries = outs[1][3]["entries"]
    debit = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "DEBIT")
    credit = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "CREDIT")
    assert debit == credit == Decimal("6.05")


def test_exactly_one_outcome_a_redelivered_stop_changes_nothing() -> None:
    events = _session()
    state, outs = _run(events, _lookups())
    again, more = apply(state, *events[-1], _lookups())
    assert more == [] and again == state
    late, more = apply(state, *events[1], _lookups())  # a late sample after billing
    assert more == []


def test_deterministic_ids_replay_emits_identical_events() -> None:
    events = _session()
    _, a = _run(events, _lookups())
    _, b = _run(events, _lookups())
    assert [o[3]["event_id"] for o in a] == [o[3]["event_id"] for o in b]
    assert a[1][3]["source_event_id"] == b[1][3]["source_event_id"]


def test_no_tariff_or_no_account_goes_to_review_with_every_reason_and_nothing_is_posted() -> None:
    _, outs = _run(_session(), _lookups(tariff=None, account=None))
    assert [o[2] for o in outs] == ["BillingReview"]
    codes = {r["code"] for r in outs[0][3]["reasons"]}
    assert codes == {"UNKNOWN_TARIFF", "NO_ACCOUNT"}
    assert json.loads(outs[0][3]["payload"])["session"]["session_id"] == "S1"  # the session, verbatim


def test_fleet_sessions_are_charged_to_the_fleet_with_cost_centre() -> None:
    _, outs = _run(_session(), _lookups(fleet="FLEET-9"))
    assert outs[0][3]["fleet_id"] == "FLEET-9" and outs[0][3]["cost_centre"] == "CC-7"
    assert any("FLEET-9" in e["account"] for e in outs[1][3]["entries"])


def test_a_tariff_snapshot_at_start_is_kept_even_if_the_lookup_changes_later() -> None:
    events = _session()
    state, _ = apply(None, *events[0], _lookups())
    cheap = dict(TARIFF, elements=[{"price_components": [{"type": "ENERGY", "price": 0.01, "step_size": 1}]}])
    for e in events[1:]:
        state, outs = apply(state, *e, _lookups(tariff=cheap))
    assert outs[0][3]["total_cost_excl_vat"] == "5.50"


def test_201_begin_and_end_samples_stamped_at_the_start_and_stop_are_priced_not_sent_to_review() -> None:
    """2.0.1 chargers stamp Transaction.Begin/End samples with the start and stop times themselves (found by the
    Plug & Charge flow test: such sessions went to review with PRICING_FAILED)."""
    events = _session(10_000.0)
    begin = _ev(session_id="S1", charge_point_id="CP1", transaction_id="7", at=T0, energy_wh=0.0, power_w=0.0,
                current_a=None)
    end = _ev(session_id="S1", charge_point_id="CP1", transaction_id="7", at=T0 + timedelta(minutes=60),
              energy_wh=10_000.0, power_w=None, current_a=None)
    late = _ev(session_id="S1", charge_point_id="CP1", transaction_id="7", at=T0 + timedelta(minutes=90),
               energy_wh=12_000.0, power_w=None, current_a=None)  # after the stop: not part of the session
    events = [events[0], ("SessionMeterSample", begin)] + events[1:-1] + [
        ("SessionMeterSample", end), ("SessionMeterSample", late), events[-1]]
    _, outs = _run(events, _lookups())
    assert [o[2] for o in outs] == ["CdrPriced", "LedgerPostingSet"], outs[0][3].get("reasons")
    priced = outs[0][3]
    assert priced["total_cost_excl_vat"] == "2.50" and priced["total_cost_incl_vat"] == "2.75"  # 10 kWh x 0.25
