"""OCPP 2.0.1 TransactionEvents -> sessions events (streams/sessions/fold.py), on realistic frames."""

from __future__ import annotations

import json

import pytest
from session_frames import V201, Charger, at, iso, mv201, of, run, sv201

from streams.sessions import SessionFrameError, apply, new_state, session_id_for


def ev(c: Charger, *args, **kw) -> list[dict]:  # noqa: ANN002, ANN003
    return c.event201(*args, **kw)


def test_started_updated_ended_make_one_session_with_register_energy() -> None:
    c = Charger("CS-9", V201)
    frames = [
        *ev(c, "Started", 0, "9f1c-tx", t=at(0), trigger="Authorized", id_token="DE8AB12345", token_type="eMAID",
            evse=(2, 1), charging_state="EVConnected", remote_start_id=77,
            meter=[mv201(at(0), sv201(52.0, unit="kWh", context="Transaction.Begin"))]),
        *ev(c, "Updated", 1, "9f1c-tx", t=at(1), trigger="ChargingStateChanged", charging_state="Charging"),
        *ev(c, "Updated", 2, "9f1c-tx", t=at(15),
            meter=[mv201(at(15), sv201(54.5, unit="kWh", context="Sample.Periodic"),
                         sv201(11.0, "Power.Active.Import", unit="kW"), sv201(16.0, "Current.Import", phase="L1"),
                         sv201(63.0, "SoC", unit="Percent"))]),
        *ev(c, "Ended", 3, "9f1c-tx", t=at(30), trigger="EVDeparted", charging_state="Idle",
            stopped_reason="EVDisconnected",
            meter=[mv201(at(30), sv201(5.71, unit="Wh", multiplier=4, context="Transaction.End"))]),
    ]
    state, events = run(frames)
    assert [t for t, _ in events] == ["SessionStarted", "SessionMeterSample", "SessionMeterSample",
                                      "SessionMeterSample", "SessionStopped"]
    started, begin, mid, end, stopped = (r for _, r in events)
    assert started["session_id"] == session_id_for("CS-9", "9f1c-tx")
    assert (started["evse_id"], started["connector_id"], started["id_token"], started["id_token_type"],
            started["trigger_reason"], started["remote_start_id"], started["meter_start_wh"],
            started["authorization_status"], started["offline"]) == (
        2, 1, "DE8AB12345", "eMAID", "Authorized", 77, 52_000.0, None, False)
    assert started["raw"] == frames[0]["raw"] and started["raw_request"] is None
    assert (begin["charging_state"], mid["charging_state"], end["charging_state"]) == ("EVConnected", "Charging",
                                                                                       "Idle")
    assert (mid["energy_wh"], mid["power_w"], mid["current_a"], mid["soc_percent"]) == (2500.0, 11_000.0, 16.0,
                                                                                         63.0)
    assert (stopped["energy_wh"], stopped["meter_stop_wh"], stopped["reason"], stopped["trigger_reason"],
            stopped["authorization_status"], stopped["baseline_inferred"]) == (
        5100.0, 57_100.0, "EVDisconnected", "EVDeparted", "Accepted", False)
    assert state["open"] == {} and state["closed"] == ["9f1c-tx"]


def test_a_redelivered_seq_no_is_ignored() -> None:
    c = Charger("CS-1", V201)
    start = ev(c, "Started", 0, "t1", t=at(0), meter=[mv201(at(0), sv201(1000.0, context="Transaction.Begin"))])
    upd = ev(c, "Updated", 1, "t1", t=at(5), meter=[mv201(at(5), sv201(2000.0))])
    again = ev(c, "Updated", 1, "t1", t=at(5), meter=[mv201(at(5), sv201(2000.0))])  # the charger's retry
    state, events = run([*start, *upd])
    assert run(again, state) == (state, [])
    assert run([upd[0]], state) == (state, [])  # the very same frame again (re-processing)


def test_offline_events_delivered_late_are_accepted_with_their_own_timestamps() -> None:
    c = Charger("CS-2", V201)
    queued = [
        *ev(c, "Started", 0, "off-1", t=at(0), offline=True, trigger="CablePluggedIn",
            meter=[mv201(at(0), sv201(80_000.0, context="Transaction.Begin"))]),
        *ev(c, "Updated", 1, "off-1", t=at(20), offline=True, meter=[mv201(at(20), sv201(83_000.0))]),
        *ev(c, "Ended", 2, "off-1", t=at(40), offline=True, stopped_reason="Local",
            meter=[mv201(at(40), sv201(85_500.0, context="Transaction.End"))]),
    ]
    _, events = run(queued)  # all arrive together, hours later
    [started] = of(events, "SessionStarted")
    [stopped] = of(events, "SessionStopped")
    assert started["offline"] is True and iso(started["started_at"]) == iso(at(0))
    assert iso(stopped["stopped_at"]) == iso(at(40)) and stopped["energy_wh"] == 5500.0


def test_events_out_of_seq_order_are_applied_and_state_follows_the_highest_seq_no() -> None:
    c = Charger("CS-3", V201)
    start = ev(c, "Started", 0, "o", t=at(0), charging_state="EVConnected",
               meter=[mv201(at(0), sv201(10_000.0, context="Transaction.Begin"))])
    two = ev(c, "Updated", 2, "o", t=at(20), charging_state="SuspendedEV", meter=[mv201(at(20), sv201(14_000.0))])
    one = ev(c, "Updated", 1, "o", t=at(10), charging_state="Charging", meter=[mv201(at(10), sv201(12_000.0))])
    state, events = run([*start, *two, *one])
    s = state["open"]["o"]
    assert s["charging_state"] == "SuspendedEV" and s["seqs"] == [[0, 2]]
    assert [x["energy_wh"] for x in of(events, "SessionMeterSample")] == [0.0, 4000.0, 4000.0]
    [stopped] = of(run(ev(c, "Ended", 3, "o", t=at(30)), state)[1], "SessionStopped")
    assert stopped["energy_wh"] == 4000.0 and stopped["meter_stop_wh"] is None


def test_a_lost_started_event_opens_the_session_from_the_next_and_the_late_started_completes_it() -> None:
    c = Charger("CS-4", V201)
    started = ev(c, "Started", 0, "late", t=at(0), id_token="AA11", evse=(1, 1),
                 meter=[mv201(at(0), sv201(7000.0, context="Transaction.Begin"))])
    upd = ev(c, "Updated", 1, "late", t=at(10), meter=[mv201(at(10), sv201(9000.0))])
    state, events = run(upd)
    [opened] = of(events, "SessionStarted")
    assert opened["inferred_start"] is True and opened["evse_id"] is None
    state, more = run(started, state)
    assert of(more, "SessionStarted") == []  # one start per session
    [stopped] = of(run(ev(c, "Ended", 2, "late", t=at(20), meter=[mv201(at(20), sv201(9500.0))]), state)[1],
                   "SessionStopped")
    assert (stopped["energy_wh"], stopped["meter_start_wh"], stopped["id_token"], stopped["evse_id"]) == (
        2500.0, 7000.0, "AA11", 1)
    assert iso(stopped["started_at"]) == iso(at(0))


def test_a_missing_begin_reading_takes_the_first_register_as_baseline_and_says_so() -> None:
    c = Charger("CS-5", V201)
    frames = [*ev(c, "Started", 0, "nb", t=at(0), trigger="CablePluggedIn"),
              *ev(c, "Updated", 1, "nb", t=at(15), meter=[mv201(at(15), sv201(1_250_000.0))]),
              *ev(c, "Ended", 2, "nb", t=at(30), meter=[mv201(at(30), sv201(1_262_000.0))])]
    _, events = run(frames)
    [started] = of(events, "SessionStarted")
    [stopped] = of(events, "SessionStopped")
    assert started["meter_start_wh"] is None
    assert (stopped["energy_wh"], stopped["baseline_inferred"], stopped["reason"]) == (12_000.0, True, "Local")


def test_a_zero_begin_reading_from_an_offline_start_never_bills_the_lifetime_register() -> None:
    c = Charger("CS-6", V201)
    frames = [*ev(c, "Started", 0, "z", t=at(0), offline=True,
                  meter=[mv201(at(0), sv201(0.0, context="Transaction.Begin"))]),
              *ev(c, "Updated", 1, "z", t=at(60), meter=[mv201(at(60), sv201(900.0, unit="kWh"))]),
              *ev(c, "Ended", 2, "z", t=at(90), meter=[mv201(at(90), sv201(907.5, unit="kWh",
                                                                            context="Transaction.End"))])]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert stopped["energy_wh"] == 7500.0 and stopped["baseline_inferred"] is True


def test_samples_without_energy_never_reset_the_total() -> None:
    c = Charger("CS-7", V201)
    frames = [*ev(c, "Started", 0, "p", t=at(0), meter=[mv201(at(0), sv201(500.0, context="Transaction.Begin"))]),
              *ev(c, "Updated", 1, "p", t=at(5), meter=[mv201(at(5), sv201(1500.0))]),
              *ev(c, "Updated", 2, "p", t=at(6), meter=[mv201(at(6), sv201(7.2, "Power.Active.Import", unit="kW"))]),
              *ev(c, "Updated", 3, "p", t=at(7), meter=[mv201(at(7), sv201(230.0, "Voltage"))])]
    _, events = run(frames)
    assert [s["energy_wh"] for s in of(events, "SessionMeterSample")] == [0.0, 1000.0, 1000.0, 1000.0]


def test_an_id_token_presented_after_the_start_is_on_the_stop() -> None:
    """TxStartPoint = EVConnected: the transaction starts at plug-in, the driver badges later."""
    c = Charger("CS-8", V201)
    frames = [*ev(c, "Started", 0, "a", t=at(0), trigger="CablePluggedIn", evse=(1, 2)),
              *ev(c, "Updated", 1, "a", t=at(1), trigger="Authorized", id_token="0455AA", answer="Accepted"),
              *ev(c, "Ended", 2, "a", t=at(2), trigger="EVDeparted")]
    _, events = run(frames)
    [started] = of(events, "SessionStarted")
    [stopped] = of(events, "SessionStopped")
    assert (started["id_token"], started["connector_id"]) == (None, 2)
    assert (stopped["id_token"], stopped["id_token_type"], stopped["authorization_status"]) == (
        "0455AA", "ISO14443", "Accepted")


def test_a_token_we_refused_is_reported_on_the_stop() -> None:
    c = Charger("CS-10", V201)
    frames = [*ev(c, "Started", 0, "r", t=at(0), id_token="BAD1", answer="Invalid"),
              *ev(c, "Ended", 1, "r", t=at(1), trigger="Deauthorized", stopped_reason="DeAuthorized")]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert (stopped["authorization_status"], stopped["reason"]) == ("Invalid", "DeAuthorized")


def test_an_older_answer_does_not_override_a_newer_authorization() -> None:
    c = Charger("CS-11", V201)
    s0 = ev(c, "Started", 0, "q", t=at(0), id_token="T1", answer="Accepted")
    s1 = ev(c, "Updated", 1, "q", t=at(1), id_token="T1", answer="Blocked")
    state, _ = run([*s0, *s1])
    assert apply(state, s0[1]) == (state, [])
    assert state["open"]["q"]["authorization_status"] == "Blocked"


def test_events_after_ended_are_ignored() -> None:
    c = Charger("CS-12", V201)
    state, _ = run([*ev(c, "Started", 0, "e", t=at(0)), *ev(c, "Ended", 2, "e", t=at(5))])
    late = ev(c, "Updated", 1, "e", t=at(3), meter=[mv201(at(3), sv201(10.0))])
    assert run(late, state) == (state, [])


def test_per_phase_registers_and_multipliers() -> None:
    c = Charger("CS-13", V201)
    frames = [*ev(c, "Started", 0, "ph", t=at(0),
                  meter=[mv201(at(0), *(sv201(v, phase=p, unit="kWh", context="Transaction.Begin")
                                        for v, p in ((1.0, "L1-N"), (2.0, "L2-N"), (3.0, "L3-N"))))]),
              *ev(c, "Updated", 1, "ph", t=at(30),
                  meter=[mv201(at(30), *(sv201(v, phase=p, unit="Wh", multiplier=3)
                                         for v, p in ((1.5, "L1-N"), (2.5, "L2-N"), (3.5, "L3-N"))))])]
    samples = of(run(frames)[1], "SessionMeterSample")
    assert [(s["register_wh"], s["energy_wh"]) for s in samples] == [(6000.0, 0.0), (7500.0, 1500.0)]


def test_a_transaction_event_without_a_transaction_id_is_a_clear_error() -> None:
    c = Charger("CS-14", V201)
    bad = c.call("TransactionEvent", {"eventType": "Updated", "timestamp": "2025-03-01T08:00:00Z",
                                      "triggerReason": "Trigger", "seqNo": 1, "transactionInfo": {}},
                 validate=False)
    with pytest.raises(SessionFrameError, match="transactionId"):
        apply(new_state(), bad)


def test_the_answer_alone_changes_nothing_for_an_unknown_transaction() -> None:
    c = Charger("CS-15", V201)
    _, answer = ev(c, "Started", 0, "u", t=at(0), id_token="X")
    assert apply(new_state(), answer) == (new_state(), [])
    assert json.loads(answer["answers"])[2] == "TransactionEvent"
