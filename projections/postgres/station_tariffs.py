"""Postgres projection of our stations' tariffs over time (StationTariffSet events on `stations`).

Guarantees: rows and offsets commit in one transaction; a tariff is kept per (station, valid_from), a later event
for the same instant replaces it (an operator correcting a mistake before it applies); rows depend only on events.
`tariff_at()` is the one lookup billing and the API use: the tariff in effect at an instant.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate


class StationTariffsProjection:
    name = "pg.station_tariffs"
    topics = ("stations",)

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn, self.schema = dsn, schema
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)

    def close(self) -> None:
        self.conn.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
        return {(t, p): o for t, p, o in rows}

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s FOR UPDATE",
                (self.name,)).fetchall()
            new = unseen(events, {(t, p): o for t, p, o in rows})
            if not new:
                return 0
            cur = self.conn.cursor()
            for e in real(new):
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
            cur.executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for row in self.conn.execute("SELECT * FROM station_tariffs ORDER BY station_id, valid_from"):
                h.update(json.dumps(row, default=str, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("TRUNCATE station_tariffs")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))


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
