"""Postgres projection of smart charging: `sites` (SiteDefined, ChargingNeedsSet, ChargingPriceSignalSet) and
`smartcharging` (ChargingScheduleComputed) into the sc_* tables (migrations/120_smartcharging.sql).

Guarantees (besides projections/base.py's: rows and offsets in one transaction, deterministic rows):
- A SiteDefined replaces the site's definition and its connector list; a connector another site already holds
  stays with that site (the API refuses such a definition up front; this is the replay-safe tie-break).
- A site's latest schedule replaces the previous one; each session's plan row is the latest plan that named it
  (a schedule never deletes plans: a stopped session keeps its last plan for the record).
- Only events of this projection's types are read; other event types on the topics are passed over.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg
from psycopg.types.json import Jsonb

from chargeverse.topics import SITES, SMARTCHARGING
from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection


def _site(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    definition = {k: r[k] for k in ("name", "fleet_id", "time_zone", "slot_minutes", "horizon_hours", "objectives",
                                    "limits", "connectors", "default_departure_hours", "default_energy_kwh")}
    definition["peak_floor"] = r.get("peak_floor")  # null: the processor's default (decide.PEAK_FLOOR_DEFAULT)
    cur.execute(
        "INSERT INTO sc_sites (site_id, version, name, fleet_id, owner_account_id, time_zone, definition, defined_by,"
        " defined_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id) DO UPDATE SET version = "
        "EXCLUDED.version, name = EXCLUDED.name, fleet_id = EXCLUDED.fleet_id, owner_account_id = "
        "EXCLUDED.owner_account_id, time_zone = EXCLUDED.time_zone, definition = EXCLUDED.definition, defined_by = "
        "EXCLUDED.defined_by, defined_at = EXCLUDED.defined_at",
        (r["site_id"], r["event_id"], r["name"], r["fleet_id"], r["owner_account_id"], r["time_zone"],
         Jsonb(definition), r["defined_by"], r["occurred_at"]))
    cur.execute("DELETE FROM sc_site_connectors WHERE site_id = %s", (r["site_id"],))
    for c in r["connectors"]:
        cur.execute("INSERT INTO sc_site_connectors (charge_point_id, connector_id, site_id, node_id, max_kw) "
                    "VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    (c["charge_point_id"], c["connector_id"], r["site_id"], c["node_id"], c["max_kw"]))


def _needs(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO sc_needs (session_id, site_id, departure_at, energy_kwh, mode, target_soc_percent, battery_kwh,"
        " soc_percent, set_by, set_at, event_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (session_id) "
        "DO UPDATE SET site_id = EXCLUDED.site_id, departure_at = COALESCE(EXCLUDED.departure_at, "
        "sc_needs.departure_at), energy_kwh = COALESCE(EXCLUDED.energy_kwh, sc_needs.energy_kwh), mode = "
        "EXCLUDED.mode, target_soc_percent = EXCLUDED.target_soc_percent, battery_kwh = EXCLUDED.battery_kwh, "
        "soc_percent = EXCLUDED.soc_percent, set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at, event_id = "
        "EXCLUDED.event_id",
        (r["session_id"], r["site_id"], r["departure_at"], r["energy_kwh"], r["mode"], r["target_soc_percent"],
         r["battery_kwh"], r["soc_percent"], r["set_by"], r["occurred_at"], r["event_id"]))


def _prices(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    points = [{"starts_at": p["starts_at"].isoformat(), "price_per_kwh": p["price_per_kwh"],
               "carbon_g_per_kwh": p["carbon_g_per_kwh"]} for p in r["points"]]
    cur.execute("INSERT INTO sc_prices (site_id, currency, points, set_by, set_at) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT (site_id) DO UPDATE SET currency = EXCLUDED.currency, points = EXCLUDED.points, "
                "set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at",
                (r["site_id"], r["currency"], Jsonb(points), r["set_by"], r["occurred_at"]))


def _schedule(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO sc_schedules (site_id, event_id, computed_at, plan_start, slot_seconds, trigger, site_peak_kw, "
        "infeasible, issues, objectives, peak_floor) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site_id) "
        "DO UPDATE SET event_id = EXCLUDED.event_id, computed_at = EXCLUDED.computed_at, plan_start = "
        "EXCLUDED.plan_start, slot_seconds = EXCLUDED.slot_seconds, trigger = EXCLUDED.trigger, site_peak_kw = "
        "EXCLUDED.site_peak_kw, infeasible = EXCLUDED.infeasible, issues = EXCLUDED.issues, objectives = "
        "EXCLUDED.objectives, peak_floor = EXCLUDED.peak_floor",
        (r["site_id"], r["event_id"], r["occurred_at"], r["plan_start"], r["slot_seconds"], r["trigger"],
         r["site_peak_kw"], r["infeasible"], Jsonb(list(r["issues"])), Jsonb(list(r["objectives"])),
         Jsonb(r["peak_floor"]) if r.get("peak_floor") is not None else None))
    for s in r["sessions"]:
        cur.execute(
            "INSERT INTO sc_session_plans (session_id, site_id, event_id, charge_point_id, connector_id, plan_start, "
            "slot_seconds, power_kw, requested_kwh, delivered_kwh, planned_kwh, departure_at, need_source, "
            "command_id, computed_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (session_id) "
            "DO UPDATE SET site_id = EXCLUDED.site_id, event_id = EXCLUDED.event_id, plan_start = "
            "EXCLUDED.plan_start, slot_seconds = EXCLUDED.slot_seconds, power_kw = EXCLUDED.power_kw, requested_kwh"
            " = EXCLUDED.requested_kwh, delivered_kwh = EXCLUDED.delivered_kwh, planned_kwh = EXCLUDED.planned_kwh, "
            "departure_at = EXCLUDED.departure_at, need_source = EXCLUDED.need_source, command_id = "
            "COALESCE(EXCLUDED.command_id, sc_session_plans.command_id), computed_at = EXCLUDED.computed_at",
            (s["session_id"], r["site_id"], r["event_id"], s["charge_point_id"], s["connector_id"], r["plan_start"],
             r["slot_seconds"], Jsonb(list(s["power_kw"])), s["requested_kwh"], s["delivered_kwh"],
             s["planned_kwh"], s["departure_at"], s["need_source"], s["command_id"], r["occurred_at"]))


_HANDLERS = {"SiteDefined": _site, "ChargingNeedsSet": _needs, "ChargingPriceSignalSet": _prices,
             "ChargingScheduleComputed": _schedule}


class SmartChargingProjection(TableProjection):
    name = "pg.smartcharging"
    topics = (SITES.name, SMARTCHARGING.name)
    tables = (("sc_sites", "site_id"), ("sc_site_connectors", "charge_point_id, connector_id"),
              ("sc_needs", "session_id"), ("sc_prices", "site_id"), ("sc_schedules", "site_id"),
              ("sc_session_plans", "session_id"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = _HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)

