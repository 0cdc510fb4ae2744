"""Postgres projection of the `sessions` topic: one row per charging session, live while it runs.

Guarantees: rows and offsets commit in one transaction; energy only ever comes from the events (the session fold
computes it from register readings), and a sample older than the last one applied never overwrites live values,
so a late or re-delivered sample cannot move a session backwards; a stopped session's final figures win over any
sample.  Rows depend only on events, so a replay into an empty schema gives the same checksum.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

_STARTED_COLS = ("charge_point_id", "transaction_id", "ocpp_version", "evse_id", "connector_id", "id_token",
                 "id_token_type", "authorization_status", "started_at", "meter_start_wh", "inferred_start")


class SessionsProjection(TableProjection):
    name = "pg.sessions"
    topics = ("sessions",)
    tables = (("sessions", "session_id"),)

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            r = e.record
            if e.type == "SessionStarted":
                cols = ", ".join(_STARTED_COLS)
                cur.execute(
                    f"INSERT INTO sessions (session_id, {cols}, status, updated_at, last_event_id) "
                    f"VALUES (%s, {', '.join(['%s'] * len(_STARTED_COLS))}, 'ACTIVE', %s, %s) "
                    "ON CONFLICT (session_id) DO UPDATE SET "
                    + ", ".join(f"{c} = COALESCE(sessions.{c}, EXCLUDED.{c})" for c in _STARTED_COLS)
                    + ", updated_at = GREATEST(sessions.updated_at, EXCLUDED.updated_at)",
                    (r["session_id"], *(r.get(c) for c in _STARTED_COLS), r["occurred_at"], r["event_id"]))
            elif e.type == "SessionMeterSample":
                cur.execute(
                    "INSERT INTO sessions (session_id, charge_point_id, transaction_id, status, energy_wh, "
                    "power_w, current_a, soc_percent, last_sample_at, samples, updated_at, last_event_id) "
                    "VALUES (%s,%s,%s,'ACTIVE',%s,%s,%s,%s,%s,1,%s,%s) ON CONFLICT (session_id) DO UPDATE SET "
                    "samples = sessions.samples + 1, "
                    "energy_wh = CASE WHEN sessions.status = 'ACTIVE' AND (sessions.last_sample_at IS NULL OR "
                    "  EXCLUDED.last_sample_at >= sessions.last_sample_at) THEN EXCLUDED.energy_wh "
                    "  ELSE sessions.energy_wh END, "
                    "power_w = CASE WHEN sessions.last_sample_at IS NULL OR EXCLUDED.last_sample_at >= "
                    "  sessions.last_sample_at THEN COALESCE(EXCLUDED.power_w, sessions.power_w) "
                    "  ELSE sessions.power_w END, "
                    "current_a = CASE WHEN sessions.last_sample_at IS NULL OR EXCLUDED.last_sample_at >= "
                    "  sessions.last_sample_at THEN COALESCE(EXCLUDED.current_a, sessions.current_a) "
                    "  ELSE sessions.current_a END, "
                    "soc_percent = CASE WHEN sessions.last_sample_at IS NULL OR EXCLUDED.last_sample_at >= "
                    "  sessions.last_sample_at THEN COALESCE(EXCLUDED.soc_percent, sessions.soc_percent) "
                    "  ELSE sessions.soc_percent END, "
                    "last_sample_at = GREATEST(sessions.last_sample_at, EXCLUDED.last_sample_at), "
                    "updated_at = GREATEST(sessions.updated_at, EXCLUDED.updated_at), "
                    "last_event_id = EXCLUDED.last_event_id",
                    (r["session_id"], r["charge_point_id"], r["transaction_id"], r["energy_wh"], r.get("power_w"),
                     r.get("current_a"), r.get("soc_percent"), r["at"], r["occurred_at"], r["event_id"]))
            elif e.type == "SessionStopped":
                cur.execute(
                    "INSERT INTO sessions (session_id, charge_point_id, transaction_id, ocpp_version, evse_id, "
                    "connector_id, id_token, id_token_type, authorization_status, status, started_at, "
                    "stopped_at, meter_start_wh, meter_stop_wh, energy_wh, stop_reason, baseline_inferred, "
                    "inferred_start, power_w, updated_at, last_event_id) VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,'STOPPED',%s,%s,%s,%s,%s,%s,%s,%s,0,%s,%s) "
                    "ON CONFLICT (session_id) DO UPDATE SET status = 'STOPPED', "
                    "stopped_at = EXCLUDED.stopped_at, meter_stop_wh = EXCLUDED.meter_stop_wh, "
                    "energy_wh = EXCLUDED.energy_wh, stop_reason = EXCLUDED.stop_reason, "
                    "baseline_inferred = EXCLUDED.baseline_inferred, power_w = 0, "
                    "meter_start_wh = COALESCE(EXCLUDED.meter_start_wh, sessions.meter_start_wh), "
                    "id_token = COALESCE(sessions.id_token, EXCLUDED.id_token), "
                    "authorization_status = COALESCE(EXCLUDED.authorization_status, "
                    "  sessions.authorization_status), "
                    "updated_at = GREATEST(sessions.updated_at, EXCLUDED.updated_at), "
                    "last_event_id = EXCLUDED.last_event_id",
                    (r["session_id"], r["charge_point_id"], r["transaction_id"], r["ocpp_version"],
                     r.get("evse_id"), r.get("connector_id"), r.get("id_token"), r.get("id_token_type"),
                     r.get("authorization_status"), r["started_at"], r["stopped_at"], r.get("meter_start_wh"),
                     r.get("meter_stop_wh"), r["energy_wh"], r["reason"], r["baseline_inferred"],
                     r.get("inferred_start", False), r["occurred_at"], r["event_id"]))


