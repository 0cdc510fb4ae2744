"""Occupancy forecasts end to end, all real: a station's connector status events on `stations` (as the stations
processor writes them from StatusNotifications; published here with their times so that a week of evenings takes a
second) -> the forecasts processor learns the station's hourly occupancy online -> StationOccupancyForecast on
`forecasts` -> `pg.forecasts` -> `GET /api/stations/{id}/forecast` says the station is usually busy at 17:00.
Then the worker is restarted: the processor resumes from its checkpoint and replays only what came after it, so
the model has learned every closed hour exactly once (none lost, none twice)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.settings import get_settings
from chargeverse.tokens import issue
from support import wait_for

pytestmark = pytest.mark.integration
DAY0 = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday; 16:00 UTC is 17:00 in Amsterdam (the default zone)


def _status(p: EventProducer, sid: str, t: datetime, conn: int, status: str) -> None:
    rec = envelope(source="test:stations", correlation_id=f"conn-{sid}", occurred_at=t)
    rec.update(station_id=sid, connector_id=conn, status=status, error_code="NoError", info=None,
               vendor_error_code=None)
    p.publish_sync("stations", sid, "ConnectorStatusChanged", rec)


def _evenings(p: EventProducer, sid: str, days: range) -> None:
    """Both connectors occupied 16:00-18:00 UTC every day, one connector 07:00-08:00."""
    for d in days:
        day = DAY0 + timedelta(days=d)
        _status(p, sid, day + timedelta(hours=7), 1, "Charging")
        _status(p, sid, day + timedelta(hours=8), 1, "Available")
        _status(p, sid, day + timedelta(hours=16), 1, "Preparing")
        _status(p, sid, day + timedelta(hours=16, minutes=1), 2, "Charging")
        _status(p, sid, day + timedelta(hours=18), 1, "Available")
        _status(p, sid, day + timedelta(hours=18), 2, "Available")


def _closed_hours(last: datetime) -> int:
    """Hours the station's model has closed from its first status (day 0 07:00) to `last`."""
    return int((last - (DAY0 + timedelta(hours=7))).total_seconds() // 3600)


def _forecast(api: str, sid: str, headers: dict[str, str], learned: int) -> dict | None:
    r = httpx.get(f"{api}/api/stations/{sid}/forecast", headers=headers, timeout=10)
    return r.json() if r.status_code == 200 and r.json()["hours_learned"] == learned else None


def _checkpoint() -> tuple[datetime, dict] | None:
    with psycopg.connect(get_settings().postgres_dsn.get_secret_value(), autocommit=True) as conn:
        return conn.execute("SELECT saved_at, offsets FROM forecast_checkpoints WHERE processor = 'forecasts'"
                            ).fetchone()


def test_status_events_become_a_served_forecast_that_survives_a_restart(platform, unique) -> None:  # noqa: ANN001
    sid = f"FC-{unique}"
    driver = {"Authorization": f"Bearer {issue(f'd-{unique}', ['driver'])}"}
    assert httpx.get(f"{platform.api}/api/stations/{sid}/forecast", headers=driver).status_code == 404
    p = EventProducer()
    try:
        _evenings(p, sid, range(8))
        last = DAY0 + timedelta(days=8, hours=10)
        _status(p, sid, last, 1, "Available")  # closes the hours up to day 8, 10:00
        fc = wait_for("the forecast served", lambda: _forecast(platform.api, sid, driver, _closed_hours(last)),
                      timeout=60)
        assert fc["time_zone"] == "Europe/Amsterdam" and fc["connectors"] == 2 and len(fc["hours"]) == 24
        by_hour = {h["hour"]: h for h in fc["hours"]}
        assert by_hour["17:00"]["busy"] and by_hour["18:00"]["busy"]  # both connectors every evening
        assert by_hour["17:00"]["expected_occupied"] > 1.5
        assert by_hour["03:00"]["expected_occupied"] < 0.2 and not by_hour["03:00"]["busy"]
        assert fc["summary"].startswith("usually busy at 17:00")
        assert httpx.get(f"{platform.api}/api/stations/{sid}/forecast").status_code == 401

        before = wait_for("a checkpoint with offsets", lambda: (lambda r: r if r and r[1] else None)(_checkpoint()))
        platform.restart("worker-processors")
        # the processor resumed from its checkpoint, replaying only what came after it
        log = (platform.logs / "worker-processors.log").read_text()
        assert "forecasts: resuming from checkpoint" in log.split("Signal received")[-1]

        _evenings(p, sid, range(8, 9))
        later = DAY0 + timedelta(days=9, hours=10)
        _status(p, sid, later, 1, "Available")
        fc2 = wait_for("the forecast after the restart",
                       lambda: _forecast(platform.api, sid, driver, _closed_hours(later)), timeout=90)
        # every closed hour learned exactly once across the restart: no hour lost, none learned twice
        assert fc2["hours_learned"] == _closed_hours(later) == fc["hours_learned"] + 24
        assert {h["hour"]: h["busy"] for h in fc2["hours"]}["17:00"]
        after = wait_for("a newer checkpoint", lambda: (lambda r: r if r and r[0] > before[0] else None)(
            _checkpoint()))
        stations_read = lambda cp: sum(o for k, o in cp.items() if k.startswith("stations/"))  # noqa: E731
        assert stations_read(after[1]) > stations_read(before[1])  # the checkpoint moved on past the new events
    finally:
        p.close()
