"""Postgres projection of roamed sessions (OcpiSessionUpdated on `sessions`, from streams/ocpi_directory) into the
`sessions` table the app's session API reads, beside our own stations' sessions.

Why a projection of its own: pg.sessions (projections/postgres/sessions.py) folds the OCPP lifecycle events; a
roamed session arrives as the partner's whole Session each time, so it is one upsert of the latest figures.  Its
rows never meet pg.sessions' rows: their ids start with `roamed:` (own session ids never do).

Guarantees: rows and offsets commit in one transaction (projections/postgres/table_projection.py); only events of
its platform (`platform_id`) are applied; an update whose `last_updated` is older than the row's is passed over
(a pull of an old copy never moves a session backwards); rows depend only on events.  `reset` and `checksum`
touch only `roamed:` rows.  Stated limit: a rebuild of pg.sessions (which truncates the table) must be followed
by a rebuild of this projection; folding OcpiSessionUpdated into pg.sessions itself would remove that step.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

ROAMED = "roamed:%"
#: OCPI SessionStatus -> our sessions' status
STOPPED = frozenset({"COMPLETED", "INVALID"})


class RoamedSessionsProjection(TableProjection):
    name = "pg.ocpi_roamed_sessions"
    topics = ("sessions",)
    tables = (("sessions", "session_id"),)

    def __init__(self, dsn: str, schema: str = "public", platform_id: str = "chargeverse") -> None:
        super().__init__(dsn, schema)
        self.platform_id = platform_id

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            r = e.record
            if e.type != "OcpiSessionUpdated" or r.get("platform_id") != self.platform_id:
                continue
            status = "STOPPED" if r["status"] in STOPPED else "ACTIVE"
            cid = r.get("connector_id")
            stamp = r.get("last_updated") or r["occurred_at"]
            cur.execute(
                "INSERT INTO sessions (session_id, charge_point_id, transaction_id, ocpp_version, connector_id, "
                "id_token, id_token_type, status, started_at, stopped_at, energy_wh, stop_reason, updated_at, "
                "last_event_id) VALUES (%s,%s,%s,'ocpi2.2.1',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (session_id) DO UPDATE SET charge_point_id = EXCLUDED.charge_point_id, "
                "connector_id = EXCLUDED.connector_id, id_token = EXCLUDED.id_token, "
                "id_token_type = EXCLUDED.id_token_type, status = EXCLUDED.status, "
                "started_at = EXCLUDED.started_at, stopped_at = EXCLUDED.stopped_at, "
                "energy_wh = EXCLUDED.energy_wh, stop_reason = EXCLUDED.stop_reason, "
                "updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id "
                "WHERE sessions.updated_at <= EXCLUDED.updated_at",
                (r["session_id"], r["station_id"], r["ocpi_session_id"],
                 int(cid) if isinstance(cid, str) and cid.isdigit() and len(cid) < 9 else None,
                 r.get("id_token"), r.get("id_token_type"), status, r.get("started_at"), r.get("stopped_at"),
                 r["energy_wh"], r["status"] if status == "STOPPED" else None, stamp, r["event_id"]))

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for row in self.conn.execute("SELECT * FROM sessions WHERE session_id LIKE %s ORDER BY session_id",
                                         (ROAMED,)):
                h.update(json.dumps(row, default=str, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM sessions WHERE session_id LIKE %s", (ROAMED,))
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
