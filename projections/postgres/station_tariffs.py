"""Postgres projection of our stations' tariffs over time (StationTariffSet events on `stations`).

Guarantees: rows and offsets commit in one transaction; a tariff is kept per (station, valid_from), a later event
for the same instant replaces it (an operator correcting a mistake before it applies); rows depend only on events.
`tariff_at()` is the one lookup billing and the API use: the tariff in effect at an instant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


class StationTariffsProjection(TableProjection):
    name = "pg.station_tariffs"
    topics = ("stations",)
    tables = (("station_tariffs", "station_id, valid_from"),)

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            if e.type != "StationTariffSet":
                continue
            r = e.record
            cur.execute(
                "INSERT INTO station_tariffs (station_id, valid_from, tariff_id, tariff, currency, time_zone, "
                "set_by, event_id) VALUES (%s,%s,%s,%s::jsonb,%s,%s,%s,%s) ON CONFLICT (station_id, valid_from) "
                "DO UPDATE SET tariff_id = EXCLUDED.tariff_id, tariff = EXCLUDED.tariff, "
                "currency = EXCLUDED.currency, time_zone = EXCLUDED.time_zone, set_by = EXCLUDED.set_by, "
                "event_id = EXCLUDED.event_id",
                (r["station_id"], r["valid_from"], r["tariff_id"], r["tariff"], r["currency"], r["time_zone"],
                 r["set_by"], r["event_id"]))


_AT = ("SELECT tariff_id, tariff, currency, time_zone, valid_from, event_id FROM station_tariffs "
       "WHERE station_id = %s AND valid_from <= %s ORDER BY valid_from DESC LIMIT 1")


def tariff_at(conn: psycopg.Connection, station_id: str, at: datetime) -> dict[str, Any] | None:
    """The tariff of `station_id` in effect at `at`, or None (no tariff: the station is free or unpriced)."""
    row = conn.execute(_AT, (station_id, at)).fetchone()
    if row is None:
        return None
    return {"tariff_id": row[0], "tariff": row[1], "currency": row[2], "time_zone": row[3], "valid_from": row[4],
            "event_id": row[5]}


async def tariff_at_async(conn: Any, station_id: str, at: datetime) -> dict[str, Any] | None:
    cur = await conn.execute(_AT, (station_id, at))
    row = await cur.fetchone()
    if row is None:
        return None
    return {"tariff_id": row[0], "tariff": row[1], "currency": row[2], "time_zone": row[3], "valid_from": row[4],
            "event_id": row[5]}
