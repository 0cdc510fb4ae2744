"""Postgres projection of the `notifications` topic: each driver's notifications and what became of them.

Guarantees (besides those of projections/base.py): keyed by account id, so one account's notifications are applied
in log order; NotificationRequested inserts once (its id is derived from the causing event, so a re-processed
cause does not add a second row); an outcome (NotificationSent / NotificationFailed) updates the row it names and
a later outcome wins (a failed attempt followed by a successful resend reads 'sent').  An outcome for a
notification the projection does not have is dropped.  Rows depend only on events.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


class NotificationsProjection(TableProjection):
    name = "pg.notifications"
    topics = ("notifications",)
    tables = (("notifications", "notification_id"),)

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            r = e.record
            if e.type == "NotificationRequested":
                cur.execute("INSERT INTO notifications (notification_id, account_id, kind, station_id, session_id, "
                            "connector_id, data, requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
                            "ON CONFLICT (notification_id) DO NOTHING",
                            (r["notification_id"], r["account_id"], r["kind"], r["station_id"], r["session_id"],
                             r["connector_id"], r["data"], r["occurred_at"]))
            elif e.type in ("NotificationSent", "NotificationFailed"):
                cur.execute("UPDATE notifications SET status = %s, channel = %s, error = %s, outcome_at = %s "
                            "WHERE notification_id = %s",
                            ("sent" if e.type == "NotificationSent" else "failed", r["channel"], r.get("error"),
                             r["occurred_at"], r["notification_id"]))
