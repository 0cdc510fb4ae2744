"""Postgres projection of `billing`: priced CDRs (one per session) and the review queue.

Guarantees: rows and offsets commit in one transaction; a session's first priced CDR is kept (the billing
processor emits one per session; a re-delivered copy has the same content); review entries are kept verbatim,
one per event, never dropped; rows depend only on events.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate


class BillingProjection:
    name = "pg.billing"
    topics = ("billing",)

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
                if e.type == "CdrPriced":
                    cur.execute(
                        "INSERT INTO cdrs (session_id, cdr_id, account_id, fleet_id, cost_centre, origin, currency, "
                        "tariff_id, total_cost_excl_vat, total_cost_incl_vat, total_energy_kwh, total_time_hours, "
                        "cdr, priced_at, event_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s) "
                        "ON CONFLICT (session_id) DO NOTHING",
                        (r["session_id"], r["cdr_id"], r["account_id"], r.get("fleet_id"), r.get("cost_centre"),
                         r["origin"], r["currency"], r.get("tariff_id"), r["total_cost_excl_vat"],
                         r.get("total_cost_incl_vat"), r["total_energy_kwh"], r["total_time_hours"], r["cdr"],
                         r["occurred_at"], r["event_id"]))
                elif e.type == "BillingReview":
                    cur.execute(
                        "INSERT INTO billing_reviews (event_id, subject, session_id, account_id, reasons, payload, "
                        "payload_type, source_event_id, queued_at) VALUES (%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s) "
                        "ON CONFLICT (event_id) DO NOTHING",
                        (r["event_id"], r["subject"], r.get("session_id"), r.get("account_id"),
                         json.dumps(r["reasons"]), r["payload"], r["payload_type"], r["source_event_id"],
                         r["occurred_at"]))
            cur.executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for q in ("SELECT * FROM cdrs ORDER BY session_id", "SELECT * FROM billing_reviews ORDER BY event_id"):
                for row in self.conn.execute(q):
                    h.update(json.dumps(row, default=str, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("TRUNCATE cdrs, billing_reviews")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
