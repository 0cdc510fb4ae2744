"""Postgres projection of the fleet events on the `identity` topic: fleets, members, policies.

Guarantees (besides those of projections/base.py: rows and offsets in one transaction, deterministic rows):
- **One fleet, one partition.**  Every fleet event is keyed by its fleet id, so a fleet's events are applied in
  the order they were written, live and on replay.  Handlers touch only the rows of the event's own fleet and
  never look at another partition's rows (accounts, tokens, other fleets), so a rebuild is identical whatever
  order the partitions are read in.
- **First creation wins**: FleetCreated of an existing fleet id changes nothing (the API compares the row's
  `created_event_id` with its own event).  Member and policy events of a fleet the projection does not have
  are dropped (they can only come from a lost creation race or a dead-lettered creation).
- **Membership is a history**: FleetMemberAdded of a current member only updates the cost centre; a removal
  closes the current stay (`left_at`), and a later addition opens a new one.  Reports count a session for the
  fleet when it started during a stay.
- **A policy replaces the previous one of its scope** (the fleet's default, account_id '', or one member's).
- Nothing here depends on the clock: "spent this month" is summed at read time from `cdrs`.
- Unknown event types on the topic (accounts, tokens, ...) are passed over: they are the identity projection's.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

_Handler = Callable[[psycopg.Cursor, dict[str, Any]], None]
#: fleet_policies.account_id of a fleet's default policy
FLEET_DEFAULT = ""


def _fleet_exists(cur: psycopg.Cursor, fleet_id: str) -> bool:
    return cur.execute("SELECT 1 FROM fleets WHERE fleet_id = %s", (fleet_id,)).fetchone() is not None


def _created(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO fleets (fleet_id, name, company, manager_account_id, currency, time_zone, created_by,"
                " created_at, created_event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (r["fleet_id"], r["name"], r["company"], r["manager_account_id"], r["currency"], r["time_zone"],
                 r["created_by"], r["occurred_at"], r["event_id"]))


def _member_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not _fleet_exists(cur, r["fleet_id"]):
        return
    updated = cur.execute("UPDATE fleet_members SET cost_centre = %s WHERE fleet_id = %s AND account_id = %s "
                          "AND left_at IS NULL RETURNING 1",
                          (r["cost_centre"], r["fleet_id"], r["account_id"])).fetchone()
    if updated is None:
        cur.execute("INSERT INTO fleet_members (fleet_id, account_id, cost_centre, joined_at, joined_event_id) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (r["fleet_id"], r["account_id"], r["cost_centre"], r["occurred_at"], r["event_id"]))


def _member_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("UPDATE fleet_members SET left_at = GREATEST(%s, joined_at) WHERE fleet_id = %s AND account_id = %s "
                "AND left_at IS NULL", (r["occurred_at"], r["fleet_id"], r["account_id"]))
    # a member's own policy ends with the membership (a rejoining driver starts from the fleet's default)
    cur.execute("DELETE FROM fleet_policies WHERE fleet_id = %s AND account_id = %s",
                (r["fleet_id"], r["account_id"]))


def _budget(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _policy_set(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not _fleet_exists(cur, r["fleet_id"]):
        return
    budget = _budget(r["monthly_budget"])
    if r["monthly_budget"] is not None and budget is None:
        return  # the API never publishes such a budget; a bad one must not become "no limit"
    stations = None if r["allowed_station_ids"] is None else sorted(set(r["allowed_station_ids"]))
    networks = None if r["allowed_networks"] is None else sorted(set(r["allowed_networks"]))
    cur.execute("INSERT INTO fleet_policies (fleet_id, account_id, monthly_budget, allowed_station_ids,"
                " allowed_networks, set_by, set_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (fleet_id, account_id) DO UPDATE SET monthly_budget = EXCLUDED.monthly_budget,"
                " allowed_station_ids = EXCLUDED.allowed_station_ids, allowed_networks = EXCLUDED.allowed_networks,"
                " set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at",
                (r["fleet_id"], r["account_id"] or FLEET_DEFAULT, budget, stations, networks, r["set_by"],
                 r["occurred_at"]))


HANDLERS: dict[str, _Handler] = {
    "FleetCreated": _created,
    "FleetMemberAdded": _member_added,
    "FleetMemberRemoved": _member_removed,
    "FleetPolicySet": _policy_set,
}


class FleetsProjection(TableProjection):
    name = "pg.fleets"
    topics = ("identity",)
    tables = (("fleets", "fleet_id"), ("fleet_members", "fleet_id, account_id, joined_at"),
              ("fleet_policies", "fleet_id, account_id"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)
