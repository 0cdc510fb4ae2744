"""Each invariant of the sessions processor (streams/sessions/__init__.py), named, over random realistic traffic."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from session_frames import V201, Charger, at, mv16, mv201, of, run, sv16, sv201

from chargeverse.avro import Codec
from streams.sessions import apply, new_state

EXAMPLES = 50
CODEC = Codec()  # loading every schema takes a while: once per module


@st.composite
def v16_traffic(draw: Any) -> tuple[list[dict], dict[str, Any]]:
    """One or two 1.6 transactions on one charger: frames in log order, and what was sent for the first one:
    every register reading (t, Wh) in time order (meterStart, samples, meterStop), whether it started offline
    (meterStart 0) and whether its register went backwards or glitched."""
    c = Charger("CP-H")
    tx = draw(st.integers(1, 2**31 - 1))
    lifetime = draw(st.integers(0, 50_000_000))
    offline_zero = draw(st.booleans())
    meter_start = 0 if offline_zero else lifetime
    frames = c.start16(tx, meter_start=meter_start)
    readings = [(0, meter_start)]
    reg, minute, jumps = lifetime, 0, False
    second = draw(st.booleans())
    if second:
        frames += c.start16(tx + 1, connector=2, meter_start=7)
    for _ in range(draw(st.integers(0, 12))):
        minute += draw(st.integers(1, 30))
        kind = draw(st.sampled_from(["Wh", "kWh", "power", "reset", "glitch", "phases"]))
        jumps = jumps or kind in ("reset", "glitch")
        if kind == "reset":
            reg = draw(st.integers(0, 1000))
        elif kind != "power":
            reg += draw(st.integers(0, 400 * 30))
        if kind == "Wh":
            el = mv16(at(minute), sv16(str(reg), context="Sample.Periodic"))
        elif kind == "kWh":
            el = mv16(at(minute), sv16(f"{reg / 1000:.3f}", unit="kWh", context="Sample.Clock"))
        elif kind == "power":
            el = mv16(at(minute), sv16(str(draw(st.integers(0, 22_000))), "Power.Active.Import", unit="W"),
                      sv16(str(draw(st.integers(0, 100))), "SoC", unit="Percent", location="EV"))
        elif kind == "glitch":
            el = mv16(at(minute), sv16(str(reg + 10**9)))
        elif kind == "reset":
            el = mv16(at(minute), sv16(str(reg)))
        else:
            el = mv16(at(minute), sv16(str(reg // 2), phase="L1"), sv16(str(reg - reg // 2), phase="L2"))
        if kind == "kWh":
            readings.append((minute, round(reg / 1000, 3) * 1000))
        elif kind == "glitch":
            readings.append((minute, reg + 10**9))
        elif kind != "power":
            readings.append((minute, reg))
        frames.append(c.meter16(tx, el))
        if second and draw(st.booleans()):
            frames.append(c.meter16(tx + 1, mv16(at(minute), sv16(str(7 + minute * 100))), connector=2))
    minute += 1
    frames += c.stop16(tx, meter_stop=reg, t=at(minute), reason=draw(st.sampled_from([None, "Local", "Remote"])))
    readings.append((minute, reg))
    if second:
        frames += c.stop16(tx + 1, meter_stop=7 + minute * 100, t=at(minute))
    return frames, {"readings": readings, "zero_start": offline_zero, "jumps": jumps}


@st.composite
def v201_traffic(draw: Any) -> list[dict]:
    """One 2.0.1 transaction, its events possibly delivered out of seqNo order, with the charger's retries."""
    c = Charger("CS-H", V201)
    reg = draw(st.integers(0, 50_000_000))
    begin = [mv201(at(0), sv201(float(reg), context="Transaction.Begin"))] if draw(st.booleans()) else None
    events = [c.event201("Started", 0, "h-tx", t=at(0), meter=begin, id_token="TOK", trigger="Authorized",
                         charging_state="EVConnected", offline=draw(st.booleans()))]
    n = draw(st.integers(0, 10))
    for seq in range(1, n + 1):
        reg += draw(st.integers(0, 5000))
        unit = draw(st.sampled_from(["Wh", "kWh", "mult"]))
        value = sv201(float(reg)) if unit == "Wh" else (
            sv201(reg / 1000, unit="kWh") if unit == "kWh" else sv201(reg / 100, multiplier=2))
        events.append(c.event201("Updated", seq, "h-tx", t=at(seq * 5), meter=[mv201(at(seq * 5), value)],
                                 charging_state=draw(st.sampled_from(["Charging", "SuspendedEV", None]))))
    middle = events[1:]
    random.Random(draw(st.integers(0, 2**32))).shuffle(middle)
    retries = [copy.deepcopy(draw(st.sampled_from(events))) for _ in range(draw(st.integers(0, 3)))]
    ended = c.event201("Ended", n + 1, "h-tx", t=at(n * 5 + 5), stopped_reason="EVDisconnected",
                       meter=[mv201(at(n * 5 + 5), sv201(float(reg), context="Transaction.End"))])
    return [f for pair in [events[0], *middle, *retries, ended] for f in pair]


def _rises(readings: list[tuple[int, int]]) -> float:
    values = [wh for _, wh in sorted(readings)]
    return sum(max(0, b - a) for a, b in zip(values, values[1:]))


# ---- ORDER -----------------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES, deadline=None)
@given(v16_traffic())
def test_invariant_ORDER_each_sessions_events_come_out_started_then_samples_then_stopped(traffic: Any) -> None:
    frames, _ = traffic
    _, events = run(frames)
    by_session: dict[str, list[str]] = {}
    for etype, rec in events:
        by_session.setdefault(rec["session_id"], []).append(etype)
    for types in by_session.values():
        assert types[0] == "SessionStarted" and types[-1] == "SessionStopped"
        assert set(types[1:-1]) <= {"SessionMeterSample"}


# ---- IDEMPOTENT ------------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(v16_traffic().map(lambda t: t[0]), v201_traffic()))
def test_invariant_IDEMPOTENT_reapplying_any_frame_twice_changes_nothing(frames: list[dict]) -> None:
    state = new_state()
    for f in frames:
        state, _ = apply(state, f)
        assert apply(state, f) == (state, [])


@settings(max_examples=EXAMPLES, deadline=None)
@given(v16_traffic(), st.integers(0, 2**32))
def test_invariant_IDEMPOTENT_a_message_redelivered_later_emits_nothing_and_changes_no_total(
        traffic: Any, seed: int) -> None:
    frames, _ = traffic
    rnd = random.Random(seed)
    original = rnd.choice(frames)
    c = Charger("CP-H")
    redelivered = c.record(original["direction"], json.loads(original["raw"]), action=original["action"],
                           answers=original["answers"])  # a new frame event with the same message
    at_ = rnd.randrange(frames.index(original) + 1, len(frames) + 1)
    state, events = run(frames)
    state2, events2 = run(frames[:at_] + [redelivered] + frames[at_:])
    assert events2 == events and state2 == state


# ---- DETERMINISTIC ---------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.one_of(v16_traffic().map(lambda t: t[0]), v201_traffic()))
def test_invariant_DETERMINISTIC_a_replay_emits_byte_identical_events(frames: list[dict]) -> None:
    codec = CODEC
    first = [codec.encode(t, r) for t, r in run(frames)[1]]
    again = [codec.encode(t, r) for t, r in run(copy.deepcopy(frames))[1]]
    assert first == again and len({codec.decode(b)[1]["event_id"] for b in first}) == len(first)


# ---- TRACEABLE -------------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.one_of(v16_traffic().map(lambda t: t[0]), v201_traffic()))
def test_invariant_TRACEABLE_every_event_carries_its_frames_raw_and_causation_and_fits_its_schema(
        frames: list[dict]) -> None:
    by_id = {f["event_id"]: f for f in frames}
    codec = CODEC
    for etype, rec in run(frames)[1]:
        cause = by_id[rec["causation_id"]]
        assert rec["raw"] == cause["raw"]
        assert rec["correlation_id"] == rec["session_id"]
        assert codec.decode(codec.encode(etype, rec)) == (etype, rec)


# ---- ENERGY ----------------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES, deadline=None)
@given(v16_traffic())
def test_invariant_ENERGY_never_negative_never_more_than_the_registers_rises(traffic: Any) -> None:
    frames, sent = traffic
    _, events = run(frames)
    stopped = of(events, "SessionStopped")[0]
    assert 0 <= stopped["energy_wh"] <= _rises(sent["readings"])
    samples = [s["energy_wh"] for s in of(events, "SessionMeterSample") if s["session_id"] == stopped["session_id"]]
    assert samples == sorted(samples) and all(e <= stopped["energy_wh"] for e in samples)  # totals never reset
    values = [wh for _, wh in sent["readings"]]
    if not sent["jumps"]:
        assert stopped["energy_wh"] <= max(values) - min(values)  # a register that never goes back
        if sent["zero_start"] and min(values[1:]) > 100_000:  # an offline start's 0 is never billed
            assert stopped["energy_wh"] == max(values[1:]) - min(values[1:])


def test_invariant_ENERGY_a_session_without_readings_has_none() -> None:
    c = Charger()
    req = c.call("StopTransaction", {"transactionId": 3, "timestamp": "2025-03-01T09:00:00Z", "meterStop": 12345})
    [stopped] = of(run([req])[1], "SessionStopped")
    assert stopped["energy_wh"] == 0.0


# ---- PURE STATE ------------------------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(v16_traffic().map(lambda t: t[0]), v201_traffic()))
def test_invariant_PURE_STATE_apply_never_mutates_its_input_and_the_state_round_trips_json(
        frames: list[dict]) -> None:
    state = new_state()
    for f in frames:
        before = copy.deepcopy(state)
        new, out = apply(state, f)
        assert state == before
        thawed = json.loads(json.dumps(state))
        assert apply(thawed, f) == (new, out)  # a state restored from the table behaves the same
        state = new


# ---- NEVER -----------------------------------------------------------------------------------------------------

def test_invariant_NEVER_emits_for_invalid_frames_errors_or_stopped_sessions() -> None:
    c = Charger()
    req, res = c.start16(1)
    invalid = dict(res, valid=False)
    assert apply(new_state(), invalid) == (new_state(), [])
    assert apply(new_state(), c.error(req)) == (new_state(), [])
    state, _ = run([req, res, *c.stop16(1, meter_stop=1_000_050, t=at(5))])
    for late in [res, c.meter16(1, mv16(at(4), sv16("1000040"))), *c.stop16(1, meter_stop=1, t=at(6))]:
        assert apply(state, late) == (state, [])
    c2 = Charger("CS", V201)
    s2, _ = run([*c2.event201("Started", 0, "x", t=at(0)), *c2.event201("Ended", 1, "x", t=at(1))])
    assert run(c2.event201("Updated", 5, "x", t=at(2)), s2) == (s2, [])


def test_the_processor_adapter_keys_state_by_charge_point_and_outputs_by_session() -> None:
    """streams/sessions/processor.py runs this fold on streams/stateful.py: connections pass, outputs go to
    `sessions` keyed by session id."""
    from projections.base import SourcedEvent
    from streams.sessions.processor import fold, key_of

    c = Charger("CP-P")
    frames = [*c.start16(8), *c.stop16(8, meter_stop=1_000_500, t=at(9))]
    state, outputs = None, []
    for i, f in enumerate(frames):
        e = SourcedEvent("ocpp.frames", 0, i, "OcppFrame", f)
        assert key_of(e) == "CP-P"
        state, outs = fold(state, e)
        outputs += outs
    assert [(t, k, et) for t, k, et, _ in outputs] == [("sessions", r["session_id"], et) for _, _, et, r in outputs]
    assert [et for _, _, et, _ in outputs] == ["SessionStarted", "SessionStopped"]
    conn = SourcedEvent("ocpp.frames", 0, 9, "OcppConnection", {"charge_point_id": "CP-P", "state": "CONNECTED"})
    assert fold(state, conn) == (state, [])
