"""Loader for the Trondheim residential charging reports (`shared/data/sessions/norway_trondheim_2018_2020.csv`).

Source: Sørensen, Lindberg, Sartori, Andresen, "Residential electric vehicle charging datasets from
apartment buildings", Data in Brief 36 (2021) 107105, "Dataset 1 EV charging reports", CC BY 4.0.
6,878 sessions of 97 users in 24 garages of one housing cooperative in Trondheim, 2018-12-21..2020-01-31.
`;` separated, decimal comma, local times ``dd.mm.yyyy hh:mm``. Per session the file gives plug-in
and plug-out time and the energy charged -- no requested energy, no requested departure, no power.

WHY a separate loader: the issue asks to replay these sessions as sites next to the Caltech ACN
ones. Residential charging differs from a workplace in exactly the ways that decide the
conventions below: cars arrive in the evening and leave the next morning (or days later), and the
charge points are small AC ones. Conventions (each is printed by the bench next to its numbers):

* **Site**: the whole housing cooperative is *one* site (every garage's charge points behind one
  connection), each car attached directly to the site root, so a capacity sweep is a sweep of the
  cooperative's connection. The file's garages are kept on every session (`garage_id`);
  ``by_garage=True`` gives one site per garage and day instead (24 garages; the busiest, "Bl2", holds
  a third of the sessions -- the garage the paper has smart-meter data for).
* **Day**: a session belongs to the *noon-to-noon* day in which it was plugged in: day ``D`` runs
  from ``D 12:00`` to ``D+1 12:00`` Europe/Oslo, and slot 0 starts at ``D 12:00``. Measured on the
  file: the fewest cars are plugged in at 12:00-13:59 (~2,000 car-hours per clock hour vs ~4,450 at
  night), and a noon boundary is crossed by 21 % of sessions, a midnight boundary by 56 %. With
  calendar days an evening arrival and the next morning's departure would be cut apart.
* **Slots**: 15 minutes of *elapsed* time (UTC arithmetic, so DST nights are 23 h / 25 h of slots),
  arrival = plug-in rounded to the nearest slot boundary, departure = plug-out rounded to the nearest
  (half up); equal rounded times get one slot (``extended_to_one_slot``).
* **Horizon**: ``max(96, latest departure slot of the day)``, at most `MAX_HORIZON_SLOTS` = 192, i.e.
  until ``D+2 12:00``. A car still plugged in then is planned as leaving at the horizon end (counted
  as ``departure_truncated_to_horizon``: 191 of 6,827 sessions; long stays run to 255 h). WHY: the
  day instances are planned independently, so slots beyond ``D+1 12:00`` belong to later days'
  instances too; 48 h leaves every truncated car at least 24 h (its largest charge, 80.9 kWh, needs
  11.2 h at 7.2 kW), and uncut, one pre-Christmas day spans 769 slots and dominates the run time of
  the online replay. ``max_horizon_slots=None`` keeps every plug-out, as the ACN replay does.
* **Departure**: the actual plug-out (the only departure the file has), within the horizon.
* **Demand**: the charged energy ``El_kWh`` (the only energy the file has), capped to what fits in
  the rounded window at the EV power (``demand_capped_to_window``).
* **Power**: 7.2 kW per EV (`EV_KW`): the higher of the two charging powers the dataset's authors
  assume (3.6 / 7.2 kW); 99 % of sessions average at most 7.24 kW over their plug-in time, the
  fastest 7.78 kW (short sessions, minute-rounded times), so 7.2 kW is what the chargers deliver.
* **Times**: the file's times are Europe/Oslo wall clock. Elapsed time is computed from them, not
  taken from ``Duration_hours``: that column is off by whole hours on 11 rows (six over the DST night
  of 2019-03-31, +1 h; five plugged in on 2019-06-22, -2 h), counted as ``duration_column_disagrees``
  (the row is still used).
  A wall time that exists twice (DST fall-back) is read as the first, summer-time, one; one that does
  not exist (DST gap) with the offset before the jump; counted as ``ambiguous_local_time`` /
  ``nonexistent_local_time`` (none on the real file).

Dirty rows are never dropped silently: `LoadReport.skipped` counts each skipped row by reason (with
example ids), `LoadReport.adjusted` each repaired or noted one; ``rows == used + sum(skipped)``. On the
real file 34 sessions have no plug-out (``NA``) and 17 plug out in the minute they plugged in; they are
skipped, as a departure cannot be invented. A file without the needed columns is a clear `ValueError`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

import numpy as np

from .acn import LoadReport, window_ev
from .model import LimitNode, Site

__all__ = [
    "OSLO", "EV_KW", "SLOT_MIN", "DAY_START_HOUR", "MAX_HORIZON_SLOTS", "REQUIRED_COLUMNS",
    "TrondheimSession", "SiteDay", "load_trondheim", "day_instances",
]

OSLO = ZoneInfo("Europe/Oslo")
SLOT_MIN = 15
SLOT_HOURS = SLOT_MIN / 60
EV_KW = 7.2
DAY_START_HOUR = 12
MAX_HORIZON_SLOTS = 192  # 48 h of 15-min slots from the day's noon
REQUIRED_COLUMNS = ("session_ID", "Garage_ID", "User_ID", "Start_plugin", "End_plugout", "El_kWh")
_MISSING = {"", "NA", "NaN", "nan", "null", "None"}


@dataclass(frozen=True)
class TrondheimSession:
    session_id: str
    garage_id: str
    user_id: str
    user_type: str  # "Private" (own charge point) or "Shared" (a shared charge point, `shared_id`)
    shared_id: str | None
    plugin: datetime  # tz-aware, Europe/Oslo
    plugout: datetime  # tz-aware, Europe/Oslo, strictly after plugin
    kwh: float  # charged energy, > 0

    @property
    def demand_kwh(self) -> float:
        """The file has no requested energy: the demand is what was charged."""
        return self.kwh

    @property
    def hours(self) -> float:
        return (self.plugout.astimezone(timezone.utc) - self.plugin.astimezone(timezone.utc)).total_seconds() / 3600


def _local_time(text: str, sid: str, rep: LoadReport) -> datetime | None:
    """Parse ``dd.mm.yyyy hh:mm`` (seconds optional) as Europe/Oslo wall clock; None if not that format."""
    s = text.strip()
    for fmt in ("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S"):
        try:
            naive = datetime.strptime(s, fmt)
            break
        except ValueError:
            continue
    else:
        return None
    first = naive.replace(tzinfo=OSLO, fold=0)
    second = naive.replace(tzinfo=OSLO, fold=1)
    if first.utcoffset() != second.utcoffset():
        # zoneinfo: the two folds differ only for times in a DST gap or overlap. A round trip through
        # UTC tells which: a gap time does not come back as the same wall clock.
        back = first.astimezone(timezone.utc).astimezone(OSLO).replace(tzinfo=None)
        rep.adjust("nonexistent_local_time" if back != naive else "ambiguous_local_time", sid)
    return first


def _decimal(text: str) -> float | None:
    s = text.strip()
    if s in _MISSING:
        return None
    try:
        v = float(s.replace(",", "."))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _lines(source: str | Path | Iterable[str]) -> Iterable[str]:
    if isinstance(source, (str, Path)):  # a path; pass text as a list of lines (text.splitlines())
        return io.StringIO(Path(source).read_text(encoding="utf-8-sig"), newline="")
    return source


def load_trondheim(
    source: str | Path | Iterable[str], report: LoadReport | None = None
) -> tuple[list[TrondheimSession], LoadReport]:
    """Parse the charging reports: a path to the CSV, or an iterable of its lines (header first).

    Raises `ValueError` if the header lacks a needed column; every other problem is a counted row.
    """
    rep = report or LoadReport()
    reader = csv.reader(_lines(source), delimiter=";")
    header = next(reader, None)
    if header is None:
        raise ValueError("Trondheim sessions: empty input (expected a ';' separated header line)")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"Trondheim sessions: header lacks column(s) {missing}; got {header}")
    col = {name: i for i, name in enumerate(header)}
    out: list[TrondheimSession] = []
    seen: set[str] = set()
    for n, fields in enumerate(reader, start=2):  # n = line number in the file
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line (e.g. trailing newline): not a row
        rep.rows += 1
        if len(fields) != len(header):
            rep.skip("wrong_number_of_fields", f"line{n}")
            continue

        def get(name: str) -> str:
            i = col.get(name)
            return fields[i].strip() if i is not None else ""

        sid = get("session_ID") or f"line{n}"
        if sid in seen:
            rep.skip("duplicate_session", sid)
            continue
        plugin = _local_time(get("Start_plugin"), sid, rep)
        if plugin is None:
            rep.skip("missing_or_bad_plugin_time", sid)
            continue
        plugout = _local_time(get("End_plugout"), sid, rep) if get("End_plugout") not in _MISSING else None
        if plugout is None:
            rep.skip("missing_or_bad_plugout_time", sid)
            continue
        elapsed_h = (plugout.astimezone(timezone.utc) - plugin.astimezone(timezone.utc)).total_seconds() / 3600
        if elapsed_h <= 0:
            rep.skip("plugout_not_after_plugin", sid)
            continue
        kwh = _decimal(get("El_kWh"))
        if kwh is None or kwh <= 0:
            rep.skip("non_positive_or_missing_kwh", sid)
            continue
        stated = _decimal(get("Duration_hours"))
        if stated is not None and abs(stated - elapsed_h) > 0.05:  # 3 min: the column is rounded from minutes
            rep.adjust("duration_column_disagrees", sid)
        shared = get("Shared_ID")
        seen.add(sid)
        out.append(TrondheimSession(
            sid, get("Garage_ID"), get("User_ID"), get("User_type"), None if shared in _MISSING else shared,
            plugin, plugout, kwh,
        ))
        rep.used += 1
    return out, rep


@dataclass(frozen=True)
class SiteDay:
    """One planning instance: the sessions plugged in during one noon-to-noon day at one site."""

    day: date  # the day whose noon starts the instance
    start: datetime  # D 12:00 Europe/Oslo (tz-aware): slot 0
    site: Site
    sessions: tuple[TrondheimSession, ...]
    garage: str | None = None  # None = the whole cooperative


def plugin_day(t: datetime, day_start_hour: int = DAY_START_HOUR) -> date:
    """The day whose ``day_start_hour`` local time starts the day-period containing `t`."""
    local = t.astimezone(OSLO)
    return (local - timedelta(hours=day_start_hour)).date()


def _slot(t: datetime, start: datetime) -> int:
    seconds = (t.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds()
    return int(math.floor(seconds / (SLOT_MIN * 60) + 0.5))


def day_instances(
    sessions: Iterable[TrondheimSession],
    cap_kw: float = math.inf,
    report: LoadReport | None = None,
    price_fn: Callable[[datetime, int], np.ndarray] | None = None,
    carbon_fn: Callable[[datetime, int], np.ndarray] | None = None,
    ev_kw: float = EV_KW,
    by_garage: bool = False,
    day_start_hour: int = DAY_START_HOUR,
    max_horizon_slots: int | None = MAX_HORIZON_SLOTS,
) -> list[SiteDay]:
    """One `Site` per noon-to-noon day (per garage and day with `by_garage`); see the module docstring.

    `price_fn(start_local, n_slots)` / `carbon_fn(...)` give the per-slot signals from the day's start.
    """
    if not ev_kw > 0:
        raise ValueError(f"ev_kw must be > 0, got {ev_kw}")
    if not 0 <= day_start_hour <= 23:
        raise ValueError(f"day_start_hour must be 0..23, got {day_start_hour}")
    if max_horizon_slots is not None and max_horizon_slots < 192:
        # Shorter would cut cars that plugged in just before the next noon (slot 96) off within a day.
        raise ValueError(f"max_horizon_slots must be >= 192 (48 h) or None, got {max_horizon_slots}")
    rep = report or LoadReport()
    groups: dict[tuple[date, str | None], list[TrondheimSession]] = defaultdict(list)
    for s in sessions:
        groups[(plugin_day(s.plugin, day_start_hour), s.garage_id if by_garage else None)].append(s)
    out: list[SiteDay] = []
    for day, garage in sorted(groups, key=lambda k: (k[0], k[1] or "")):
        group = sorted(groups[(day, garage)], key=lambda s: (s.plugin, s.session_id))
        start = datetime(day.year, day.month, day.day, day_start_hour, tzinfo=OSLO)
        evs = []
        for s in group:
            # 0 <= plug-in slot <= 100 (a 25 h DST day), so a cut window keeps >= 92 slots
            evs.append(window_ev(s.session_id, _slot(s.plugin, start), _slot(s.plugout, start), s.demand_kwh, ev_kw,
                                 rep, max_horizon_slots))
        n_slots = max(96, max(ev.departure for ev in evs))
        tag = f"{garage}-" if garage else ""
        site = Site(
            tuple(evs), LimitNode("site", cap_kw), n_slots, SLOT_HOURS,
            price=price_fn(start, n_slots) if price_fn else None,
            carbon=carbon_fn(start, n_slots) if carbon_fn else None,
            start=start, name=f"trondheim-{tag}{day.isoformat()}",
        )
        out.append(SiteDay(day, start, site, tuple(group), garage))
    return out
