"""Sessions whose stop never comes are closed as "Abandoned" (streams/sessions/fold.py): when a new transaction
starts on the same connector/EVSE, and at the charger's first frame after a long silence about the session."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from session_frames import T0, V201, Charger, at, iso, mv16, mv201, of, sv16, sv201

from streams.sessions import apply, new_state, session_id_for
from streams.sessions.fold import ABANDON_AFTER_S, ABANDONED


def received(frames: list[dict[str, Any]] | dict[str, Any], t: datetime) -> list[dict[str, Any]]:
    """The frames as the edge received them at `t` (the fold's only clock)."""
    frames = frames if isinstance(frames, list) else [frames]
    for f in frames:
        f["occurred_at"] = f["recorded_at"] = t
    return frames


def fold(frames: list[dict[str, Any]], state: dict[str, Any] | None = None,
         **kw: Any) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
    state = state or new_state()
    events: list[tuple[str, dict]] = []
    for f in frames:
        state, out = apply(state, f, **kw)
        events += out
    return state, events


def heartbeat(c: Charger, t: datetime) -> dict[str, Any]:
    return received(c.call("Heartbeat", {}), t)[0]


def test_a_new_transaction_on_the_same_connector_abandons_the_one_whose_stop_was_lost() -> None:
    c = Charger()
    first = [*received(c.start16(1, meter_start=5000, t=at(0)), at(0)),
             *received(c.meter16(1, mv16(at(30), sv16("9000"))), at(30))]
    second = received(c.start16(2, meter_start=20_000, t=at(90), id_tag="OTHER"), at(90))
    state, events = fold(first + second)
    assert [t for t, _ in events] == ["SessionStarted", "SessionMeterSample", "SessionStopped", "SessionStarted"]
    stopped = of(events, "SessionStopped")[0]
    assert (stopped["session_id"], stopped["reason"], stopped["energy_wh"], stopped["meter_stop_wh"]) == (
        session_id_for("CP-1", 1), ABANDONED, 4000.0, None)
    assert iso(stopped["stopped_at"]) == iso(at(30))  # its last activity, not the new start
    assert list(state["open"]) == ["2"] and "1" in state["closed"]
    # the lost stop turns up after all: the session is final, nothing changes
    late = received(c.stop16(1, meter_stop=12_000, t=at(60)), at(120))
    assert fold(late, state) == (state, [])


def test_transactions_on_other_connectors_are_left_alone() -> None:
    c = Charger()
    frames = [*received(c.start16(1, t=at(0), connector=1), at(0)),
              *received(c.start16(2, t=at(5), connector=2, id_tag="B"), at(5))]
    state, events = fold(frames)
    assert of(events, "SessionStopped") == [] and sorted(state["open"]) == ["1", "2"]


def test_201_a_started_event_on_the_same_evse_abandons_the_open_transaction() -> None:
    c = Charger(version=V201)
    a = received(c.event201("Started", 0, "A", t=at(0), trigger="Authorized", id_token="T1", evse=(1, 1),
                            meter=[mv201(at(0), sv201(100.0, "Energy.Active.Import.Register",
                                                      context="Transaction.Begin"))]), at(0))
    a += received(c.event201("Updated", 1, "A", t=at(20), evse=(1, 1),
                             meter=[mv201(at(20), sv201(2100.0, "Energy.Active.Import.Register"))]), at(20))
    other_evse = received(c.event201("Started", 0, "B", t=at(25), trigger="Authorized", id_token="T2",
                                     evse=(2, 1)), at(25))
    same_evse = received(c.event201("Started", 0, "C", t=at(40), trigger="Authorized", id_token="T3",
                                    evse=(1, 1)), at(40))
    state, events = fold(a + other_evse + same_evse)
    stopped = of(events, "SessionStopped")
    assert [(s["transaction_id"], s["reason"], s["energy_wh"]) for s in stopped] == [("A", ABANDONED, 2000.0)]
    assert sorted(state["open"]) == ["B", "C"]


def test_a_session_silent_for_longer_than_the_limit_is_closed_at_the_chargers_next_frame() -> None:
    c = Charger()
    start = received(c.start16(7, meter_start=0, t=T0), T0)
    sample = received(c.meter16(7, mv16(T0 + timedelta(hours=10), sv16("15000"))), T0 + timedelta(hours=10))
    state, _ = fold(start + sample)
    limit = timedelta(seconds=ABANDON_AFTER_S)
    # heartbeats keep the connection alive but say nothing about the session: the silence is counted from the
    # last message about it (the sample at +10 h), so just inside the limit nothing happens...
    state, events = fold([heartbeat(c, T0 + timedelta(hours=10) + limit - timedelta(minutes=1))], state)
    assert events == [] and list(state["open"]) == ["7"]
    # ...and the first frame past it closes the session at its last activity, billing what the readings showed
    state, events = fold([heartbeat(c, T0 + timedelta(hours=10) + limit + timedelta(minutes=1))], state)
    [(etype, stopped)] = events
    assert (etype, stopped["reason"], stopped["energy_wh"], stopped["meter_stop_wh"]) == (
        "SessionStopped", ABANDONED, 15000.0, None)
    assert iso(stopped["stopped_at"]) == iso(T0 + timedelta(hours=10))
    assert state["open"] == {} and state["closed"] == ["7"]


def test_the_silence_limit_is_a_setting_and_zero_switches_it_off() -> None:
    c = Charger()
    start = received(c.start16(8, t=T0), T0)
    later = heartbeat(c, T0 + timedelta(days=30))
    _, events = fold(start + [later], abandon_after_s=0)
    assert events[1:] == []
    _, events = fold(start + [later], abandon_after_s=3600)
    assert [e["reason"] for e in of(events, "SessionStopped")] == [ABANDONED]


def test_abandonment_is_deterministic_on_replay() -> None:
    c = Charger()
    frames = [*received(c.start16(1, t=at(0)), at(0)), *received(c.start16(2, t=at(50), id_tag="X"), at(50)),
              heartbeat(c, at(50) + timedelta(seconds=ABANDON_AFTER_S + 60))]
    once, twice = fold(frames), fold(frames)
    assert once == twice
    assert [(e["transaction_id"], e["reason"]) for e in of(once[1], "SessionStopped")] == [
        ("1", ABANDONED), ("2", ABANDONED)]
    assert len({e["event_id"] for _, e in once[1]}) == len(once[1])


def test_invalid_frames_and_our_own_answers_do_not_start_the_clock() -> None:
    c = Charger()
    start = received(c.start16(9, t=T0), T0)
    bad = received(c.record("IN", [2, "x", "Heartbeat", {"junk": 1}], action="Heartbeat", valid=False),
                   T0 + timedelta(days=10))
    out = received(c.record("OUT", [3, "y", {}], action="Heartbeat"), T0 + timedelta(days=10))
    state, events = fold(start + bad + out)
    assert of(events, "SessionStopped") == [] and list(state["open"]) == ["9"]
