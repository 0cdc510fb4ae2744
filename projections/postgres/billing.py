"""Postgres projection of `billing`: priced CDRs (one per session) and the review queue.

Guarantees: rows and offsets commit in one transaction; a session's first priced CDR is kept (the billing
processor emits one per session; a re-delivered copy has the same content); review entries are kept verbatim,
one per event, never dropped; rows depend only on events.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


class BillingProjection(TableProjection):
    name = "pg.billing"
    topics = ("billing",)
    tables = (("cdrs", "session_id"), ("billing_reviews", "event_id"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
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
