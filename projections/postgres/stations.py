"""Postgres projection of the `stations` topic: stations (with a PostGIS geography), connectors, credentials.

Guarantees: rows and offsets commit in one transaction; each touched row is written once per batch (see
projections/station_fold.py); rows depend only on events, so a replay into an empty schema is identical.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg
from psycopg import sql

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection
from projections.station_fold import fold


class StationsProjection(TableProjection):
    name = "pg.stations"
    topics = ("stations",)
    tables = (("stations", "station_id"), ("connectors", "station_id, connector_id"),
              ("charge_point_credentials", "station_id"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        patches = fold(list(events))
        for cols, values in _grouped(patches.stations, ("station_id",)):
            cur.executemany(_upsert_sql("stations", ("station_id",), cols), values)
        for cols, values in _grouped(patches.connectors, ("station_id", "connector_id")):
            cur.executemany(_upsert_sql("connectors", ("station_id", "connector_id"), cols), values)
        if patches.credentials:
            cur.executemany(
                "INSERT INTO charge_point_credentials (station_id, password_hash, security_profile, revoked, "
                "registration_status) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (station_id) DO UPDATE SET "
                "password_hash = EXCLUDED.password_hash, security_profile = EXCLUDED.security_profile, "
                "revoked = EXCLUDED.revoked, registration_status = EXCLUDED.registration_status",
                [(sid, *cred) for sid, cred in patches.credentials.items()])

    # ---- replay support --------------------------------------------------------------------------------------
    def checksum_queries(self) -> tuple[str, ...]:
        return ("SELECT station_id, name, operator, address, own, ST_AsText(location), vendor, model, serial_number,"
                " firmware_version, boot_status, heartbeat_interval, booted_at, last_heartbeat_at, online,"
                " edge_instance, updated_at, last_event_id FROM stations ORDER BY station_id",
                "SELECT * FROM connectors ORDER BY station_id, connector_id",
                "SELECT * FROM charge_point_credentials ORDER BY station_id")


def _grouped(patches: dict[Any, dict[str, Any]], keys: tuple[str, ...]):
    """Rows grouped by the set of columns they touch, so each group is one executemany."""
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for key, cols in patches.items():
        names = tuple(sorted(cols))
        keyvals = key if isinstance(key, tuple) else (key,)
        vals = []
        for n in names:
            vals.extend(cols[n] if n == "location" else (cols[n],))
        groups.setdefault(names, []).append((*keyvals, *vals))
    return groups.items()


def _upsert_sql(table: str, keys: tuple[str, ...], cols: tuple[str, ...]) -> sql.Composed:
    placeholders = [sql.Placeholder()] * len(keys)
    for c in cols:
        placeholders.append(sql.SQL("ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography") if c == "location"
                            else sql.Placeholder())
    return sql.SQL("INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({keys}) DO UPDATE SET {sets}").format(
        t=sql.Identifier(table),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in (*keys, *cols)),
        vals=sql.SQL(", ").join(placeholders),
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in cols),
    )
