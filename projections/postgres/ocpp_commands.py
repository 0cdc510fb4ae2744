"""Postgres projection of `ocpp.commands`: every command to a charger and its outcome, for the operator API.

Guarantees: rows and offsets commit in one transaction; the first result of a command wins and later ones only
count (so a duplicate result, which the edges' claim makes rare, is visible but never overwrites); rows depend
only on events, so a replay into an empty schema gives the same checksum.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


class OcppCommandsProjection(TableProjection):
    name = "pg.ocpp_commands"
    topics = ("ocpp.commands",)
    tables = (("ocpp_commands", "command_id"),)

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
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
