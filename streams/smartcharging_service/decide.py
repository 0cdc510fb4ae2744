"""Pure decisions of the smart-charging processor: fold one event into a site's state, decide whether to re-plan,
build the planning instance, plan with the online optimiser, and turn the plans into charging-profile commands.

No I/O here: the state is plain JSON (it lives in Postgres, see processor.py), time comes from the events
(`occurred_at`), and every output id is derived from the event that caused it, so processing an event twice
publishes the same ids (sinks and the OCPP edge's command claim drop the copy).

Invariants (each named by a test in tests/unit/smartcharging_service/):
- A site's plan never gives its connectors together more than any node of its limit tree allows, in any slot,
  and the profile a charger receives never exceeds its plan (limits are rounded down, profiles.py).
- Every plugged car on a site is in every plan of that site (a car is never silently dropped); an impossible need
  is planned best-effort and the schedule says `infeasible` with the reason.
- A meter reading re-plans only when it is off the plan (more than `OFF_PLAN_KWH` + `OFF_PLAN_FRACTION` of the
  planned energy away from what the plan expected by then); otherwise it only updates the delivered energy.
- A charger receives a new profile only when its plan changed (beyond the profile's 0.1 resolution), never a copy.
- Time never runs backwards for a site: `now` is the latest event time seen for it.
- Peak floor (README "Peak floor"): a plan's peak floor is `fraction` x the highest *uncontrolled* daily peak of
  the site's closed local days strictly before the plan's local day (never the day being planned), capped by the
  grid connection (the root limit); `off` plans from 0, `fixed` from a given kW (also capped).  The history is
  folded from the events only (sessions' plug-in, unplug and energy), so replaying the log rebuilds it, and it is
  bounded (`PEAK_HISTORY_DAYS` days, one number each; the stopped sessions of days not yet closed).

Conventions: slots are `slot_minutes` long and aligned to the UTC epoch (so a plan made at 10:07 starts at 10:00
with 15-minute slots); slot 0 of a plan is the slot containing `now` (its elapsed part is counted as if it were
still ahead: at most one slot of optimism); a car may charge only in the slots that END before its departure (a car
leaving at 12:10 plans to 12:00), so a plan that meets the need meets it by the departure.  A driver's `energy_kwh`
is the session's total need (what the meter already shows counts towards it).  Departure/energy come from the driver
(ChargingNeedsSet), else from the session forecast once that driver has history, else from the site's defaults
(`need_source`).

Uncontrolled daily peak (the peak floor's basis, the bench's convention, bench/smart_charging.py): a session
belongs to the site-local calendar day of its plug-in; each of the day's sessions charges at its connector's full
power from plug-in until its energy is reached or it unplugs (energy = the driver's stated need if there is one,
else what the meter delivered; plug-in and unplug rounded to the nearest slot from local midnight, at least one
slot), with no site limit; the day's value is the highest per-slot sum (`baselines.uncontrolled`).  A day closes
when it has ended and every session that plugged in on it has unplugged, or `PEAK_FORCE_CLOSE` after its end (a
session still plugged then counts with what it has delivered so far).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from chargeverse.events import derive, derived_id
from chargeverse.ocpp_commands import V16, CommandInvalid, validate
from streams.smartcharging import EV, LimitNode, OnlinePlanner, OptimiserConfig, Site, set_charging_profile_v201, \
    tx_profile_v16, uncontrolled
from streams.smartcharging.reserve import history_peak_floor

SOURCE = "smartcharging"
#: a meter reading further than this from the plan's expectation triggers a re-plan
OFF_PLAN_KWH = 0.5
OFF_PLAN_FRACTION = 0.10
#: a forecast is trusted for departure/energy once the driver has this many finished sessions behind it
FORECAST_MIN_HISTORY = 3
#: commands older than this are not sent any more (a charger that reconnects later gets the next plan instead)
COMMAND_TTL = timedelta(minutes=10)
OCCUPIED_FAULT = frozenset({"Faulted", "Unavailable"})
OBJECTIVES = ("energy", "peak", "cost", "carbon", "fairness", "asap")
#: how a site's peak floor is set (README "Peak floor"); the default is what bench/smart_charging.py measures
PEAK_FLOOR_MODES = ("history", "off", "fixed")
PEAK_FLOOR_DEFAULT: dict[str, Any] = {"mode": "history", "fraction": 0.6, "kw": None}
#: closed days whose uncontrolled peak is kept (older ones are forgotten: the floor follows the site's recent demand)
PEAK_HISTORY_DAYS = 60
#: a day still waiting for an unplug this long after its end is closed anyway (a lost stop must not hold it open)
PEAK_FORCE_CLOSE = timedelta(days=2)

Output = tuple[str, str, str, dict[str, Any]]  # topic, key, event type, record


# ---- small helpers ---------------------------------------------------------------------------------------------
def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def parse(t: str | datetime) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromisoformat(t)


def slot_floor(t: datetime, slot_s: int) -> datetime:
    ts = int(t.timestamp())
    return datetime.fromtimestamp(ts - ts % slot_s, timezone.utc)


def profile_id(session_id: str) -> int:
    """A stable chargingProfileId per session: the same id replaces the previous profile on the charger."""
    return 1 + int(hashlib.sha256(session_id.encode()).hexdigest()[:8], 16) % 2_000_000_000


def connector_key(cp: str, connector: int) -> str:
    return f"{cp}#{connector}"


# ---- site definition -------------------------------------------------------------------------------------------
class SiteInvalid(ValueError):
    """A site definition that cannot be planned: the message says what to fix."""


def peak_floor_option(opt: dict[str, Any] | None) -> dict[str, Any]:
    """A site's `peak_floor` option, complete (None: the default); SiteInvalid says what is wrong with a bad one.

    `history`: `fraction` (0 < f <= 1) x the highest uncontrolled daily peak of earlier days; `fixed`: `kw` (>= 0);
    `off`: no floor.  Every floor is capped by the grid connection at planning time."""
    if opt is None:
        return dict(PEAK_FLOOR_DEFAULT)
    mode = opt.get("mode") or PEAK_FLOOR_DEFAULT["mode"]
    if mode not in PEAK_FLOOR_MODES:
        raise SiteInvalid(f"peak_floor.mode: one of {', '.join(PEAK_FLOOR_MODES)}, got {mode!r}")
    fraction = opt.get("fraction")
    fraction = PEAK_FLOOR_DEFAULT["fraction"] if fraction is None else fraction
    if not isinstance(fraction, (int, float)) or not math.isfinite(fraction) or not 0 < fraction <= 1:
        raise SiteInvalid(f"peak_floor.fraction must be a number in (0, 1], got {fraction!r}")
    kw = opt.get("kw")
    if mode == "fixed" and kw is None:
        raise SiteInvalid("peak_floor.kw is needed with mode 'fixed'")
    if kw is not None and (not isinstance(kw, (int, float)) or not math.isfinite(kw) or kw < 0):
        raise SiteInvalid(f"peak_floor.kw must be a finite number >= 0, got {kw!r}")
    return {"mode": mode, "fraction": float(fraction), "kw": None if kw is None else float(kw)}


def check_site(limits: list[dict[str, Any]], connectors: list[dict[str, Any]], objectives: list[str],
               peak_floor: dict[str, Any] | None = None) -> None:
    """Refuse a site the planner cannot use: one root, known parents, no cycles, non-negative finite caps,
    connectors under known nodes, no connector twice, known objectives, a valid peak-floor option."""
    peak_floor_option(peak_floor)
    ids = [n["node_id"] for n in limits]
    if not limits:
        raise SiteInvalid("limits: at least the root node (the grid connection) is needed")
    if len(set(ids)) != len(ids):
        raise SiteInvalid("limits: node ids must be unique")
    roots = [n for n in limits if n.get("parent_id") is None]
    if len(roots) != 1:
        raise SiteInvalid(f"limits: exactly one root (parent_id null) is needed, got {len(roots)}")
    known: set[str] = set()
    for n in limits:  # parents before children: this also rules out cycles
        if n.get("parent_id") is not None and n["parent_id"] not in known:
            raise SiteInvalid(f"limits: node {n['node_id']!r} names parent {n['parent_id']!r} before it is defined")
        cap = n["cap_kw"]
        if not isinstance(cap, (int, float)) or not math.isfinite(cap) or cap < 0:
            raise SiteInvalid(f"limits: node {n['node_id']!r} cap_kw must be a finite number >= 0, got {cap!r}")
        known.add(n["node_id"])
    if not connectors:
        raise SiteInvalid("connectors: a site powers at least one connector")
    seen: set[tuple[str, int]] = set()
    for c in connectors:
        k = (c["charge_point_id"], int(c["connector_id"]))
        if k in seen:
            raise SiteInvalid(f"connectors: {k[0]} connector {k[1]} is listed twice")
        seen.add(k)
        if c["node_id"] not in known:
            raise SiteInvalid(f"connectors: {k[0]} connector {k[1]} hangs under unknown node {c['node_id']!r}")
        if not math.isfinite(c["max_kw"]) or c["max_kw"] <= 0:
            raise SiteInvalid(f"connectors: {k[0]} connector {k[1]} max_kw must be > 0")
        if int(c["connector_id"]) < 1:
            raise SiteInvalid("connectors: connector ids start at 1 (0 is the whole charger)")
        if c.get("unit", "W") not in ("W", "A") or int(c.get("phases", 3)) not in (1, 2, 3):
            raise SiteInvalid("connectors: unit must be W or A and phases 1, 2 or 3")
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives or len(set(objectives)) != len(objectives):
        raise SiteInvalid(f"objectives: distinct values from {', '.join(OBJECTIVES)}, got {objectives}")


def tree(site: dict[str, Any]) -> LimitNode:
    """The limit tree with one leaf per connector (capped at its rating) under the node it hangs from."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for n in site["limits"]:
        children.setdefault(n.get("parent_id"), []).append(n)
    leaves: dict[str, list[LimitNode]] = {}
    for c in site["connectors"]:
        leaves.setdefault(c["node_id"], []).append(
            LimitNode(connector_key(c["charge_point_id"], int(c["connector_id"])), float(c["max_kw"])))

    def build(n: dict[str, Any]) -> LimitNode:
        kids = tuple(build(k) for k in children.get(n["node_id"], [])) + tuple(leaves.get(n["node_id"], []))
        return LimitNode(n["node_id"], float(n["cap_kw"]), kids)

    return build(children[None][0])


def new_state(site_event: dict[str, Any]) -> dict[str, Any]:
    return {"site": site_from_event(site_event), "clock": None, "sessions": {}, "pending": {}, "prices": None,
            "faulted": [], "peaks": new_peaks()}


def new_peaks() -> dict[str, Any]:
    """The uncontrolled-peak history: `days` = [[local date, peak kW, sessions]] of closed days (oldest first),
    `open` = {local date: [[plug-in, unplug, kWh, kW], ...]} of the unplugged sessions of days not closed yet."""
    return {"days": [], "open": {}}


def site_from_event(rec: dict[str, Any]) -> dict[str, Any]:
    return {"site_id": rec["site_id"], "version": rec["event_id"], "name": rec["name"], "fleet_id": rec["fleet_id"],
            "owner_account_id": rec["owner_account_id"], "time_zone": rec["time_zone"],
            "slot_minutes": int(rec["slot_minutes"]), "horizon_hours": int(rec["horizon_hours"]),
            "objectives": list(rec["objectives"]), "limits": [dict(n) for n in rec["limits"]],
            "connectors": [dict(c) for c in rec["connectors"]],
            "default_departure_hours": float(rec["default_departure_hours"]),
            "default_energy_kwh": float(rec["default_energy_kwh"]),
            "peak_floor": peak_floor_in_force(rec.get("peak_floor"))}


def peak_floor_in_force(opt: dict[str, Any] | None) -> dict[str, Any]:
    """The option in force for what an event (or the projection) carries: None is the default; one the API would
    have refused (an event written by hand) is the default too, with the reason in `invalid`, so the processor
    keeps planning (and says so in every plan) and the site read shows it instead of failing."""
    try:
        return peak_floor_option(opt)
    except SiteInvalid as exc:
        return dict(PEAK_FLOOR_DEFAULT, invalid=str(exc))


# ---- folding events ---------------------------------------------------------------------------------------------
@dataclass
class Step:
    """What one event did to a site: its new state, whether to re-plan, and why."""

    state: dict[str, Any] | None
    replan: bool = False
    trigger: str = ""
    notes: list[str] = field(default_factory=list)


def _tick(state: dict[str, Any], at: datetime) -> datetime:
    now = at if state["clock"] is None else max(at, parse(state["clock"]))
    state["clock"] = iso(now)
    return now


def expected_delivered(plan: dict[str, Any] | None, at: datetime) -> float | None:
    """kWh the plan expected the meter to show at `at` (None without a plan)."""
    if not plan:
        return None
    start, slot_s = parse(plan["start"]), int(plan["slot_s"])
    elapsed = (at - start).total_seconds()
    got = float(plan["delivered0"])
    for i, p in enumerate(plan["power"]):
        overlap = min(max(elapsed - i * slot_s, 0.0), slot_s)
        if overlap <= 0:
            break
        got += p * overlap / 3600.0
    return got


def off_plan(plan: dict[str, Any] | None, delivered_kwh: float, at: datetime) -> bool:
    """Whether a meter reading is far enough from the plan to re-plan (no plan yet: always)."""
    exp = expected_delivered(plan, at)
    if exp is None:
        return True
    planned_so_far = max(exp - float(plan["delivered0"]), 0.0) if plan else 0.0
    return abs(delivered_kwh - exp) > OFF_PLAN_KWH + OFF_PLAN_FRACTION * planned_so_far


def _apply_needs(sess: dict[str, Any], needs: dict[str, Any]) -> None:
    if needs.get("departure_at") is not None:
        sess["departure_at"] = iso(parse(needs["departure_at"]))
    if needs.get("energy_kwh") is not None:
        sess["energy_kwh"] = float(needs["energy_kwh"])
    sess["mode"] = needs.get("mode") or sess.get("mode", "asap")
    sess["driver_set"] = True


def _remember(state: dict[str, Any], session_id: str, kind: str, value: dict[str, Any]) -> None:
    """Keep an input that arrived before its session's start (topics are not ordered with each other)."""
    pend = state["pending"]
    pend.setdefault(session_id, {})[kind] = value
    while len(pend) > 200:  # bounded: an input for a session that never starts here must not grow the state
        pend.pop(next(iter(pend)))


# ---- the uncontrolled-peak history (the peak floor's basis) ------------------------------------------------------
def local_day(site: dict[str, Any], t: datetime) -> date:
    """The site-local calendar day of an instant."""
    return t.astimezone(ZoneInfo(site["time_zone"])).date()


def local_midnight(site: dict[str, Any], d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(site["time_zone"]))


def _nearest_slot(t: datetime, midnight: datetime, slot_s: int) -> int:
    return int(math.floor((t - midnight).total_seconds() / slot_s + 0.5))


def uncontrolled_day_peak(entries: list[list[Any]], midnight: datetime, slot_s: int) -> float:
    """The uncontrolled peak (kW) of one day's sessions, `entries` = [plug-in, unplug, kWh, kW]: each at full power
    from plug-in until its energy is reached or it unplugs, no site limit (`baselines.uncontrolled`, as the bench
    computes it), slots rounded to the nearest from `midnight`, at least one slot per session."""
    evs = []
    for i, (start, stop, kwh, kw) in enumerate(entries):
        a = max(0, _nearest_slot(parse(start), midnight, slot_s))
        d = max(a + 1, _nearest_slot(parse(stop), midnight, slot_s))
        evs.append(EV(f"s{i}", a, d, max(float(kwh), 0.0), float(kw), "site"))
    if not evs:
        return 0.0
    return uncontrolled(Site(tuple(evs), LimitNode("site", math.inf), max(e.departure for e in evs),
                             slot_s / 3600.0)).peak_kw()


def _peaks(state: dict[str, Any]) -> dict[str, Any]:
    return state.setdefault("peaks", new_peaks())  # a state saved before the history existed starts empty


def _connector_kw(site: dict[str, Any], sess: dict[str, Any]) -> float | None:
    key = connector_key(sess["cp"], sess["connector"])
    return next((float(c["max_kw"]) for c in site["connectors"]
                 if connector_key(c["charge_point_id"], int(c["connector_id"])) == key), None)


def _history_cutoff(site: dict[str, Any], now: datetime) -> date:
    return local_day(site, now) - timedelta(days=PEAK_HISTORY_DAYS)


def _record_unplug(state: dict[str, Any], sess: dict[str, Any], now: datetime, delivered_kwh: float) -> None:
    """Keep an unplugged session for its plug-in day's uncontrolled peak (until that day closes)."""
    site, peaks = state["site"], _peaks(state)
    day = local_day(site, parse(sess["started_at"]))
    kw = _connector_kw(site, sess)
    if kw is None or day < _history_cutoff(site, now) or any(d == day.isoformat() for d, *_ in peaks["days"]):
        return  # a day already closed (forced) or forgotten is not reopened by a late unplug
    energy = float(sess["energy_kwh"]) if sess.get("driver_set") and sess.get("energy_kwh") is not None \
        else delivered_kwh
    peaks["open"].setdefault(day.isoformat(), []).append([sess["started_at"], iso(now), round(energy, 6), kw])


def close_days(state: dict[str, Any], now: datetime) -> list[str]:
    """Close the days that are over (module docstring) into their uncontrolled peaks; returns the days closed.
    Keeps at most `PEAK_HISTORY_DAYS` days, none older than that many days before today."""
    site, peaks = state["site"], _peaks(state)
    slot_s = site["slot_minutes"] * 60
    cutoff = _history_cutoff(site, now)
    plugged: dict[date, list[dict[str, Any]]] = {}
    for s in state["sessions"].values():
        plugged.setdefault(local_day(site, parse(s["started_at"])), []).append(s)
    done = {d for d, *_ in peaks["days"]}
    closed = []
    for day in sorted(set(map(date.fromisoformat, peaks["open"])) | set(plugged)):
        if day.isoformat() in done:
            continue
        end = local_midnight(site, day + timedelta(days=1))
        forced = now >= end + PEAK_FORCE_CLOSE
        if now < end or (day in plugged and not forced):
            continue
        entries = list(peaks["open"].pop(day.isoformat(), []))
        for s in plugged.get(day, []) if forced else []:  # never unplugged: counted with what it has had so far
            kw = _connector_kw(site, s)
            if kw is not None:
                entries.append([s["started_at"], iso(now), float(s["delivered_kwh"]), kw])
        if day >= cutoff:
            peaks["days"].append([day.isoformat(), round(uncontrolled_day_peak(entries, local_midnight(site, day),
                                                                               slot_s), 6), len(entries)])
            closed.append(day.isoformat())
    if closed:
        kept = sorted(d for d in peaks["days"] if date.fromisoformat(d[0]) >= cutoff)
        peaks["days"] = kept[-PEAK_HISTORY_DAYS:]
    return closed


def root_cap(site: dict[str, Any]) -> float:
    return float(next(n["cap_kw"] for n in site["limits"] if n.get("parent_id") is None))


def peak_floor(state: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The peak floor a plan made at `now` uses, and where it came from (module docstring, README "Peak floor").

    `source`: `history` (fraction x the highest uncontrolled peak of the closed days before today, `basis_day`
    being that day), `no_history` (history mode, no closed earlier day yet: 0), `fixed` or `off`.
    `capped_by_grid`: the wanted floor was above the grid connection (the root limit) and is the connection."""
    site = state["site"]
    opt = site.get("peak_floor") or dict(PEAK_FLOOR_DEFAULT)
    grid = root_cap(site)
    today = local_day(site, now)
    earlier = [(date.fromisoformat(d), float(p)) for d, p, _ in _peaks(state)["days"] if date.fromisoformat(d) < today]
    out: dict[str, Any] = {"mode": opt["mode"], "source": opt["mode"], "fraction": None, "basis_day": None,
                           "basis_peak_kw": None, "history_days": len(earlier), "grid_kw": grid}
    want = 0.0
    if opt["mode"] == "fixed":
        want = float(opt["kw"])
    elif opt["mode"] == "history":
        out["fraction"] = float(opt["fraction"])
        if earlier:
            basis = max(earlier, key=lambda x: (x[1], x[0]))
            want = history_peak_floor(earlier, today, float(opt["fraction"]))
            out.update(basis_day=basis[0].isoformat(), basis_peak_kw=basis[1])
        else:
            out["source"] = "no_history"
    out["kw"] = round(min(want, grid), 6)
    out["capped_by_grid"] = want > grid
    return out


def fold(state: dict[str, Any] | None, etype: str, rec: dict[str, Any]) -> Step:
    """Fold one event (already routed to this site) into the site's state; closes the days that are over (a
    closed day that changes the peak floor in force re-plans the site's plugged cars)."""
    step = _fold(state, etype, rec)
    if step.state is None:
        return step
    now = parse(step.state["clock"])
    before = peak_floor(step.state, now)["kw"] if step.state["sessions"] else None
    if close_days(step.state, now) and before is not None and not step.replan and \
            peak_floor(step.state, now)["kw"] != before:
        step.replan, step.trigger = True, etype
    return step


def _fold(state: dict[str, Any] | None, etype: str, rec: dict[str, Any]) -> Step:
    at = rec["occurred_at"]
    if etype == "SiteDefined":
        if state is None:
            state = new_state(rec)
        else:
            state["site"] = site_from_event(rec)
            keep = {connector_key(c["charge_point_id"], int(c["connector_id"])) for c in state["site"]["connectors"]}
            dropped = [sid for sid, s in state["sessions"].items()
                       if connector_key(s["cp"], s["connector"]) not in keep]
            for sid in dropped:
                del state["sessions"][sid]
            state["faulted"] = [k for k in state["faulted"] if k in keep]
        _tick(state, at)
        return Step(state, bool(state["sessions"]), etype)
    if state is None:
        return Step(None)
    now = _tick(state, at)
    sessions = state["sessions"]
    if etype == "ChargingNeedsSet":
        sid = rec["session_id"]
        needs = {"departure_at": iso(rec["departure_at"]) if rec.get("departure_at") else None,
                 "energy_kwh": rec.get("energy_kwh"), "mode": rec.get("mode") or "asap"}
        if sid not in sessions:
            _remember(state, sid, "needs", needs)
            return Step(state)
        _apply_needs(sessions[sid], needs)
        return Step(state, True, etype)
    if etype == "ChargingPriceSignalSet":
        state["prices"] = {"currency": rec["currency"],
                           "points": [[iso(p["starts_at"]), p["price_per_kwh"], p.get("carbon_g_per_kwh")]
                                      for p in rec["points"]]}
        return Step(state, bool(sessions), etype)
    if etype == "SessionStarted":
        sid = rec["session_id"]
        if sid in sessions:
            return Step(state)
        conn = rec["evse_id"] if rec.get("evse_id") is not None else rec.get("connector_id")
        sess = {"cp": rec["charge_point_id"], "connector": int(conn), "tx": rec["transaction_id"],
                "version": rec["ocpp_version"], "started_at": iso(now), "id_token": rec.get("id_token"),
                "delivered_kwh": 0.0, "departure_at": None, "energy_kwh": None, "mode": "asap", "driver_set": False,
                "forecast": None, "plan": None}
        pend = state["pending"].pop(sid, {})
        if "forecast" in pend:
            sess["forecast"] = pend["forecast"]
        if "needs" in pend:
            _apply_needs(sess, pend["needs"])
        sessions[sid] = sess
        return Step(state, True, etype)
    if etype == "SessionMeterSample":
        sess = sessions.get(rec["session_id"])
        if sess is None:
            return Step(state)
        delivered = max(float(rec["energy_wh"]) / 1000.0, 0.0)
        sess["delivered_kwh"] = delivered
        return Step(state, off_plan(sess.get("plan"), delivered, now), etype)
    if etype == "SessionStopped":
        sess = sessions.pop(rec["session_id"], None)
        if sess is None:
            return Step(state)
        _record_unplug(state, sess, now, max(float(sess["delivered_kwh"]), float(rec.get("energy_wh") or 0) / 1000))
        return Step(state, bool(sessions), etype)
    if etype == "ConnectorStatusChanged":
        cp, conn = rec["station_id"], int(rec["connector_id"])
        mine = [connector_key(c["charge_point_id"], int(c["connector_id"])) for c in state["site"]["connectors"]
                if c["charge_point_id"] == cp and (conn == 0 or int(c["connector_id"]) == conn)]
        faulted = set(state["faulted"])
        before = set(faulted)
        for k in mine:
            if rec["status"] in OCCUPIED_FAULT:
                faulted.add(k)
            else:
                faulted.discard(k)
        state["faulted"] = sorted(faulted)
        return Step(state, faulted != before and bool(sessions), etype)
    if etype == "SessionForecast":
        fc = {"kwh": float(rec["predicted_kwh"]), "hours": float(rec["predicted_duration_h"]),
              "seen": int(rec["user_sessions_seen"])}
        sess = sessions.get(rec["session_id"])
        if sess is None:
            _remember(state, rec["session_id"], "forecast", fc)
            return Step(state)
        sess["forecast"] = fc
        return Step(state, not sess["driver_set"] and usable(fc), etype)
    return Step(state)


def usable(fc: dict[str, Any] | None) -> bool:
    return bool(fc) and fc["seen"] >= FORECAST_MIN_HISTORY and fc["hours"] > 0 and fc["kwh"] > 0  # type: ignore[index]


# ---- planning ---------------------------------------------------------------------------------------------------
def need(site: dict[str, Any], sess: dict[str, Any]) -> tuple[datetime, float, str]:
    """(departure, total energy need, where they came from) of a session."""
    started = parse(sess["started_at"])
    fc = sess.get("forecast")
    source = "driver" if sess.get("driver_set") else ("forecast" if usable(fc) else "default")
    dep = sess.get("departure_at")
    if dep is not None:
        departure = parse(dep)
    elif usable(fc):
        departure = started + timedelta(hours=fc["hours"])
    else:
        departure = started + timedelta(hours=site["default_departure_hours"])
    energy = sess.get("energy_kwh")
    if energy is None:
        energy = fc["kwh"] if usable(fc) else site["default_energy_kwh"]
    return departure, float(energy), source


def signal(points: list[list[Any]] | None, start: datetime, n: int, slot_s: int, which: int) -> np.ndarray | None:
    """Per-slot values of a step-function signal (1: price, 2: carbon); before the first point the first value
    holds, after the last point the last.  None when there is no such signal."""
    if not points or any(p[which] is None for p in points):
        return None
    times = [parse(p[0]) for p in points]
    vals = [float(Decimal(str(p[which]))) for p in points]
    out = np.empty(n)
    j = 0
    for i in range(n):
        t = start + timedelta(seconds=i * slot_s)
        while j + 1 < len(times) and times[j + 1] <= t:
            j += 1
        out[i] = vals[j]
    return out


def objectives_for(state: dict[str, Any]) -> tuple[tuple[str, ...], list[str]]:
    """The site's objectives, with `cost` right after `energy` when a car asked for the cheapest hours; objectives
    that lack their signal are dropped with a note."""
    objs = list(state["site"]["objectives"])
    notes: list[str] = []
    if any(s.get("mode") == "cheapest" for s in state["sessions"].values()) and "cost" not in objs:
        objs.insert(objs.index("energy") + 1 if "energy" in objs else 0, "cost")
    prices = state.get("prices")
    pts = prices["points"] if prices else None
    if "cost" in objs and not pts:
        objs.remove("cost")
        notes.append("cost objective skipped: the site has no price signal")
    if "carbon" in objs and (not pts or any(p[2] is None for p in pts)):
        objs.remove("carbon")
        notes.append("carbon objective skipped: the site has no carbon signal")
    return tuple(objs) or ("energy",), notes


@dataclass
class SitePlan:
    start: datetime
    slot_s: int
    power: dict[str, list[float]]  # session id -> kW per slot from start
    rows: list[dict[str, Any]]  # per session: requested, delivered, planned, departure, source
    objectives: tuple[str, ...]
    issues: list[str]
    infeasible: bool
    peak_kw: float
    solve_ms: float
    peak_floor: dict[str, Any] = field(default_factory=dict)  # `peak_floor()` of the plan


def plan_site(state: dict[str, Any], now: datetime) -> SitePlan:
    """Plan every plugged car of the site from the slot containing `now`, with the online optimiser."""
    site = state["site"]
    slot_s = site["slot_minutes"] * 60
    start = slot_floor(now, slot_s)
    horizon = max(1, site["horizon_hours"] * 3600 // slot_s)
    conns = {connector_key(c["charge_point_id"], int(c["connector_id"])): c for c in site["connectors"]}
    order = sorted(state["sessions"])
    rows: list[dict[str, Any]] = []
    deps: list[int] = []
    for sid in order:
        s = state["sessions"][sid]
        departure, energy, source = need(site, s)
        dslots = math.floor((departure - start).total_seconds() / slot_s)
        deps.append(min(max(dslots, 1), horizon))  # a car past its departure still gets the slot it is in
        rows.append({"session_id": sid, "departure": departure, "requested": energy, "source": source,
                     "delivered": float(s["delivered_kwh"]), "remaining": max(energy - float(s["delivered_kwh"]), 0.0)})
    n = max(deps, default=1)
    objs, issues = objectives_for(state)
    pts = state["prices"]["points"] if state.get("prices") else None
    price, carbon = signal(pts, start, n, slot_s, 1), signal(pts, start, n, slot_s, 2)
    counts: dict[str, int] = {}
    for sid in order:
        k = connector_key(state["sessions"][sid]["cp"], state["sessions"][sid]["connector"])
        counts[k] = counts.get(k, 0) + 1
    planner = OnlinePlanner(tree(site), n, slot_s / 3600.0, OptimiserConfig(objectives=objs), price=price,
                            carbon=carbon, seats_per_node=counts)
    floor = peak_floor(state, now)
    if floor["kw"] > 0:  # load up to the floor is free in the peak stage: `asap` front-loads up to it
        planner.peak_hint = floor["kw"]
        planner.cm.set_peak_floor(floor["kw"])
    if (site.get("peak_floor") or {}).get("invalid"):
        issues.append(f"peak_floor option ignored, the default is used: {site['peak_floor']['invalid']}")
    if floor["kw"] > 0 and "peak" not in objs:
        issues.append("peak floor not used: the site's objectives have no peak stage")
    for k in state["faulted"]:
        if k in counts:
            planner.fault(k)
    for sid, row, d in zip(order, rows, deps):
        s = state["sessions"][sid]
        c = conns[connector_key(s["cp"], s["connector"])]
        planner.arrive(EV(sid, 0, d, row["remaining"], float(c["max_kw"]), connector_key(s["cp"], s["connector"]),
                          phases=int(c.get("phases", 3))))
    plans = planner.replan() if order else {}
    issues += [f"{i.subject}: {i.message}" for i in planner.issues]
    power = {sid: [round(float(x), 6) for x in plans.get(sid, np.zeros(n))] for sid in order}
    infeasible = False
    for row in rows:
        got = sum(power[row["session_id"]]) * slot_s / 3600.0
        row["planned"] = got
        if got < row["remaining"] - max(1e-3, 1e-3 * row["remaining"]):
            infeasible = True
            issues.append(f"{row['session_id']}: needs {row['remaining']:.2f} kWh more but at most {got:.2f} kWh "
                          f"fit before departure")
    load = np.sum([power[s] for s in order], axis=0) if order else np.zeros(1)
    return SitePlan(start, slot_s, power, rows, objs, issues, infeasible, float(np.max(load)) if order else 0.0,
                    planner.solve_seconds * 1000.0, floor)


def aligned(old: dict[str, Any] | None, start: datetime, n: int) -> list[float] | None:
    """The old plan's kW for the `n` slots from `start` (0 beyond its end); None without an old plan."""
    if not old:
        return None
    off = int((start - parse(old["start"])).total_seconds()) // int(old["slot_s"])
    return [old["power"][off + i] if 0 <= off + i < len(old["power"]) else 0.0 for i in range(n)]


def changed(old: dict[str, Any] | None, start: datetime, power: list[float], slot_s: int) -> bool:
    """Whether a new plan differs from what the charger has (at the profiles' 0.1 kW resolution)."""
    if not old or int(old["slot_s"]) != slot_s or not old.get("sent"):
        return True
    prev = aligned(old, start, len(power))
    assert prev is not None
    return any(math.floor(a * 10 + 1e-9) != math.floor(b * 10 + 1e-9) for a, b in zip(prev, power))


def profile_payload(sess: dict[str, Any], conn: dict[str, Any], sid: str, power: list[float], start: datetime,
                    slot_s: int) -> dict[str, Any]:
    unit, phases = conn.get("unit", "W"), int(conn.get("phases", 3))
    if sess["version"] == V16:
        tx = int(sess["tx"]) if str(sess["tx"]).lstrip("-").isdigit() else None
        return tx_profile_v16(power, start, slot_s, sess["connector"], profile_id(sid), transaction_id=tx,
                              unit=unit, phases=phases)
    return set_charging_profile_v201(power, start, slot_s, sess["connector"], profile_id(sid),
                                     transaction_id=str(sess["tx"]), unit=unit, phases=phases)


def outputs(state: dict[str, Any], plan: SitePlan, trigger: str, cause: dict[str, Any],
            commands_topic: str, schedules_topic: str) -> list[Output]:
    """The profile commands for changed plans and the schedule event; records the plans in `state`."""
    site = state["site"]
    conns = {connector_key(c["charge_point_id"], int(c["connector_id"])): c for c in site["connectors"]}
    now = parse(state["clock"])
    outs: list[Output] = []
    rows = []
    issues = list(plan.issues)
    for row in plan.rows:
        sid = row["session_id"]
        sess = state["sessions"][sid]
        power = plan.power[sid]
        command_id = None
        if changed(sess.get("plan"), plan.start, power, plan.slot_s):
            payload = profile_payload(sess, conns[connector_key(sess["cp"], sess["connector"])], sid, power,
                                      plan.start, plan.slot_s)
            try:
                validate("SetChargingProfile", payload, sess["version"])
            except CommandInvalid as exc:
                issues.append(f"{sid}: profile not sent: {exc}")
            else:
                command_id = derived_id(cause["event_id"], f"sc-command/{site['site_id']}/{sid}")
                cmd = derive(cause, tag=f"sc-profile/{site['site_id']}/{sid}", source=SOURCE,
                             command_id=command_id, charge_point_id=sess["cp"], action="SetChargingProfile",
                             payload=json.dumps(payload, sort_keys=True), ocpp_version=sess["version"],
                             requested_by=f"{SOURCE}:{site['site_id']}", expires_at=now + COMMAND_TTL,
                             timeout_ms=30_000)
                outs.append((commands_topic, sess["cp"], "OcppCommandRequested", cmd))
        sent = command_id is not None or bool(sess.get("plan") and sess["plan"].get("sent") and
                                              not changed(sess.get("plan"), plan.start, power, plan.slot_s))
        sess["plan"] = {"start": iso(plan.start), "slot_s": plan.slot_s, "power": power,
                        "delivered0": row["delivered"], "sent": sent}
        rows.append({"session_id": sid, "charge_point_id": sess["cp"], "connector_id": sess["connector"],
                     "ocpp_version": sess["version"], "power_kw": power, "requested_kwh": row["requested"],
                     "delivered_kwh": row["delivered"], "planned_kwh": row["planned"],
                     "departure_at": row["departure"], "need_source": row["source"], "command_id": command_id})
    sched = derive(cause, tag=f"sc-schedule/{site['site_id']}", source=SOURCE, site_id=site["site_id"],
                   site_version=site["version"], trigger=trigger, plan_start=plan.start, slot_seconds=plan.slot_s,
                   objectives=list(plan.objectives), sessions=rows, site_peak_kw=plan.peak_kw,
                   infeasible=plan.infeasible, issues=issues, solve_ms=plan.solve_ms,
                   peak_floor=plan.peak_floor or None)
    outs.append((schedules_topic, site["site_id"], "ChargingScheduleComputed", sched))
    return outs


# ---- routing ----------------------------------------------------------------------------------------------------
@dataclass
class Index:
    """Which site an event concerns: by connector, by session, by charger."""

    by_connector: dict[str, str] = field(default_factory=dict)
    by_session: dict[str, str] = field(default_factory=dict)
    by_charger: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, states: dict[str, dict[str, Any]]) -> "Index":
        ix = cls()
        for site_id, st in states.items():
            ix.add(site_id, st)
        return ix

    def add(self, site_id: str, st: dict[str, Any]) -> None:
        for k in [k for k, v in self.by_connector.items() if v == site_id]:
            del self.by_connector[k]
        for v in self.by_charger.values():
            v.discard(site_id)
        for c in st["site"]["connectors"]:
            self.by_connector[connector_key(c["charge_point_id"], int(c["connector_id"]))] = site_id
            self.by_charger.setdefault(c["charge_point_id"], set()).add(site_id)
        for sid in st["sessions"]:
            self.by_session[sid] = site_id

    def route(self, etype: str, rec: dict[str, Any]) -> list[str]:
        if etype in ("SiteDefined", "ChargingNeedsSet", "ChargingPriceSignalSet"):
            return [rec["site_id"]]
        if etype == "SessionStarted":
            conn = rec["evse_id"] if rec.get("evse_id") is not None else rec.get("connector_id")
            site = self.by_connector.get(connector_key(rec["charge_point_id"], int(conn))) if conn is not None \
                else None
            return [site] if site else []
        if etype in ("SessionMeterSample", "SessionStopped"):
            site = self.by_session.get(rec["session_id"])
            return [site] if site else []
        if etype == "SessionForecast":
            site = self.by_session.get(rec["session_id"])
            if site:
                return [site]
            sites = self.by_charger.get(rec["station_id"], set())
            return sorted(sites) if len(sites) == 1 else []
        if etype == "ConnectorStatusChanged":
            return sorted(self.by_charger.get(rec["station_id"], set()))
        return []
