"""OCPP 1.6 transactions -> sessions events (streams/sessions/fold.py), on realistic frames."""

from __future__ import annotations

import json

import pytest
from session_frames import Charger, at, iso, mv16, of, run, sv16

from chargeverse.events import envelope
from streams.sessions import SessionFrameError, apply, new_state, session_id_for


def test_a_session_starts_at_our_answer_samples_and_stops_with_register_energy() -> None:
    c = Charger()
    start_in, start_out = c.start16(4711, meter_start=1_000_000, reservation_id=9)
    assert apply(new_state(), start_in) == (new_state(), [])  # the bare request has no transactionId yet
    frames = [start_in, start_out,
              c.meter16(4711, mv16(at(5), sv16("1001.25", unit="kWh", context="Sample.Periodic"))),
              c.meter16(4711, mv16(at(10), sv16("1003000", context="Sample.Periodic"))),
              *c.stop16(4711, meter_stop=1_004_100, t=at(12), reason="EVDisconnected")]
    state, events = run(frames)
    assert [t for t, _ in events] == ["SessionStarted", "SessionMeterSample", "SessionMeterSample", "SessionStopped"]
    started, s1, s2, stopped = (rec for _, rec in events)
    sid = session_id_for("CP-1", 4711)
    assert {r["session_id"] for _, r in events} == {sid}
    assert (started["transaction_id"], started["connector_id"], started["evse_id"], started["id_token"],
            started["authorization_status"], started["meter_start_wh"], started["reservation_id"],
            started["ocpp_version"], started["inferred_start"]) == (
        "4711", 1, 1, "04A1B2C3", "Accepted", 1_000_000.0, 9, "ocpp1.6", False)
    assert iso(started["started_at"]) == iso(at(0))
    assert started["raw"] == start_out["raw"] and started["raw_request"] == start_in["raw"]
    assert started["causation_id"] == start_out["event_id"]
    assert (s1["register_wh"], s1["energy_wh"], s2["energy_wh"]) == (1_001_250.0, 1250.0, 3000.0)
    assert (stopped["energy_wh"], stopped["meter_stop_wh"], stopped["reason"], stopped["baseline_inferred"],
            stopped["meter_segments"]) == (4100.0, 1_004_100.0, "EVDisconnected", False, 1)
    assert iso(stopped["stopped_at"]) == iso(at(12))
    assert state["open"] == {} and state["closed"] == ["4711"]


def test_a_rejected_id_tag_still_starts_the_transaction_with_its_status() -> None:
    """1.6: the charger has a transactionId whatever the status; the CSMS must see (and later stop) it."""
    c = Charger()
    frames = [*c.start16(5, status="Invalid"),
              *c.stop16(5, meter_stop=1_000_010, t=at(1), reason="DeAuthorized")]
    _, events = run(frames)
    [started] = of(events, "SessionStarted")
    [stopped] = of(events, "SessionStopped")
    assert started["authorization_status"] == "Invalid"
    assert (stopped["reason"], stopped["authorization_status"], stopped["energy_wh"]) == ("DeAuthorized", "Invalid",
                                                                                        10.0)


def test_errors_and_invalid_frames_start_nothing() -> None:
    c = Charger()
    req, _ = c.start16(6)
    assert run([req, c.error(req, "InternalError")])[1] == []
    bad = c.call("MeterValues", {"connectorId": 1, "transactionId": 6, "meterValue": []}, validate=False)
    bad["valid"] = False
    assert run([*c.start16(6), bad])[1][1:] == []


def test_our_answer_recorded_twice_starts_one_session() -> None:
    c = Charger()
    req, res = c.start16(7)
    state, events = run([req, res, res])
    assert len(of(events, "SessionStarted")) == 1
    copy = c.result(req, {"transactionId": 7, "idTagInfo": {"status": "Accepted"}})  # a new frame, same answer
    assert apply(state, copy) == (state, [])


def test_a_start_the_charger_re_sent_and_got_a_second_id_for_is_one_session() -> None:
    c = Charger()
    req1, res1 = c.start16(10, meter_start=500_000)
    req2 = c.record("IN", [2, "99", "StartTransaction", json.loads(req1["raw"])[3]], action="StartTransaction")
    res2 = c.result(req2, {"transactionId": 11, "idTagInfo": {"status": "Accepted"}})
    frames = [req1, res1, req2, res2,
              c.meter16(11, mv16(at(5), sv16("501000"))),
              c.meter16(10, mv16(at(5), sv16("501000"))),  # the same sample under the first id
              *c.stop16(11, meter_stop=502_000, t=at(9))]
    state, events = run(frames)
    assert len(of(events, "SessionStarted")) == 1
    assert len(of(events, "SessionMeterSample")) == 1
    [stopped] = of(events, "SessionStopped")
    assert stopped["session_id"] == session_id_for("CP-1", 10) and stopped["energy_wh"] == 2000.0
    assert state["open"] == {} and set(state["closed"]) == {"10", "11"} and state["aliases"] == {}


def test_meter_values_redelivered_by_the_charger_are_not_counted_twice() -> None:
    c = Charger()
    element = mv16(at(5), sv16("1002000"), sv16("7400", "Power.Active.Import", unit="W"))
    frames = [*c.start16(12), c.meter16(12, element), c.meter16(12, element)]
    _, events = run(frames)
    assert len(of(events, "SessionMeterSample")) == 1


def test_transaction_data_repeating_sent_samples_is_not_emitted_again_new_ones_are() -> None:
    c = Charger()
    sent = mv16(at(5), sv16("1001000", context="Sample.Periodic"))
    clock = mv16(at(15), sv16("1002500", context="Sample.Clock"))
    frames = [*c.start16(13), c.meter16(13, sent),
              *c.stop16(13, meter_stop=1_003_000, t=at(20), data=[sent, clock])]
    _, events = run(frames)
    assert [iso(s["at"]) for s in of(events, "SessionMeterSample")] == [iso(at(5)), iso(at(15))]
    assert of(events, "SessionStopped")[0]["energy_wh"] == 3000.0


def test_offline_start_with_meter_start_zero_never_bills_the_lifetime_register() -> None:
    c = Charger()
    frames = [*c.start16(14, meter_start=0),
              c.meter16(14, mv16(at(15), sv16("900.123", unit="kWh", context="Sample.Clock"))),
              c.meter16(14, mv16(at(30), sv16("903.400", unit="kWh", context="Sample.Clock"))),
              *c.stop16(14, meter_stop=906_000, t=at(40))]
    _, events = run(frames)
    [stopped] = of(events, "SessionStopped")
    assert stopped["energy_wh"] == 906_000 - 900_123
    assert stopped["baseline_inferred"] is True and stopped["meter_start_wh"] == 0.0
    assert [s["energy_wh"] for s in of(events, "SessionMeterSample")] == [0.0, 3277.0]


def test_offline_start_without_any_meter_values_bills_nothing_rather_than_the_register() -> None:
    c = Charger()
    _, events = run([*c.start16(15, meter_start=0), *c.stop16(15, meter_stop=912_345, t=at(60))])
    [stopped] = of(events, "SessionStopped")
    assert stopped["energy_wh"] == 0.0 and stopped["baseline_inferred"] is True


def test_meter_start_zero_with_a_session_relative_register_counts_from_zero() -> None:
    c = Charger()
    frames = [*c.start16(16, meter_start=0), c.meter16(16, mv16(at(10), sv16("1.8", unit="kWh"))),
              *c.stop16(16, meter_stop=4200, t=at(25))]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert stopped["energy_wh"] == 4200.0 and stopped["baseline_inferred"] is False


def test_meter_values_without_energy_never_reset_the_total() -> None:
    c = Charger()
    frames = [*c.start16(17, meter_start=2_000_000),
              c.meter16(17, mv16(at(5), sv16("2001500"))),
              c.meter16(17, mv16(at(6), sv16("11.2", "Power.Active.Import", unit="kW"),
                                 sv16("48", "SoC", unit="Percent", location="EV"))),
              c.meter16(17, mv16(at(7), sv16("16", "Current.Import", unit="A", phase="L1"))),
              *c.stop16(17, meter_stop=2_002_000, t=at(8))]
    _, events = run(frames)
    samples = of(events, "SessionMeterSample")
    assert [s["energy_wh"] for s in samples] == [1500.0, 1500.0, 1500.0]
    assert [s["register_wh"] for s in samples] == [2_001_500.0, None, None]
    assert (samples[1]["power_w"], samples[1]["soc_percent"]) == (11_200.0, 48.0)
    assert of(events, "SessionStopped")[0]["energy_wh"] == 2000.0


def test_all_measurands_phases_units_and_contexts_are_read() -> None:
    c = Charger()
    element = mv16(
        at(3),
        sv16("1500.5", "Energy.Active.Import.Register", unit="kWh", context="Sample.Clock", location="Outlet"),
        sv16("12.5", "Energy.Active.Import.Interval", unit="Wh", context="Sample.Clock"),  # a delta: not energy
        sv16("3.6", "Power.Active.Import", unit="kW", phase="L1-N"),
        sv16("3.7", "Power.Active.Import", unit="kW", phase="L2-N"),
        sv16("3.5", "Power.Active.Import", unit="kW", phase="L3-N"),
        sv16("15.9", "Current.Import", phase="L1"), sv16("16.2", "Current.Import", phase="L2"),
        sv16("15.7", "Current.Import", phase="L3"), sv16("0.4", "Current.Import", phase="N"),
        sv16("229", "Voltage", unit="V", phase="L1-N"), sv16("231", "Voltage", unit="V", phase="L2-N"),
        sv16("233", "Voltage", unit="V", phase="L3-N"),
        sv16("71", "SoC", unit="Percent", location="EV"),
        sv16("31.5", "Temperature", unit="Celsius", location="Body"),
        sv16("d2F0dA==", "Energy.Active.Import.Register", fmt="SignedData", location="Cable"),
    )
    _, events = run([*c.start16(18, meter_start=1_500_000), c.meter16(18, element)])
    [s] = of(events, "SessionMeterSample")
    assert (s["register_wh"], s["energy_wh"], s["power_w"], s["current_a"], s["voltage_v"], s["soc_percent"],
            s["context"]) == (1_500_500.0, 500.0, 10_800.0, 16.2, 231.0, 71.0, "Sample.Clock")
    assert json.loads(s["measurands"]) == element["sampledValue"]  # everything, as sent


def test_per_phase_energy_registers_are_summed_when_there_is_no_total() -> None:
    c = Charger()
    frames = [*c.start16(19, meter_start=3000),
              c.meter16(19, mv16(at(10), *(sv16(v, phase=p) for v, p in (("1500", "L1"), ("1600", "L2"),
                                                                         ("1700", "L3")))))]
    [s] = of(run(frames)[1], "SessionMeterSample")
    assert (s["register_wh"], s["energy_wh"]) == (4800.0, 1800.0)


def test_a_meter_replaced_mid_session_adds_both_segments_never_negative() -> None:
    c = Charger()
    frames = [*c.start16(20, meter_start=80_000),
              c.meter16(20, mv16(at(10), sv16("82000"))),
              c.meter16(20, mv16(at(20), sv16("150"))),  # new meter
              c.meter16(20, mv16(at(30), sv16("1150"))),
              *c.stop16(20, meter_stop=1650, t=at(35))]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert stopped["energy_wh"] == 2000 + 1500 and stopped["meter_segments"] == 2
    assert stopped["baseline_inferred"] is False


def test_a_broken_zero_meter_stop_does_not_undo_the_energy() -> None:
    c = Charger()
    frames = [*c.start16(21, meter_start=10_000), c.meter16(21, mv16(at(10), sv16("13000"))),
              *c.stop16(21, meter_stop=0, t=at(11))]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert stopped["energy_wh"] == 3000.0 and stopped["meter_stop_wh"] == 0.0


def test_a_transaction_whose_start_was_not_recorded_is_opened_by_its_meter_values() -> None:
    c = Charger()
    req, _ = c.start16(22)  # our answer was sent but never made it to the log
    frames = [req, c.meter16(22, mv16(at(5), sv16("1000900"))), c.meter16(22, mv16(at(9), sv16("1002000"))),
              *c.stop16(22, meter_stop=1_002_500, t=at(10), id_tag="04A1B2C3")]
    _, events = run(frames)
    [started] = of(events, "SessionStarted")
    [stopped] = of(events, "SessionStopped")
    assert started["inferred_start"] is True and started["authorization_status"] is None
    assert iso(started["started_at"]) == iso(at(5)) and started["meter_start_wh"] is None
    assert (stopped["energy_wh"], stopped["baseline_inferred"], stopped["id_token"]) == (1600.0, True, "04A1B2C3")


def test_a_start_answer_arriving_after_the_session_was_opened_completes_it_without_a_second_start() -> None:
    c = Charger()
    req, res = c.start16(23, meter_start=1_000_000)
    frames = [c.meter16(23, mv16(at(5), sv16("1000900"))), req, res,
              *c.stop16(23, meter_stop=1_002_000, t=at(10))]
    _, events = run(frames)
    assert len(of(events, "SessionStarted")) == 1
    [stopped] = of(events, "SessionStopped")
    assert (stopped["energy_wh"], stopped["meter_start_wh"], stopped["baseline_inferred"]) == (2000.0, 1e6, False)
    assert iso(stopped["started_at"]) == iso(at(0))


def test_a_stop_for_an_unknown_transaction_still_records_the_session() -> None:
    c = Charger()
    data = [mv16(at(1), sv16("5000", context="Transaction.Begin")), mv16(at(30), sv16("9000"))]
    _, events = run(c.stop16(24, meter_stop=9500, t=at(31), data=data))
    assert [t for t, _ in events] == ["SessionStarted", "SessionMeterSample", "SessionMeterSample",
                                      "SessionStopped"]
    assert of(events, "SessionStopped")[0]["energy_wh"] == 4500.0


def test_meter_values_outside_a_transaction_are_not_session_data() -> None:
    c = Charger()
    assert run([c.meter16(None, mv16(at(1), sv16("5000")))])[1] == []


def test_a_stop_without_reason_is_local_and_carries_the_stop_id_tag() -> None:
    c = Charger()
    [stopped] = of(run([*c.start16(25), *c.stop16(25, meter_stop=1_000_100, t=at(3), id_tag="MASTER")])[1],
                   "SessionStopped")
    assert (stopped["reason"], stopped["id_token"]) == ("Local", "MASTER")


def test_frames_after_the_stop_are_ignored_a_stopped_session_is_final() -> None:
    c = Charger()
    state, _ = run([*c.start16(26), *c.stop16(26, meter_stop=1_000_100, t=at(3))])
    late = [c.meter16(26, mv16(at(2), sv16("1000050"))), *c.stop16(26, meter_stop=1_000_200, t=at(4))]
    assert run(late, state) == (state, [])


def test_readings_timestamped_before_the_start_never_count() -> None:
    c = Charger()
    frames = [*c.start16(27, meter_start=1_000_000, t=at(10)),
              c.meter16(27, mv16(at(9), sv16("999000"))),  # the charger's clock, or the previous session
              *c.stop16(27, meter_stop=1_000_700, t=at(20))]
    [stopped] = of(run(frames)[1], "SessionStopped")
    assert stopped["energy_wh"] == 700.0 and stopped["baseline_inferred"] is False


def test_two_connectors_run_two_sessions_side_by_side() -> None:
    c = Charger()
    frames = [*c.start16(30, connector=1, meter_start=100), *c.start16(31, connector=2, meter_start=5000),
              c.meter16(31, mv16(at(5), sv16("5600")), connector=2), c.meter16(30, mv16(at(5), sv16("400"))),
              *c.stop16(30, meter_stop=700, t=at(10)), *c.stop16(31, meter_stop=6000, t=at(11))]
    stops = {s["transaction_id"]: (s["connector_id"], s["energy_wh"]) for s in of(run(frames)[1],
                                                                                 "SessionStopped")}
    assert stops == {"30": (1, 600.0), "31": (2, 1000.0)}


def test_a_start_result_without_the_request_it_answers_is_a_clear_error_and_changes_nothing() -> None:
    c = Charger()
    _, res = c.start16(40)
    res["answers"] = None
    state = new_state()
    with pytest.raises(SessionFrameError, match="without the request it answers"):
        apply(state, res)
    assert state == new_state()


def test_connection_events_and_other_actions_are_ignored() -> None:
    conn = envelope(source="edge", correlation_id="conn")
    conn.update(charge_point_id="CP-1", connection_id="conn", state="DISCONNECTED", ocpp_version="ocpp1.6",
                edge_instance="e1", remote_address=None, close_code=1006, security_profile=1)
    c = Charger()
    hb = c.call("Heartbeat", {})
    state = new_state()
    assert apply(state, conn) == (state, []) and apply(state, hb) == (state, [])


def test_session_ids_are_deterministic_and_distinct_per_charger_and_transaction() -> None:
    assert session_id_for("CP-1", 1) == session_id_for("CP-1", "1")
    assert len({session_id_for("CP-1", 1), session_id_for("CP-2", 1), session_id_for("CP-1", 2)}) == 3


def test_several_elements_in_one_frame_are_several_samples_with_distinct_ids() -> None:
    c = Charger()
    frame = c.meter16(28, mv16(at(15), sv16("1001000", context="Sample.Clock")),
                      mv16(at(15), sv16("1001002", context="Sample.Periodic")),
                      mv16(at(16), sv16("1001200", context="Sample.Periodic")))
    _, events = run([*c.start16(28), frame])
    samples = of(events, "SessionMeterSample")
    assert [(s["context"], s["energy_wh"]) for s in samples] == [("Sample.Clock", 1000.0),
                                                                 ("Sample.Periodic", 1002.0),
                                                                 ("Sample.Periodic", 1200.0)]
    assert len({s["event_id"] for s in samples}) == 3 and {s["causation_id"] for s in samples} == {frame["event_id"]}


def test_a_leniently_accepted_call_is_read_from_its_normalized_payload() -> None:
    c = Charger()
    sloppy = c.call("MeterValues", {"connectorId": 1, "transactionId": 29, "meterValue": [
        {"timestamp": "2025-03-01 08:10:00", "sampledValue": [{"value": 1000600}]}]}, validate=False)
    sloppy["normalized"] = json.dumps({"connectorId": 1, "transactionId": 29, "meterValue": [
        {"timestamp": iso(at(10)), "sampledValue": [{"value": "1000600"}]}]})
    _, events = run([*c.start16(29), sloppy])
    [s] = of(events, "SessionMeterSample")
    assert (iso(s["at"]), s["energy_wh"]) == (iso(at(10)), 600.0)
    assert s["raw"] == sloppy["raw"]  # what the charger sent stays verbatim


def test_a_retransmission_the_edge_answered_from_memory_is_skipped() -> None:
    c = Charger()
    state, _ = run(c.start16(30))
    original = c.meter16(30, mv16(at(5), sv16("1000500")))
    state, _ = run([original], state)
    again = c.meter16(30, mv16(at(6), sv16("1000600")))  # whatever it holds: the edge did not process it
    again["retransmission_of"] = original["event_id"]
    assert apply(state, again) == (state, [])
    assert len(apply(state, dict(again, retransmission_of=None))[1]) == 1


def test_the_outlet_meter_wins_over_inlet_and_an_inlet_meter_is_used_when_it_is_the_only_one() -> None:
    c = Charger()
    both = mv16(at(5), sv16("1000800", location="Inlet"), sv16("1000700", location="Outlet"),
                sv16("99", location="EV"))
    inlet_only = mv16(at(10), sv16("1001900", location="Inlet"), sv16("5", location="Body"))
    samples = of(run([*c.start16(31), c.meter16(31, both), c.meter16(31, inlet_only)])[1], "SessionMeterSample")
    assert [s["register_wh"] for s in samples] == [1_000_700.0, 1_001_900.0]
