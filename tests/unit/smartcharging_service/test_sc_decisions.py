"""The smart-charging processor's decisions, pure: routing, folding, re-plan triggers, plans within the limit tree,
profiles only when a plan changes, deterministic outputs.  Each invariant of streams/smartcharging_service/decide.py
is named by a test here."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chargeverse.ocpp_commands import validate
from streams.smartcharging_service import decide
from streams.smartcharging_service.processor import decide_batch

T0 = datetime(2026, 11, 27, 10, 7, tzinfo=timezone.utc)


def ev(i: int, **kw: Any) -> dict[str, Any]:
    rec = {"event_id": f"e-{i}", "occurred_at": T0 + timedelta(minutes=i), "recorded_at": T0, "source": "test",
           "correlation_id": "c", "causation_id": None}
    rec.update(kw)
    return rec


def site(i: int = 0, cap: float = 11.0, panel: float | None = None, **kw: Any) -> dict[str, Any]:
    limits = [{"node_id": "grid", "parent_id": None, "cap_kw": cap}]
    node = "grid"
    if panel is not None:
        limits.append({"node_id": "panel", "parent_id": "grid", "cap_kw": panel})
        node = "panel"
    rec = dict(site_id="S", name="Depot", fleet_id=None, owner_account_id="m", time_zone="Europe/Amsterdam",
               slot_minutes=15, horizon_hours=24, objectives=["energy", "peak", "asap"], limits=limits,
               connectors=[{"charge_point_id": "A", "connector_id": 1, "node_id": node, "max_kw": 11.0, "phases": 3,
                            "unit": "W"},
                           {"charge_point_id": "B", "connector_id": 1, "node_id": node, "max_kw": 11.0, "phases": 3,
                            "unit": "W"},
                           {"charge_point_id": "C", "connector_id": 2, "node_id": "grid", "max_kw": 7.4, "phases": 1,
                            "unit": "A"}],
               default_departure_hours=8.0, default_energy_kwh=20.0, defined_by="m", raw="{}")
    rec.update(kw)
    return ev(i, **rec)


def started(i: int, sid: str, cp: str, version: str = "ocpp1.6", conn: int = 1, tx: str = "7") -> dict[str, Any]:
    return ev(i, session_id=sid, charge_point_id=cp, transaction_id=tx, ocpp_version=version, evse_id=conn,
              connector_id=conn, id_token="TAG")


def needs(i: int, sid: str, cp: str = "A", hours: float | None = 2.0, kwh: float | None = 15.0,
          mode: str = "asap") -> dict[str, Any]:
    return ev(i, site_id="S", session_id=sid, charge_point_id=cp, connector_id=1,
              departure_at=T0 + timedelta(hours=hours) if hours is not None else None, energy_kwh=kwh, mode=mode,
              target_soc_percent=None, battery_kwh=None, soc_percent=None, set_by="d", raw="{}")


def meter(i: int, sid: str, wh: float) -> dict[str, Any]:
    return ev(i, session_id=sid, charge_point_id="A", transaction_id="7", at=T0, energy_wh=wh, measurands="[]",
              raw="[]")


def commands(outs: list[decide.Output]) -> list[dict[str, Any]]:
    return [o[3] for o in outs if o[2] == "OcppCommandRequested"]


def schedule(outs: list[decide.Output]) -> dict[str, Any]:
    [s] = [o[3] for o in outs if o[2] == "ChargingScheduleComputed"]
    return s


def run(states: dict[str, Any], *events: tuple[str, dict[str, Any]]) -> list[decide.Output]:
    return decide_batch(states, list(events))[1]


def limits_of(cmd: dict[str, Any]) -> tuple[datetime, int, list[tuple[int, float]]]:
    p = json.loads(cmd["payload"])
    prof = p.get("csChargingProfiles") or p["chargingProfile"]
    sched = prof["chargingSchedule"]
    sched = sched[0] if isinstance(sched, list) else sched
    start = datetime.fromisoformat(sched["startSchedule"].replace("Z", "+00:00"))
    return start, sched["duration"], [(x["startPeriod"], x["limit"]) for x in sched["chargingSchedulePeriod"]]


def limit_at(cmd: dict[str, Any], t: datetime) -> float:
    start, duration, periods = limits_of(cmd)
    off = (t - start).total_seconds()
    if not 0 <= off < duration:
        return 0.0
    return [lim for s, lim in periods if s <= off][-1]


# ---- site definition -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("limits, connectors, objectives, reason", [
    ([], [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}], ["energy"], "root"),
    ([{"node_id": "g", "parent_id": None, "cap_kw": 10}, {"node_id": "h", "parent_id": None, "cap_kw": 5}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}], ["energy"], "exactly one root"),
    ([{"node_id": "g", "parent_id": "p", "cap_kw": 10}, {"node_id": "p", "parent_id": None, "cap_kw": 5}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}], ["energy"], "before it is defined"),
    ([{"node_id": "g", "parent_id": None, "cap_kw": -1}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}], ["energy"], ">= 0"),
    ([{"node_id": "g", "parent_id": None, "cap_kw": 10}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "x", "max_kw": 11.0}], ["energy"], "unknown node"),
    ([{"node_id": "g", "parent_id": None, "cap_kw": 10}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}] * 2, ["energy"], "twice"),
    ([{"node_id": "g", "parent_id": None, "cap_kw": 10}],
     [{"charge_point_id": "A", "connector_id": 1, "node_id": "g", "max_kw": 11.0}], ["speed"], "objectives"),
])
def test_an_impossible_site_is_refused_with_the_reason(limits, connectors, objectives, reason) -> None:  # noqa: ANN001
    with pytest.raises(decide.SiteInvalid, match=reason):
        decide.check_site(limits, connectors, objectives)


def test_the_limit_tree_has_one_leaf_per_connector_capped_at_its_rating() -> None:
    st = decide.new_state(site(panel=8.0))
    t = decide.tree(st["site"])
    assert t.id == "grid" and t.cap_kw == 11.0
    caps = {n.id: n.cap_kw for n in t.walk()}
    assert caps["A#1"] == 11.0 and caps["C#2"] == 7.4 and caps["panel"] == 8.0
    assert t.ancestors()["B#1"] == ("B#1", "panel", "grid")


# ---- routing -----------------------------------------------------------------------------------------------------
def test_events_are_routed_to_the_site_of_their_connector_session_or_charger() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(1, "s1", "A")))
    ix = decide.Index.of(states)
    assert ix.route("SessionStarted", started(2, "s2", "B")) == ["S"]
    assert ix.route("SessionStarted", started(2, "s3", "A", conn=2)) == []  # connector 2 of A is not on the site
    assert ix.route("SessionStarted", started(2, "s4", "ELSEWHERE")) == []
    assert ix.route("SessionMeterSample", meter(3, "s1", 100)) == ["S"]
    assert ix.route("SessionMeterSample", meter(3, "unknown", 100)) == []
    assert ix.route("ConnectorStatusChanged", ev(4, station_id="C", connector_id=0, status="Faulted")) == ["S"]


# ---- invariants --------------------------------------------------------------------------------------------------
def test_a_site_plan_never_exceeds_any_node_of_the_limit_tree_in_any_slot() -> None:
    states: dict[str, Any] = {}
    outs = run(states, ("SiteDefined", site(cap=11.0, panel=6.0)), ("SessionStarted", started(1, "s1", "A")),
               ("SessionStarted", started(2, "s2", "B", version="ocpp2.0.1", tx="tx-b")),
               ("SessionStarted", started(3, "s3", "C", conn=2)),
               ("ChargingNeedsSet", needs(4, "s1", hours=1.0, kwh=30.0)))
    sched = [o[3] for o in outs if o[2] == "ChargingScheduleComputed"][-1]
    power = {s["session_id"]: s["power_kw"] for s in sched["sessions"]}
    assert set(power) == {"s1", "s2", "s3"}  # every plugged car is in the plan
    for t in range(len(power["s1"])):
        assert power["s1"][t] + power["s2"][t] <= 6.0 + 1e-6  # the panel
        assert power["s1"][t] + power["s2"][t] + power["s3"][t] <= 11.0 + 1e-6  # the grid connection
        assert power["s3"][t] <= 7.4 + 1e-6  # the connector's rating
    assert sched["infeasible"] and any("s1" in i and "fit before departure" in i for i in sched["issues"])


def test_the_profiles_chargers_receive_never_add_up_to_more_than_the_site_limit() -> None:
    states: dict[str, Any] = {}
    outs = run(states, ("SiteDefined", site(cap=11.0)), ("SessionStarted", started(1, "s1", "A")),
               ("SessionStarted", started(2, "s2", "B", version="ocpp2.0.1", tx="tx-b")),
               ("ChargingNeedsSet", needs(3, "s1", hours=2.0, kwh=15.0)))
    latest: dict[str, dict[str, Any]] = {}
    for c in commands(outs):
        latest[c["charge_point_id"]] = c
    assert set(latest) == {"A", "B"}
    start = limits_of(latest["A"])[0]
    for k in range(0, 8 * 4):
        t = start + timedelta(minutes=15 * k)
        assert limit_at(latest["A"], t) + limit_at(latest["B"], t) <= 11_000.0
    # the car that must leave in two hours gets enough to have its 15 kWh by then
    assert limit_at(latest["A"], start) >= 15_000 / 2.25 - 100


def test_profiles_match_each_chargers_protocol_and_validate_against_the_official_schema() -> None:
    states: dict[str, Any] = {}
    outs = run(states, ("SiteDefined", site()), ("SessionStarted", started(1, "s1", "A", tx="42")),
               ("SessionStarted", started(2, "s2", "B", version="ocpp2.0.1", tx="tx-b")),
               ("SessionStarted", started(3, "s3", "C", conn=2)))
    by_cp: dict[str, dict[str, Any]] = {}
    for c in commands(outs):
        by_cp[c["charge_point_id"]] = c
        assert c["action"] == "SetChargingProfile"
        assert validate("SetChargingProfile", json.loads(c["payload"]), c["ocpp_version"]) == c["ocpp_version"]
    a, b, c3 = (json.loads(by_cp[k]["payload"]) for k in "ABC")
    assert a["csChargingProfiles"]["transactionId"] == 42 and a["connectorId"] == 1
    assert a["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
    assert b["chargingProfile"]["transactionId"] == "tx-b" and b["evseId"] == 1
    assert by_cp["B"]["ocpp_version"] == "ocpp2.0.1"
    assert c3["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] == "A"  # the connector's unit
    assert a["csChargingProfiles"]["chargingProfileId"] == decide.profile_id("s1")  # stable: replaces the last one


def test_a_meter_reading_on_plan_updates_the_energy_but_does_not_replan() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(0, "s1", "A")))
    plan = states["S"]["sessions"]["s1"]["plan"]
    at = T0 + timedelta(minutes=40)
    expected = decide.expected_delivered(plan, at)
    assert expected is not None and expected > 0
    on = meter(40, "s1", expected * 1000 + 100)  # 0.1 kWh off: within the tolerance
    assert run(states, ("SessionMeterSample", on)) == []
    assert states["S"]["sessions"]["s1"]["delivered_kwh"] == pytest.approx(expected + 0.1)
    off = meter(41, "s1", 0.0)  # the car took nothing: off plan
    outs = run(states, ("SessionMeterSample", off))
    assert schedule(outs)["trigger"] == "SessionMeterSample"


def test_a_charger_gets_a_new_profile_only_when_its_plan_changed() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(0, "s1", "A")))
    # the same needs again: re-plans (a schedule is published) but the charger's profile is unchanged
    same = run(states, ("ChargingPriceSignalSet", ev(1, site_id="S", currency="EUR", set_by="m", points=[
        {"starts_at": T0 - timedelta(hours=1), "price_per_kwh": "0.20", "carbon_g_per_kwh": None}])))
    assert commands(same) == [] and schedule(same)["sessions"][0]["command_id"] is None
    changed = run(states, ("ChargingNeedsSet", needs(2, "s1", hours=3.0, kwh=18.0)))
    assert len(commands(changed)) == 1


def test_a_faulted_connector_gets_no_power_and_its_car_is_flagged() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(0, "s1", "A")))
    outs = run(states, ("ConnectorStatusChanged", ev(5, station_id="A", connector_id=1, status="Faulted",
                                                     error_code="GroundFailure")))
    sched = schedule(outs)
    assert sched["trigger"] == "ConnectorStatusChanged" and sched["infeasible"]
    assert max(sched["sessions"][0]["power_kw"]) == 0.0
    back = run(states, ("ConnectorStatusChanged", ev(6, station_id="A", connector_id=1, status="Charging",
                                                     error_code="NoError")))
    assert max(schedule(back)["sessions"][0]["power_kw"]) > 0


def test_a_stopped_session_frees_its_share_for_the_others() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site(cap=11.0)), ("SessionStarted", started(0, "s1", "A")),
        ("SessionStarted", started(1, "s2", "B")), ("ChargingNeedsSet", needs(2, "s2", "B", hours=1.0, kwh=40.0)))
    outs = run(states, ("SessionStopped", ev(3, session_id="s1", charge_point_id="A", energy_wh=1000.0)))
    sched = schedule(outs)
    assert [s["session_id"] for s in sched["sessions"]] == ["s2"]
    assert sched["sessions"][0]["power_kw"][0] == pytest.approx(11.0, abs=1e-3)


def test_needs_that_arrive_before_the_session_start_are_kept_and_applied() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("ChargingNeedsSet", needs(1, "s1", hours=1.0, kwh=5.0)))
    outs = run(states, ("SessionStarted", started(2, "s1", "A")))
    row = schedule(outs)["sessions"][0]
    assert row["need_source"] == "driver" and row["requested_kwh"] == 5.0
    assert row["departure_at"] == T0 + timedelta(hours=1)


def test_a_forecast_replaces_the_defaults_only_once_the_driver_has_history() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(0, "s1", "A")))
    fc = dict(session_id="s1", station_id="A", started_at=T0, predicted_kwh=9.0, predicted_duration_h=3.0,
              expected_unplug_at=T0, model="m")
    assert run(states, ("SessionForecast", ev(1, **fc, user_sessions_seen=1))) == []  # too little history
    outs = run(states, ("SessionForecast", ev(2, **fc, user_sessions_seen=5)))
    row = schedule(outs)["sessions"][0]
    assert row["need_source"] == "forecast" and row["requested_kwh"] == 9.0


def test_cheapest_mode_moves_charging_into_the_cheap_hours() -> None:
    states: dict[str, Any] = {}
    start = decide.slot_floor(T0, 900)
    points = [{"starts_at": start + timedelta(hours=h), "price_per_kwh": "0.40" if h < 3 else "0.10",
               "carbon_g_per_kwh": None} for h in range(8)]
    run(states, ("SiteDefined", site()), ("SessionStarted", started(0, "s1", "A")),
        ("ChargingPriceSignalSet", ev(1, site_id="S", currency="EUR", set_by="m", points=points)))
    outs = run(states, ("ChargingNeedsSet", needs(2, "s1", hours=7.0, kwh=10.0, mode="cheapest")))
    sched = schedule(outs)
    assert sched["objectives"][:2] == ["energy", "cost"]
    power = sched["sessions"][0]["power_kw"]
    assert sum(power[:12]) * 0.25 < 0.01  # nothing in the expensive first three hours
    assert sum(power) * 0.25 == pytest.approx(10.0, rel=1e-3)


def test_time_never_runs_backwards_for_a_site() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(30, "s1", "A")))
    late = needs(1, "s1", hours=4.0)  # occurred before the last event the site saw
    outs = run(states, ("ChargingNeedsSet", late))
    assert schedule(outs)["plan_start"] == decide.slot_floor(T0 + timedelta(minutes=30), 900)


def test_processing_the_same_events_twice_publishes_the_same_ids_and_plans() -> None:
    events = [("SiteDefined", site()), ("SessionStarted", started(1, "s1", "A")),
              ("SessionStarted", started(2, "s2", "B", version="ocpp2.0.1", tx="tx-b"))]
    a = run({}, *copy.deepcopy(events))
    b = run({}, *copy.deepcopy(events))
    assert [o[3]["event_id"] for o in a] == [o[3]["event_id"] for o in b]
    assert [o[3].get("payload") for o in a] == [o[3].get("payload") for o in b]
    assert all(c["expires_at"] > c["occurred_at"] for c in commands(a))


def test_events_of_unknown_sites_and_chargers_change_nothing() -> None:
    states: dict[str, Any] = {}
    assert run(states, ("SessionStarted", started(1, "s1", "A")), ("ChargingNeedsSet", needs(2, "s1"))) == []
    assert states == {}


def test_redefining_a_site_drops_sessions_of_connectors_it_no_longer_powers() -> None:
    states: dict[str, Any] = {}
    run(states, ("SiteDefined", site()), ("SessionStarted", started(1, "s1", "A")),
        ("SessionStarted", started(2, "s2", "B")))
    smaller = site(3, connectors=[{"charge_point_id": "B", "connector_id": 1, "node_id": "grid", "max_kw": 11.0,
                                   "phases": 3, "unit": "W"}])
    outs = run(states, ("SiteDefined", smaller))
    assert [s["session_id"] for s in schedule(outs)["sessions"]] == ["s2"]
    assert schedule(outs)["site_version"] == "e-3"
