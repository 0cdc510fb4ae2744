"""The smart-charging site's peak floor end to end, all real (broker, Postgres, the worker's smartcharging processor,
the pg.smartcharging projection, the API): a fleet manager defines a depot through the API with the peak floor of
the bench (`history`, 0.6); on day 1 two 11 kW cars plug in together and take 22 kWh each (uncontrolled peak 22 kW)
and, with no earlier day, the plan has no floor; on day 2 a car plugs in and its plan uses 0.6 x 22 = 13.2 kW as
the floor, says it comes from day 1, and charges the car at its full 11 kW instead of spreading it over its stay.

The sessions are published on `sessions` with their times (as the sessions processor writes them), on two future
local days, so two days take a second; the chargers are registered but not connected (their profiles are not what
is tested here: tests/integration/test_smartcharging_flow.py delivers them).  Between the two days the worker that
runs the processor is restarted: day 1's sessions are remembered through the site's state in Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.tokens import issue
from support import events, wait_for
from test_ocpp_support import dsn, register_charger

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Amsterdam")


def _day_in_state(site_id: str, day: str) -> list[Any] | None:
    """The unplugged sessions of `day` the processor keeps for that day's uncontrolled peak (its saved state)."""
    with psycopg.connect(dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT state FROM processor_state WHERE processor = 'smartcharging' AND key = %s",
                           (site_id,)).fetchone()
    return row[0].get("peaks", {}).get("open", {}).get(day) if row else None


def _start(p: EventProducer, sid: str, cp: str, t: datetime) -> None:
    rec = envelope(source="test:sessions", correlation_id=sid, occurred_at=t)
    rec.update(session_id=sid, charge_point_id=cp, transaction_id=sid[-6:], ocpp_version="ocpp1.6", evse_id=None,
               connector_id=1, id_token=None, started_at=t, raw="{}")
    p.publish_sync("sessions", sid, "SessionStarted", rec)


def _stop(p: EventProducer, sid: str, cp: str, started: datetime, t: datetime, kwh: float) -> None:
    rec = envelope(source="test:sessions", correlation_id=sid, occurred_at=t)
    rec.update(session_id=sid, charge_point_id=cp, transaction_id=sid[-6:], ocpp_version="ocpp1.6", evse_id=None,
               connector_id=1, started_at=started, stopped_at=t, meter_start_wh=0.0, meter_stop_wh=kwh * 1000,
               energy_wh=kwh * 1000, reason="Local", baseline_inferred=False, raw="{}")
    p.publish_sync("sessions", sid, "SessionStopped", rec)


def test_the_second_days_plan_uses_the_first_days_uncontrolled_peak_as_its_floor(platform, unique) -> None:  # noqa: ANN001,E501
    a, b = register_charger("PFA", unique), register_charger("PFB", unique)
    manager = {"Authorization": f"Bearer {issue(f'fm-pf-{unique}', ['fleet_manager'])}"}
    site_id = f"pf-{unique}"
    body = {"name": "Depot", "time_zone": "Europe/Amsterdam", "slot_minutes": 15, "horizon_hours": 24,
            "limits": [{"node_id": "grid", "parent_id": None, "cap_kw": 50}],
            "connectors": [{"charge_point_id": a.station_id, "connector_id": 1, "node_id": "grid", "max_kw": 11},
                           {"charge_point_id": b.station_id, "connector_id": 1, "node_id": "grid", "max_kw": 11}],
            "peak_floor": {"mode": "history", "fraction": 0.6}}
    url = f"{platform.api}/api/smartcharging/sites/{site_id}"
    bad = dict(body, peak_floor={"mode": "fixed"})
    r = httpx.put(url, headers=manager, json=bad, timeout=30)
    assert r.status_code == 422 and "kw is needed" in r.text, r.text

    def define() -> httpx.Response | None:
        got = httpx.put(url, headers=manager, json=body, timeout=30)
        return got if got.status_code != 422 else None  # 422 "unknown chargers" until the stations projection has them

    r = wait_for("the site defined", define)
    assert r.status_code == 201, r.text
    assert r.json()["peak_floor"] == {"mode": "history", "fraction": 0.6, "kw": None}

    def schedule(pred: Any) -> Any:
        def check() -> dict[str, Any] | None:
            s = httpx.get(url, headers=manager, timeout=10).json()["schedule"]
            return s if s and pred(s) else None
        return wait_for("the site's plan", check, 60)

    # day 1 (tomorrow, local): two cars from 10:00 to 13:00, 22 kWh each
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)
    day1 = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10, tzinfo=TZ).astimezone(timezone.utc)
    s1, s2, s3 = f"pf1-{unique}", f"pf2-{unique}", f"pf3-{unique}"
    p = EventProducer()
    try:
        _start(p, s1, a.station_id, day1)
        _start(p, s2, b.station_id, day1 + timedelta(minutes=1))
        first = schedule(lambda s: {r["session_id"] for r in s["sessions"]} == {s1, s2})
        assert first["peak_floor"]["source"] == "no_history" and first["peak_floor"]["kw"] == 0.0
        _stop(p, s1, a.station_id, day1, day1 + timedelta(hours=3), 22.0)
        _stop(p, s2, b.station_id, day1 + timedelta(minutes=1), day1 + timedelta(hours=3), 22.0)
        wait_for("day 1's sessions saved", lambda: (lambda o: o if o and len(o) == 2 else None)(
            _day_in_state(site_id, tomorrow.isoformat())))
        platform.restart("worker-processors")
        # day 2, 09:00 local: one car with the site's defaults (20 kWh over 8 h)
        day2 = day1 + timedelta(days=1, hours=-1)
        _start(p, s3, a.station_id, day2)
    finally:
        p.close()
    second = schedule(lambda s: [r["session_id"] for r in s["sessions"]] == [s3])
    floor = second["peak_floor"]
    assert floor["source"] == "history" and floor["basis_day"] == tomorrow.isoformat()
    assert floor["basis_peak_kw"] == pytest.approx(22.0) and floor["kw"] == pytest.approx(13.2)
    assert floor["grid_kw"] == 50.0 and not floor["capped_by_grid"] and floor["history_days"] == 1
    # below the floor, charging costs no peak: the car gets its full 11 kW first, not 20 kWh / 8 h = 2.5 kW
    assert second["sessions"][0]["power_kw"][:4] == [11.0] * 4 and second["site_peak_kw"] == pytest.approx(11.0)
    # the decision is on the log with the floor it used
    # (day 2's car may be planned more than once -- a later event re-plans it, and a restarted worker may decide
    # again what it had not committed -- so every such decision must carry the floor)
    logged = [r for _, r in events("smartcharging", lambda t, r: t == "ChargingScheduleComputed"
                                   and r["site_id"] == site_id and [x["session_id"] for x in r["sessions"]] == [s3])]
    assert logged
    assert all(r["peak_floor"]["kw"] == pytest.approx(13.2) and r["peak_floor"]["basis_day"] == tomorrow.isoformat()
               for r in logged), [r["peak_floor"] for r in logged]
