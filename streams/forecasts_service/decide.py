"""Pure decisions of the forecasts processor: fold station and session events into the online models and say
what to publish.  No I/O: the models are plain Python objects (checkpointed by processor.py), time comes from the
events.

Invariants (each named by a test in tests/unit/forecasts_service/):
- Occupancy: every status event of a connector (>= 1) updates its station's tracker and yields one
  StationOccupancyForecast for that station; connector 0 (the whole charger) never counts as a parked car.
  "Occupied" is a car plugged in (1.6 Preparing, Charging, SuspendedEV, SuspendedEVSE, Finishing; 2.0.1 Occupied).
- Time never runs backwards per station: an event older than the station's last one (charger clock skew, late
  offline delivery) is taken at the last time seen, so the hourly fold never refuses it.
- Sessions: a forecast is published at start from what is known then (driver, station, local time); labels
  (energy, connection time) are learned only at stop, exactly once per session id.
- Health: a stopped session and an unexpected disconnect feed the charger's own history; a verdict is published
  once when a condition starts (streams/forecasting/health.py).
- Every output's id derives from its input event: re-processing publishes the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chargeverse.events import derive
from streams.forecasting.health import ChargerHealth, FaultVerdict
from streams.forecasting.loaders import SessionRecord
from streams.forecasting.occupancy import OccupancyForecaster
from streams.forecasting.session_models import ANON, PlugInFeaturizer, SessionForecaster

SOURCE = "forecasts"
OCCUPIED = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"})
MAX_OPEN_SESSIONS = 100_000
MODEL_NAME = "SessionForecaster (candidates blended by each driver's past errors)"

Output = tuple[str, str, str, dict[str, Any]]


def zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


@dataclass
class Models:
    """Everything the processor learns; pickled whole into a checkpoint."""

    default_tz: str = "Europe/Amsterdam"
    occupancy: dict[str, OccupancyForecaster] = field(default_factory=dict)
    last_t: dict[str, datetime] = field(default_factory=dict)
    connectors: dict[str, set[int]] = field(default_factory=dict)
    time_zones: dict[str, str] = field(default_factory=dict)
    featurizer: PlugInFeaturizer = field(default_factory=PlugInFeaturizer)
    energy: SessionForecaster = field(default_factory=lambda: SessionForecaster("kwh"))
    duration: SessionForecaster = field(default_factory=lambda: SessionForecaster("duration_h"))
    user_sessions: dict[str, int] = field(default_factory=dict)
    open_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    learned: dict[str, None] = field(default_factory=dict)  # session ids learned (bounded, oldest dropped)
    health: ChargerHealth = field(default_factory=ChargerHealth)

    def tz(self, station: str) -> ZoneInfo:
        return zone(self.time_zones.get(station), self.default_tz)


def station_time(m: Models, station: str, t: datetime) -> datetime:
    """The event's time, never earlier than the station's last one."""
    last = m.last_t.get(station)
    if last is not None and t < last:
        t = last
    m.last_t[station] = t
    return t


def occupancy_forecast(m: Models, station: str, t: datetime, cause: dict[str, Any], topic: str) -> Output:
    f = m.occupancy[station]
    assert f.model is not None
    hours = [{"starts_at": h.astimezone(timezone.utc), "expected_occupied": round(float(v), 4)}
             for h, v in f.next_24h()]
    rec = derive(cause, tag="occupancy-forecast", source=SOURCE, station_id=station, as_of=t,
                 time_zone=str(f.tz.key), connectors=len(m.connectors.get(station, ())),
                 occupied_now=f.tracker.now, hours_learned=int(f.model.steps), hours=hours)
    return (topic, station, "StationOccupancyForecast", rec)


def _record(m: Models, sid: str, station: str, user: str | None, plug_in: datetime, unplug: datetime | None = None,
            kwh: float = 0.0) -> SessionRecord:
    tz = m.tz(station)
    local_in = plug_in.astimezone(tz)
    return SessionRecord("live", sid, user, station, station, local_in, (unplug or plug_in).astimezone(tz), None, kwh)


def _verdicts(vs: list[FaultVerdict], cause: dict[str, Any], topic: str, session_id: str | None) -> list[Output]:
    return [(topic, f"{v.charger_id}/{v.kind}", "ChargerFaultSuspected",
             derive(cause, tag=f"fault/{v.kind}", source=SOURCE, station_id=v.charger_id, kind=v.kind,
                    detail=v.detail, at=v.at, session_id=session_id)) for v in vs]


def step(m: Models, etype: str, rec: dict[str, Any], topic: str) -> list[Output]:
    """Fold one event into the models; the events to publish (on `topic`)."""
    if etype == "StationTariffSet":
        m.time_zones.setdefault(rec["station_id"], rec["time_zone"])
        return []
    if etype == "ConnectorStatusChanged":
        station, conn = rec["station_id"], int(rec["connector_id"])
        if conn < 1:
            return []
        t = station_time(m, station, rec["occurred_at"])
        m.connectors.setdefault(station, set()).add(conn)
        f = m.occupancy.get(station)
        if f is None:
            f = m.occupancy[station] = OccupancyForecaster(m.tz(station))
        f.on_status(t, str(conn), rec["status"] in OCCUPIED)
        return [occupancy_forecast(m, station, t, rec, topic)]
    if etype == "StationConnectionChanged":
        if rec["online"]:
            return []
        return _verdicts(m.health.observe_disconnect(rec["station_id"], rec["occurred_at"], expected=False), rec,
                         topic, None)
    if etype == "SessionStarted":
        sid = rec["session_id"]
        if sid in m.open_sessions or sid in m.learned:
            return []
        station, user = rec["charge_point_id"], rec.get("id_token") or None
        started = rec["started_at"]
        x = m.featurizer.features(_record(m, sid, station, user, started))
        kwh = round(max(float(m.energy.predict_one(x)), 0.0), 3)
        hours = round(max(float(m.duration.predict_one(x)), 0.0), 3)
        m.open_sessions[sid] = {"x": x, "started": started, "station": station, "user": user}
        while len(m.open_sessions) > MAX_OPEN_SESSIONS:  # a session that never stops must not grow memory forever
            m.open_sessions.pop(next(iter(m.open_sessions)))
        out = derive(rec, tag="session-forecast", source=SOURCE, session_id=sid, station_id=station,
                     started_at=started, predicted_kwh=kwh, predicted_duration_h=hours,
                     expected_unplug_at=started + timedelta(hours=hours),
                     user_sessions_seen=m.user_sessions.get(user or ANON, 0), model=MODEL_NAME)
        return [(topic, sid, "SessionForecast", out)]
    if etype == "SessionStopped":
        sid = rec["session_id"]
        if sid in m.learned:
            return []
        m.learned[sid] = None
        while len(m.learned) > MAX_OPEN_SESSIONS:
            m.learned.pop(next(iter(m.learned)))
        opened = m.open_sessions.pop(sid, None)
        station, user = rec["charge_point_id"], rec.get("id_token") or None
        started = opened["started"] if opened else rec["started_at"]
        stopped = max(rec["stopped_at"], started)
        kwh = max(float(rec["energy_wh"]) / 1000.0, 0.0)
        hours = (stopped.timestamp() - started.timestamp()) / 3600.0
        x = opened["x"] if opened else m.featurizer.features(_record(m, sid, station, user, started))
        m.energy.learn_one(x, kwh)
        m.duration.learn_one(x, hours)
        m.featurizer.observe_end(_record(m, sid, station, user, started, stopped, kwh))
        key = (opened["user"] if opened else user) or ANON
        m.user_sessions[key] = m.user_sessions.get(key, 0) + 1
        return _verdicts(m.health.observe_session(station, started, stopped, kwh), rec, topic, sid)
    return []


def summary(hours: list[tuple[datetime, float]], connectors: int) -> str:
    """'usually busy at 17:00' from a 24-hour forecast (local times): where the busiest period starts, said plainly
    (the first hour within 10 % of the peak)."""
    if not hours:
        return "no forecast yet: the station has not been watched for a full hour"
    peak = max(v for _, v in hours)
    # the first hour (in time order) at the peak level: where the busy period starts
    t, v = next((t, v) for t, v in sorted(hours, key=lambda hv: hv[0].timestamp()) if v >= 0.9 * peak)
    if v < 0.05:
        return "usually free for the next 24 hours"
    share = v / connectors if connectors else 1.0
    word = "busy" if share >= 0.5 else "somewhat busy"
    return f"usually {word} at {t.strftime('%H:%M')} ({v:.1f} of {connectors} connectors occupied)"
