"""The live service's peak floor, pure (streams/smartcharging_service/decide.py "Peak floor"): the uncontrolled daily
peaks it folds from the sessions it sees, the floor a plan uses (fraction x the highest peak of EARLIER closed days,
capped by the grid connection, or fixed, or off), and what a fleet manager notices: on the day after a busy day a
car charges at full power up to the floor instead of being flattened."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from streams.smartcharging import EV, LimitNode, Site, uncontrolled
from streams.smartcharging_service import decide
from streams.smartcharging_service.processor import decide_batch
from test_sc_decisions import ev, site

# 09:00 UTC = 10:00 in Amsterdam (the test site's zone): days below are Amsterdam days
DAY1 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
_n = iter(range(10**9))


def at(t: datetime, **kw: Any) -> dict[str, Any]:
    """test_sc_decisions' event at time `t`, with an id of its own."""
    rec = ev(0, **kw)
    rec.update(event_id=f"pf-{next(_n)}", occurred_at=t, recorded_at=t)
    return rec


def start(t: datetime, sid: str, cp: str = "A") -> tuple[str, dict[str, Any]]:
    conn = 2 if cp == "C" else 1  # the test site's connectors: A#1, B#1 (11 kW), C#2 (7.4 kW)
    return "SessionStarted", at(t, session_id=sid, charge_point_id=cp, transaction_id="7", ocpp_version="ocpp1.6",
                                evse_id=conn, connector_id=conn, id_token="TAG")


def stop(t: datetime, sid: str, cp: str = "A", kwh: float = 22.0) -> tuple[str, dict[str, Any]]:
    return "SessionStopped", at(t, session_id=sid, charge_point_id=cp, transaction_id="7", energy_wh=kwh * 1000)


def meter(t: datetime, sid: str, kwh: float) -> tuple[str, dict[str, Any]]:
    return "SessionMeterSample", at(t, session_id=sid, charge_point_id="A", transaction_id="7", at=t,
                                    energy_wh=kwh * 1000, measurands="[]", raw="[]")


def defined(cap: float = 50.0, **floor: Any) -> tuple[str, dict[str, Any]]:
    rec = site(cap=cap)
    rec.update(occurred_at=DAY1 - timedelta(hours=2), event_id=f"pf-{next(_n)}")
    if floor:
        rec["peak_floor"] = floor
    return "SiteDefined", rec


def schedule(outs: list[decide.Output]) -> dict[str, Any]:
    """The last schedule a batch published."""
    return [o[3] for o in outs if o[2] == "ChargingScheduleComputed"][-1]


def run(states: dict[str, Any], *events: tuple[str, dict[str, Any]]) -> list[decide.Output]:
    return decide_batch(states, list(events))[1]


def busy_day(states: dict[str, Any], day: datetime = DAY1) -> None:
    """Two 11 kW cars plugged in together for three hours, 22 kWh each: uncontrolled peak 22 kW (2 h at 11 kW)."""
    run(states, start(day, "a"), start(day, "b", "B"))
    run(states, stop(day + timedelta(hours=3), "a"), stop(day + timedelta(hours=3), "b", "B"))


# ---- the uncontrolled daily peak ---------------------------------------------------------------------------------
def test_a_days_uncontrolled_peak_is_the_benchs_uncontrolled_baseline_without_a_site_limit() -> None:
    midnight = datetime(2026, 11, 27, tzinfo=timezone.utc)
    entries = [["2026-11-27T10:00:00+00:00", "2026-11-27T13:00:00+00:00", 22.0, 11.0],  # 2 h at 11 kW
               ["2026-11-27T11:07:00+00:00", "2026-11-27T12:00:00+00:00", 30.0, 7.4],  # leaves before it is full
               ["2026-11-27T12:30:00+00:00", "2026-11-27T12:31:00+00:00", 1.0, 22.0]]  # a one-slot session
    got = decide.uncontrolled_day_peak(entries, midnight, 900)
    # the same cars as the bench's loaders would build them (nearest slot from midnight, at least one slot)
    evs = (EV("a", 40, 52, 22.0, 11.0, "site"), EV("b", 44, 48, 30.0, 7.4, "site"), EV("c", 50, 51, 1.0, 22.0, "site"))
    assert got == uncontrolled(Site(evs, LimitNode("site", float("inf")), 52, 0.25)).peak_kw()
    assert got == pytest.approx(11.0 + 7.4)  # 11:00-12:00 both draw; the 22 kW car's 1 kWh takes 4 kW over a slot
    assert decide.uncontrolled_day_peak([], midnight, 900) == 0.0


def test_a_busy_day_closes_into_its_uncontrolled_peak_at_the_first_event_of_a_later_day() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    busy_day(states)
    peaks = states["S"]["peaks"]
    assert peaks["days"] == [] and len(peaks["open"]["2026-11-27"]) == 2  # the day is not over yet
    run(states, start(DAY1 + timedelta(days=1), "c"))
    assert states["S"]["peaks"] == {"days": [["2026-11-27", 22.0, 2]], "open": {}}


def test_a_day_stays_open_while_a_car_that_plugged_in_on_it_is_still_plugged() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    run(states, start(DAY1, "a"), start(DAY1 + timedelta(hours=10), "night", "B"))  # 20:00 local, overnight
    run(states, stop(DAY1 + timedelta(hours=3), "a"))
    run(states, start(DAY1 + timedelta(hours=16), "morning", "C"))  # next local day, the night car still plugged
    assert states["S"]["peaks"]["days"] == []
    run(states, stop(DAY1 + timedelta(hours=20), "night", "B", kwh=44.0))
    assert states["S"]["peaks"]["days"] == [["2026-11-27", 11.0, 2]]  # 11 kW then 11 kW: never both at once


def test_a_car_never_unplugged_closes_its_day_two_days_late_with_what_it_had() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    run(states, start(DAY1, "lost"), meter(DAY1 + timedelta(hours=1), "lost", 5.0))
    run(states, start(DAY1 + timedelta(days=2), "x", "B"))  # day 1 ended 1 day ago: still waiting for the unplug
    assert states["S"]["peaks"]["days"] == []
    run(states, start(DAY1 + timedelta(days=3), "y", "C"))
    [(day, peak, n)] = [d for d in states["S"]["peaks"]["days"] if d[0] == "2026-11-27"]
    assert (peak, n) == (11.0, 1)
    run(states, stop(DAY1 + timedelta(days=3, hours=1), "lost"))  # a late unplug does not reopen the day
    assert "2026-11-27" not in states["S"]["peaks"]["open"]
    assert [d for d in states["S"]["peaks"]["days"] if d[0] == "2026-11-27"] == [["2026-11-27", 11.0, 1]]


def test_the_energy_of_a_day_is_the_drivers_need_if_she_gave_one_else_what_was_delivered() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    needs = at(DAY1 + timedelta(minutes=1), site_id="S", session_id="a", charge_point_id="A", connector_id=1,
               departure_at=DAY1 + timedelta(hours=6), energy_kwh=44.0, mode="asap", target_soc_percent=None,
               battery_kwh=None, soc_percent=None, set_by="d", raw="{}")
    run(states, start(DAY1, "a"), ("ChargingNeedsSet", needs), start(DAY1, "b", "B"))
    run(states, stop(DAY1 + timedelta(hours=6), "a", kwh=10.0), stop(DAY1 + timedelta(hours=6), "b", "B", kwh=11.0))
    assert [e[2] for e in states["S"]["peaks"]["open"]["2026-11-27"]] == [44.0, 11.0]


def test_the_history_is_bounded_to_the_last_60_days() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    for d in range(75):
        t = DAY1 + timedelta(days=d)
        run(states, start(t, f"s{d}"), stop(t + timedelta(hours=1), f"s{d}", kwh=float(d % 7 + 1)))
    days = states["S"]["peaks"]["days"]
    today = date(2026, 11, 27) + timedelta(days=74)
    assert len(days) <= decide.PEAK_HISTORY_DAYS
    assert date.fromisoformat(days[0][0]) >= today - timedelta(days=decide.PEAK_HISTORY_DAYS)
    assert days[-1][0] == (today - timedelta(days=1)).isoformat()  # yesterday is in, today is not closed
    assert len(json.dumps(states["S"]["peaks"])) < 4000  # one small row a day, not the sessions


# ---- the floor a plan uses -----------------------------------------------------------------------------------------
def test_the_floor_is_a_fraction_of_the_highest_uncontrolled_peak_of_earlier_days_only() -> None:
    states: dict[str, Any] = {}
    run(states, defined(mode="history", fraction=0.5))
    busy_day(states)
    # day 2: one car; it is today's, so today's own peak never counts
    outs = run(states, start(DAY1 + timedelta(days=1), "c"), start(DAY1 + timedelta(days=1), "d", "B"))
    floor = schedule(outs)["peak_floor"]
    assert floor == {"mode": "history", "source": "history", "fraction": 0.5, "basis_day": "2026-11-27",
                     "basis_peak_kw": 22.0, "history_days": 1, "grid_kw": 50.0, "kw": 11.0, "capped_by_grid": False}
    st = states["S"]
    # planned for day 1 (a plan made then), the same history gives no floor: day 1 is not before day 1
    assert decide.peak_floor(st, DAY1 + timedelta(hours=1))["source"] == "no_history"
    assert decide.peak_floor(st, DAY1 + timedelta(hours=1))["kw"] == 0.0
    # a later, lighter day does not lower it: the highest earlier day counts
    run(states, stop(DAY1 + timedelta(days=1, hours=1), "c", kwh=1.0), stop(DAY1 + timedelta(days=1, hours=1), "d", "B",
                                                                            kwh=1.0))
    outs = run(states, start(DAY1 + timedelta(days=2), "e"))
    floor = schedule(outs)["peak_floor"]
    assert (floor["kw"], floor["basis_day"], floor["history_days"]) == (11.0, "2026-11-27", 2)


def test_the_first_day_has_no_history_and_plans_from_zero() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    floor = schedule(run(states, start(DAY1, "a")))["peak_floor"]
    assert (floor["source"], floor["kw"], floor["basis_day"], floor["history_days"]) == ("no_history", 0.0, None, 0)


def test_the_floor_is_capped_by_the_grid_connection() -> None:
    states: dict[str, Any] = {}
    run(states, defined(cap=15.0, mode="history", fraction=1.0))
    busy_day(states)  # 22 kW uncontrolled (the limit would have held it, but the floor's basis has no limit)
    sched = schedule(run(states, start(DAY1 + timedelta(days=1), "c")))
    assert sched["peak_floor"]["kw"] == 15.0 and sched["peak_floor"]["capped_by_grid"]
    assert sched["peak_floor"]["basis_peak_kw"] == 22.0 and sched["site_peak_kw"] <= 15.0 + 1e-6


def test_a_fixed_floor_is_used_as_given_and_capped_by_the_grid() -> None:
    states: dict[str, Any] = {}
    run(states, defined(cap=50.0, mode="fixed", kw=7.0))
    floor = schedule(run(states, start(DAY1, "a")))["peak_floor"]
    assert (floor["source"], floor["kw"], floor["capped_by_grid"]) == ("fixed", 7.0, False)
    states = {}
    run(states, defined(cap=5.0, mode="fixed", kw=7.0))
    floor = schedule(run(states, start(DAY1, "a")))["peak_floor"]
    assert (floor["kw"], floor["capped_by_grid"]) == (5.0, True)


def first_slots(outs: list[decide.Output], sid: str) -> list[float]:
    return next(r["power_kw"] for r in schedule(outs)["sessions"] if r["session_id"] == sid)[:4]


def test_after_a_busy_day_a_car_charges_at_full_power_up_to_the_floor_and_off_flattens_it() -> None:
    """What the manager sees: the default front-loads the morning car (little energy still owed when the next cars
    come); `off` spreads its 20 kWh over its 8 h stay at 2.5 kW, as before the floor existed."""
    plans = {}
    for mode in ("history", "off"):
        states: dict[str, Any] = {}
        run(states, defined(mode=mode))
        busy_day(states)
        plans[mode] = run(states, start(DAY1 + timedelta(days=1), "c"))
    assert first_slots(plans["history"], "c") == [11.0] * 4  # 11 kW <= 0.6 x 22 = 13.2 kW: free in the peak stage
    assert schedule(plans["history"])["site_peak_kw"] == pytest.approx(11.0)
    assert first_slots(plans["off"], "c") == pytest.approx([2.5] * 4, abs=1e-3)
    assert schedule(plans["off"])["peak_floor"]["source"] == "off" and schedule(plans["off"])["peak_floor"]["kw"] == 0


def test_a_plan_above_the_floor_still_flattens_what_is_above_it() -> None:
    """Two cars at 11 kW would make 22 kW > 13.2: the peak stage keeps the plan at the floor, not at 22 kW."""
    states: dict[str, Any] = {}
    run(states, defined())
    busy_day(states)
    outs = run(states, start(DAY1 + timedelta(days=1), "c"), start(DAY1 + timedelta(days=1), "d", "B"))
    assert schedule(outs)["site_peak_kw"] == pytest.approx(13.2, abs=1e-3)


def test_a_day_that_closes_during_a_session_re_plans_with_the_new_floor() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    run(states, start(DAY1, "a"), start(DAY1, "b", "B"))
    run(states, stop(DAY1 + timedelta(hours=3), "a"))
    # 00:10 local, day 2: b (plugged in on day 1) is still there, so day 1 is not closed and there is no floor yet
    night = DAY1 + timedelta(hours=14, minutes=10)
    assert schedule(run(states, start(night, "n", "C")))["peak_floor"]["source"] == "no_history"
    # b unplugs: day 1 closes and the plugged night car is re-planned with the new floor at once
    outs = run(states, stop(DAY1 + timedelta(hours=15, minutes=30), "b", "B"))
    assert schedule(outs)["peak_floor"]["kw"] == pytest.approx(13.2)


def test_an_event_that_would_not_re_plan_does_when_it_closes_a_day_that_raises_the_floor() -> None:
    states: dict[str, Any] = {}
    run(states, defined())
    run(states, start(DAY1, "lost"), meter(DAY1 + timedelta(hours=1), "lost", 5.0))  # never unplugs: day 1 open
    y = DAY1 + timedelta(days=2, hours=10)  # 20:00 local on day 3; day 1 is force-closed at 00:00 local on day 4
    assert schedule(run(states, start(y, "y", "B")))["peak_floor"]["source"] == "no_history"
    t = y + timedelta(hours=4, minutes=30)
    on_plan = decide.expected_delivered(states["S"]["sessions"]["y"]["plan"], t)
    assert on_plan is not None
    before = t - timedelta(hours=1)
    quiet = decide.expected_delivered(states["S"]["sessions"]["y"]["plan"], before)
    assert run(states, meter(before, "y", quiet or 0.0)) == []  # on plan and nothing closes: no re-plan
    outs = run(states, meter(t, "y", on_plan))  # on plan, but day 1 closes (forced): the floor rises, re-plan
    assert schedule(outs)["trigger"] == "SessionMeterSample"
    assert schedule(outs)["peak_floor"]["kw"] == pytest.approx(0.6 * 11.0)


# ---- the option, and restarts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, reason", [
    ({"mode": "always"}, "peak_floor.mode"),
    ({"mode": "history", "fraction": 0}, "fraction"),
    ({"mode": "history", "fraction": 1.5}, "fraction"),
    ({"mode": "fixed"}, "kw is needed"),
    ({"mode": "fixed", "kw": -1}, "kw must be"),
])
def test_a_bad_peak_floor_option_is_refused_with_the_reason(option: dict[str, Any], reason: str) -> None:
    limits = [{"node_id": "g", "parent_id": None, "cap_kw": 10}]
    conns = [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}]
    with pytest.raises(decide.SiteInvalid, match=reason):
        decide.check_site(limits, conns, ["energy"], option)
    decide.check_site(limits, conns, ["energy"], None)  # no option: the default


def test_an_event_with_a_bad_option_plans_with_the_default_and_says_so() -> None:
    states: dict[str, Any] = {}
    run(states, defined(mode="sometimes"))
    sched = schedule(run(states, start(DAY1, "a")))
    assert sched["peak_floor"]["mode"] == "history"
    assert any("peak_floor option ignored" in i for i in sched["issues"])


def test_a_state_saved_before_the_floor_existed_keeps_working_and_starts_its_history() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), start(DAY1, "a"))
    old = copy.deepcopy(states)
    del old["S"]["peaks"], old["S"]["site"]["peak_floor"]
    old = json.loads(json.dumps(old, default=str))  # as Postgres stores it
    run(old, stop(DAY1 + timedelta(hours=3), "a"))
    sched = schedule(run(old, start(DAY1 + timedelta(days=1), "c")))
    assert sched["peak_floor"]["source"] == "history" and sched["peak_floor"]["basis_peak_kw"] == 11.0


def test_the_history_survives_a_restart_from_the_stored_state() -> None:
    """The state is JSON in Postgres: a processor that loads it plans exactly as the one that wrote it."""
    states: dict[str, Any] = {}
    run(states, defined())
    busy_day(states)
    run(states, start(DAY1 + timedelta(days=1), "c"))
    reloaded = json.loads(json.dumps(states))
    nxt = start(DAY1 + timedelta(days=1, minutes=5), "d", "B")
    a, b = run(states, nxt), run(reloaded, nxt)
    assert schedule(a)["peak_floor"] == schedule(b)["peak_floor"] and schedule(a)["peak_floor"]["kw"] == 13.2
    assert [o[3]["event_id"] for o in a] == [o[3]["event_id"] for o in b]
