"""Postgres projection of `forecasts`: the latest occupancy forecast per station, session forecasts, suspected
charger faults (migrations/130_forecasts.sql).  The API serves them (edges/api/forecasts.py).

Guarantees (besides projections/base.py's: rows and offsets in one transaction, deterministic rows):
- A station's forecast row is replaced only by a forecast at least as recent (`as_of`), so a replayed or
  re-published older forecast never overwrites a newer one.
- Session forecasts: one row per session, the first forecast kept (it is the one made at plug-in).
- Fault suspicions are a history: one row per (station, kind, time).
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg
from psycopg.types.json import Jsonb

from chargeverse.topics import FORECASTS
from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


def _occupancy(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    hours = [{"starts_at": h["starts_at"].isoformat(), "expected_occupied": h["expected_occupied"]}
             for h in r["hours"]]
    cur.execute(
        "INSERT INTO station_forecasts (station_id, event_id, as_of, time_zone, connectors, occupied_now, "
        "hours_learned, hours) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (station_id) DO UPDATE SET event_id = "
        "EXCLUDED.event_id, as_of = EXCLUDED.as_of, time_zone = EXCLUDED.time_zone, connectors = EXCLUDED.connectors,"
        " occupied_now = EXCLUDED.occupied_now, hours_learned = EXCLUDED.hours_learned, hours = EXCLUDED.hours "
        "WHERE station_forecasts.as_of <= EXCLUDED.as_of",
        (r["station_id"], r["event_id"], r["as_of"], r["time_zone"], r["connectors"], r["occupied_now"],
         r["hours_learned"], Jsonb(hours)))


def _session(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO session_forecasts (session_id, station_id, started_at, predicted_kwh, predicted_duration_h, "
        "expected_unplug_at, user_sessions_seen, model, event_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT DO NOTHING",
        (r["session_id"], r["station_id"], r["started_at"], r["predicted_kwh"], r["predicted_duration_h"],
         r["expected_unplug_at"], r["user_sessions_seen"], r["model"], r["event_id"]))


def _fault(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO charger_faults (station_id, kind, at, detail, session_id, event_id) VALUES "
                "(%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (r["station_id"], r["kind"], r["at"], r["detail"], r["session_id"], r["event_id"]))


_HANDLERS = {"StationOccupancyForecast": _occupancy, "SessionForecast": _session, "ChargerFaultSuspected": _fault}


class ForecastsProjection(TableProjection):
    name = "pg.forecasts"
    topics = (FORECASTS.name,)
    tables = (("station_forecasts", "station_id"), ("session_forecasts", "session_id"),
              ("charger_faults", "station_id, kind, at"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = _HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)
