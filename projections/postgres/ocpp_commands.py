"""Postgres projection of `ocpp.commands`: every command to a charger and its outcome, for the operator API.

Guarantees: rows and offsets commit in one transaction; the first result of a command wins and later ones only
count (so a duplicate result, which the edges' claim makes rare, is visible but never overwrites); rows depend
only on events, so a replay into an empty schema gives the same checksum.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate


class OcppCommandsProjection:
    name = "pg.ocpp_commands"
    topics = ("ocpp.commands",)

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
                r = e.record
                if e.type == "OcppCommandRequested":
                    cur.execute(
                        "INSERT INTO ocpp_commands (command_id, charge_point_id, action, payload, ocpp_version, "
                        "requested_by, requested_at, expires_at, request_event_id) "
                        "VALUES (%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s) ON CONFLICT (command_id) DO NOTHING",
                        (r["command_id"], r["charge_point_id"], r["action"], r["payload"], r["ocpp_version"],
                         r["requested_by"], r["occurred_at"], r["expires_at"], r["event_id"]))
                elif e.type == "OcppCommandResult":
                    cur.execute(
                        "UPDATE ocpp_commands SET result_count = result_count + 1, "
                        "outcome = COALESCE(outcome, %s), result = CASE WHEN outcome IS NULL THEN %s::jsonb "
                        "ELSE result END, error_code = CASE WHEN outcome IS NULL THEN %s ELSE error_code END, "
                        "error_description = CASE WHEN outcome IS NULL THEN %s ELSE error_description END, "
                        "message_id = CASE WHEN outcome IS NULL THEN %s ELSE message_id END, "
                        "edge_instance = CASE WHEN outcome IS NULL THEN %s ELSE edge_instance END, "
                        "resolved_at = COALESCE(resolved_at, %s) WHERE command_id = %s",
                        (r["outcome"], r["result"], r["error_code"], r["error_description"], r["message_id"],
                         r["edge_instance"], r["occurred_at"], r["command_id"]))
            cur.executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for row in self.conn.execute("SELECT * FROM ocpp_commands ORDER BY command_id"):
                h.update(json.dumps(row, default=str, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("TRUNCATE ocpp_commands")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
