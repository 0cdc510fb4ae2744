"""Loader for the Caltech ACN-Data export (`shared/data/sessions/acn_caltech_2021.json`).

Turns sessions into one planning instance per local day. Conventions (chosen to match the issue's
reference computation, which they reproduce: uncontrolled mean/max daily peak 29.4/86.8 kW):

* **Day boundaries**: a session belongs to the America/Los_Angeles calendar day of its
  `connectionTime`. Slot 0 starts at that local midnight.
* **Slots**: 15 minutes. arrival slot = connectionTime rounded to the *nearest* slot boundary,
  departure slot = disconnectTime rounded to the nearest boundary (half up). A session whose two
  rounded times coincide is given one slot (counted as ``extended_to_one_slot``).
* **Horizon**: ``max(96, latest departure slot of the day)``; sessions running past midnight are not
  cut, so a day's instance may be longer than 24 h.
* **Departure**: the *actual* disconnect time. The user's requestedDeparture is kept on the record but
  not used: a car cannot charge after it physically left, and with requested departures the
  reference numbers are not reproduced (uncontrolled mean peak would be 41.2 kW).
* **Demand**: the user's kWhRequested from the *latest* userInputs entry (by modifiedAt) when given
  and positive, else kWhDelivered; then capped to what fits: ``6.6 kW * slots * 0.25 h`` (counted as
  ``demand_capped_to_window``).
* **Power**: 6.6 kW per EV, every EV attached directly to the site root (the ACN file has no
  per-circuit topology), so a site capacity sweep is a sweep of the root cap.

Dirty rows are never dropped silently: each skipped row is counted by reason in `LoadReport.skipped`
(with example ids), each repaired/fallback row in `LoadReport.adjusted`.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

import numpy as np

from .model import EV, LimitNode, Site

__all__ = ["AcnSession", "LoadReport", "load_acn", "day_instances", "DayInstance", "LA"]

LA = ZoneInfo("America/Los_Angeles")
SLOT_MIN = 15
SLOT_HOURS = SLOT_MIN / 60
EV_KW = 6.6


@dataclass(frozen=True)
class AcnSession:
    session_id: str
    station_id: str
    user_id: str | None
    connection: datetime  # tz-aware, LA local
    disconnect: datetime  # tz-aware, LA local
    kwh_delivered: float
    kwh_requested: float | None
    requested_departure: datetime | None

    @property
    def demand_kwh(self) -> float:
        """User-requested energy when given (and positive), else what was delivered."""
        return self.kwh_requested if self.kwh_requested is not None else self.kwh_delivered


@dataclass
class LoadReport:
    """What the loader did with every row: rows = used + sum(skipped)."""

    rows: int = 0
    used: int = 0
    skipped: Counter = field(default_factory=Counter)
    adjusted: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def skip(self, reason: str, ident: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(ident)

    def adjust(self, reason: str, ident: str) -> None:
        self.adjusted[reason] += 1
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(ident)

    def summary(self) -> str:
        sk = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        ad = ", ".join(f"{k}={v}" for k, v in sorted(self.adjusted.items())) or "none"
        return f"{self.rows} rows: {self.used} used; skipped: {sk}; adjusted: {ad}"


def _parse_time(v: Any) -> datetime | None:
    if not isinstance(v, str) or not v.strip():
        return None
    try:
        dt = parsedate_to_datetime(v)  # ACN uses RFC 2822 ("Sat, 01 May 2021 20:42:47 GMT")
    except (TypeError, ValueError, IndexError):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            return None
    if dt.tzinfo is None:
        return None  # a naive time is ambiguous; refuse rather than guess
    return dt.astimezone(LA)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def load_acn(source: str | Path | Iterable[dict], report: LoadReport | None = None) -> tuple[list[AcnSession], LoadReport]:
    """Parse ACN rows (a path to the JSON export, or the decoded list / `_items` dict)."""
    rep = report or LoadReport()
    if isinstance(source, (str, Path)):
        data = json.loads(Path(source).read_text())
    else:
        data = source
    if isinstance(data, dict):
        data = data.get("_items", [])
    out: list[AcnSession] = []
    seen: set[str] = set()
    for n, row in enumerate(data):
        rep.rows += 1
        if not isinstance(row, dict):
            rep.skip("not_an_object", f"row{n}")
            continue
        sid = str(row.get("sessionID") or row.get("_id") or f"row{n}")
        if sid in seen:
            rep.skip("duplicate_session", sid)
            continue
        conn = _parse_time(row.get("connectionTime"))
        disc = _parse_time(row.get("disconnectTime"))
        if conn is None:
            rep.skip("missing_or_bad_connection_time", sid)
            continue
        if disc is None:
            rep.skip("missing_or_bad_disconnect_time", sid)
            continue
        if disc <= conn:
            rep.skip("disconnect_not_after_connect", sid)
            continue
        kwh = _num(row.get("kWhDelivered"))
        req: float | None = None
        req_dep: datetime | None = None
        inputs = row.get("userInputs")
        if isinstance(inputs, list) and inputs:
            valid = [u for u in inputs if isinstance(u, dict)]
            if len(valid) > 1:
                rep.adjust("several_user_inputs_used_latest", sid)
            if valid:
                latest = max(valid, key=lambda u: _parse_time(u.get("modifiedAt")) or conn)
                req = _num(latest.get("kWhRequested"))
                req_dep = _parse_time(latest.get("requestedDeparture"))
                if req is not None and req <= 0:
                    rep.adjust("non_positive_request_used_delivered", sid)
                    req = None
        if kwh is None or kwh <= 0:
            if req is None:
                rep.skip("non_positive_or_missing_kwh", sid)
                continue
            rep.adjust("non_positive_delivered_used_request", sid)
            kwh = 0.0
        seen.add(sid)
        out.append(AcnSession(sid, str(row.get("stationID", "")), row.get("userID"), conn, disc, kwh, req, req_dep))
        rep.used += 1
    return out, rep


def _slot(t: datetime, midnight: datetime) -> int:
    return int(math.floor((t - midnight).total_seconds() / (SLOT_MIN * 60) + 0.5))


def window_ev(session_id: str, a: int, d: int, demand_kwh: float, ev_kw: float, rep: LoadReport,
              horizon: int | None = None) -> EV:
    """One car on the site node from its rounded plug-in/plug-out slots: a window of at least one slot, cut at
    `horizon` if given, and demand capped to what fits in it at `ev_kw` -- each adjustment counted in `rep`
    (shared by the ACN and Trondheim loaders, so both datasets follow the same rules)."""
    if d <= a:
        d = a + 1
        rep.adjust("extended_to_one_slot", session_id)
    if horizon is not None and d > horizon:
        d = horizon
        rep.adjust("departure_truncated_to_horizon", session_id)
    fits = ev_kw * (d - a) * SLOT_HOURS
    e = demand_kwh
    if e > fits:
        rep.adjust("demand_capped_to_window", session_id)
        e = fits
    return EV(session_id, a, d, e, ev_kw, "site")


@dataclass(frozen=True)
class DayInstance:
    day: date
    midnight: datetime  # LA local, tz-aware
    site: Site
    sessions: tuple[AcnSession, ...]


def day_instances(
    sessions: Iterable[AcnSession],
    cap_kw: float = math.inf,
    report: LoadReport | None = None,
    price_fn: Callable[[datetime, int], np.ndarray] | None = None,
    carbon_fn: Callable[[datetime, int], np.ndarray] | None = None,
    ev_kw: float = EV_KW,
) -> list[DayInstance]:
    """One `Site` per LA local day (see module docstring for every convention).

    `price_fn(midnight_local, n_slots)` / `carbon_fn(...)` give the per-slot signals for the day.
    """
    rep = report or LoadReport()
    by_day: dict[date, list[AcnSession]] = defaultdict(list)
    for s in sessions:
        by_day[s.connection.date()].append(s)
    out = []
    for day in sorted(by_day):
        midnight = datetime(day.year, day.month, day.day, tzinfo=LA)
        evs = []
        for s in sorted(by_day[day], key=lambda s: (s.connection, s.session_id)):
            evs.append(window_ev(s.session_id, _slot(s.connection, midnight), _slot(s.disconnect, midnight),
                                 s.demand_kwh, ev_kw, rep))
        n_slots = max(96, max(e.departure for e in evs))
        site = Site(
            tuple(evs), LimitNode("site", cap_kw), n_slots, SLOT_HOURS,
            price=price_fn(midnight, n_slots) if price_fn else None,
            carbon=carbon_fn(midnight, n_slots) if carbon_fn else None,
            start=midnight, name=f"acn-{day.isoformat()}",
        )
        out.append(DayInstance(day, midnight, site, tuple(by_day[day])))
    return out



