"""Parsers for the three real session files into one typed record, with a full account of every dirty row.

Why a report and not just a list: the issue's bad-input rule is that dirty rows are "counted and reported by the
loaders, never silently dropped".  Every loader therefore returns `(records, LoadReport)` where
`report.parsed + sum(report.skipped.values()) == report.rows` always holds, and rows that are kept but were
odd (repaired or merely suspicious) are counted in `report.repaired` / `report.flagged`.

Conventions (shared by every forecasting module):
- All times are timezone-aware.  Each file's local wall-clock times are attached to the site's zone:
  ACN → timestamps are given in GMT and converted to America/Los_Angeles (the file's own `timezone` field);
  Trondheim → Europe/Oslo wall-clock (no zone in the file; the DST shifts in `Duration_hours` confirm it);
  Palo Alto → America/Los_Angeles, disambiguated by the file's own PDT/PST column (fold for the repeated hour).
- Durations are computed from the aware timestamps (so DST nights are the right length), never from a
  file's duration column; disagreements with that column are `flagged`, not corrected.
- `requested_kwh` / `requested_departure` come from the driver's FIRST input only (ACN `userInputs`, earliest
  `modifiedAt`): that is what is known at plug-in; later edits happen mid-session and would leak.  The same first
  input gives `wh_per_mile` (the car's consumption as the driver's app states it: a proxy for the vehicle) and
  `miles_requested`; in this file the first input is made within a minute of plug-in for 90% of sessions.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
OSLO = ZoneInfo("Europe/Oslo")

# skip reasons (a row with one of these is not returned)
MISSING_END = "missing end"
NON_POSITIVE_KWH = "non-positive kWh"
END_BEFORE_START = "end before start"
UNPARSEABLE = "unparseable"
SWAPPED_DAY_MONTH = "swapped day/month"  # used for `repaired` when the row's own columns prove the swap
# flags (row kept as parsed)
DURATION_COLUMN_DISAGREES = "duration column disagrees with timestamps"
DONE_AFTER_UNPLUG = "charging end after unplug (clamped)"
NO_USER = "no user id"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One charging session, as a forecaster may see it.  Only `user_id`, `station_id`, `site_id`, `plug_in`,
    `requested_kwh`, `requested_departure`, `wh_per_mile` and `miles_requested` are known at plug-in; the rest are
    labels known at unplug."""

    source: str
    session_id: str
    user_id: str | None
    station_id: str
    site_id: str
    plug_in: datetime
    unplug: datetime
    charging_end: datetime | None
    kwh: float
    requested_kwh: float | None = None
    requested_departure: datetime | None = None
    wh_per_mile: float | None = None
    miles_requested: float | None = None

    @property
    def duration_h(self) -> float:
        """Connection time (plug-in to unplug) in hours: what a "ready at"/departure estimate needs."""
        return hours_between(self.plug_in, self.unplug)


def hours_between(a: datetime, b: datetime) -> float:
    """Elapsed hours from a to b.  Via POSIX timestamps on purpose: Python subtracts two datetimes that share a
    tzinfo by wall clock, which is an hour wrong across a DST change."""
    return (b.timestamp() - a.timestamp()) / 3600.0


@dataclass
class LoadReport:
    """What a loader did with every data row of a file."""

    source: str
    rows: int = 0
    parsed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first few 1-based data row numbers

    def _note(self, bucket: Counter[str], reason: str, row: int) -> None:
        bucket[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(row)

    def skip(self, reason: str, row: int) -> None:
        self._note(self.skipped, reason, row)

    def repair(self, reason: str, row: int) -> None:
        self._note(self.repaired, reason, row)

    def flag(self, reason: str, row: int) -> None:
        self._note(self.flagged, reason, row)

    @property
    def consistent(self) -> bool:
        return self.parsed + sum(self.skipped.values()) == self.rows

    def summary(self) -> str:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "none"
        return (f"{self.source}: {self.rows} rows, {self.parsed} parsed, skipped [{fmt(self.skipped)}], "
                f"repaired [{fmt(self.repaired)}], flagged [{fmt(self.flagged)}]")


def _float(text: str, *, decimal_comma: bool = False) -> float:
    t = text.strip()
    if decimal_comma:
        t = t.replace(",", ".")
    return float(t)


def _finish(records: list[SessionRecord], report: LoadReport) -> tuple[list[SessionRecord], LoadReport]:
    # Stable sort by plug-in: prequential evaluation relies on time order; the files are already ordered, but a
    # repaired date could move a row.
    records.sort(key=lambda r: r.plug_in.timestamp())
    report.parsed = len(records)
    assert report.consistent, report.summary()
    return records, report


# ------------------------------------------------------------------------------------------------------ ACN


def _acn_time(value: Any, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    return parsedate_to_datetime(str(value)).astimezone(tz)


def parse_acn(data: list[dict[str, Any]], source: str = "acn") -> tuple[list[SessionRecord], LoadReport]:
    """ACN-Data export (a JSON list of sessions).  Anonymous sessions (userID null) are kept with user_id None."""
    report = LoadReport(source, rows=len(data))
    out: list[SessionRecord] = []
    for n, row in enumerate(data, start=1):
        try:
            tz = ZoneInfo(row.get("timezone") or "America/Los_Angeles")
            start = _acn_time(row.get("connectionTime"), tz)
            end = _acn_time(row.get("disconnectTime"), tz)
            done = _acn_time(row.get("doneChargingTime"), tz)
            kwh_raw = row.get("kWhDelivered")
            kwh = float(kwh_raw) if kwh_raw is not None else None
            station = str(row["stationID"])
        except (KeyError, TypeError, ValueError):
            report.skip(UNPARSEABLE, n)
            continue
        if start is None:
            report.skip(UNPARSEABLE, n)
            continue
        if end is None:
            report.skip(MISSING_END, n)
            continue
        if kwh is None or not kwh > 0:
            report.skip(NON_POSITIVE_KWH, n)
            continue
        if end.timestamp() <= start.timestamp():
            report.skip(END_BEFORE_START, n)
            continue
        if done is not None and done.timestamp() > end.timestamp():
            report.flag(DONE_AFTER_UNPLUG, n)
            done = end
        user = row.get("userID")
        if user is None:
            report.flag(NO_USER, n)
        req_kwh: float | None = None
        req_dep: datetime | None = None
        wh_mi: float | None = None
        miles: float | None = None
        inputs = row.get("userInputs") or []
        if inputs:
            try:
                first = min(inputs, key=lambda u: parsedate_to_datetime(u["modifiedAt"]))
                req_kwh = float(first["kWhRequested"])
                req_dep = _acn_time(first["requestedDeparture"], tz)
                wh_mi = _positive_or_none(first.get("WhPerMile"))
                miles = _positive_or_none(first.get("milesRequested"))
            except (KeyError, TypeError, ValueError):
                report.flag("unparseable user input", n)
        out.append(SessionRecord(source, str(row.get("sessionID") or n), None if user is None else str(user),
                                 station, str(row.get("siteID") or "acn"), start, end, done, kwh, req_kwh, req_dep,
                                 wh_mi, miles))
    return _finish(out, report)


def _positive_or_none(value: Any) -> float | None:
    """An optional app field: a positive number, else None (absent, zero or junk are "not stated")."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def load_acn(path: Path) -> tuple[list[SessionRecord], LoadReport]:
    with open(path, encoding="utf-8") as fh:
        return parse_acn(json.load(fh), source=path.name)


# ------------------------------------------------------------------------------------------------ Trondheim

_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"], start=1)}
_WEEKDAYS = {d: i for i, d in enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                         "Sunday"])}


def _dmy(text: str, *, swap: bool = False) -> datetime:
    date, clock = text.strip().split()
    a, b, y = date.split(".")
    d, m = (b, a) if swap else (a, b)
    hh, mm = clock.split(":")
    return datetime(int(y), int(m), int(d), int(hh), int(mm))


def parse_trondheim(lines: Iterable[str], source: str = "trondheim") -> tuple[list[SessionRecord], LoadReport]:
    """Sørensen et al. residential sessions: `;` separated, decimal comma, dd.mm.yyyy local (Europe/Oslo) times.

    Swapped day/month: the row carries its own `month_plugin` and `weekdays_plugin`; a start date whose month or
    weekday disagrees with them but agrees once day and month are swapped is repaired (counted in `repaired`), and
    the end date is read the same way.  A row that fits neither reading is skipped as unparseable."""
    reader = csv.reader(lines, delimiter=";")
    header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    col = {h: i for i, h in enumerate(header)}
    report = LoadReport(source)
    out: list[SessionRecord] = []
    for n, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue  # blank trailing line: not a data row
        report.rows += 1
        try:
            get = lambda k: row[col[k]].strip()  # noqa: E731
            start_txt, end_txt, kwh_txt = get("Start_plugin"), get("End_plugout"), get("El_kWh")
            month, weekday = get("month_plugin"), get("weekdays_plugin")
            swap = False
            try:
                start = _dmy(start_txt)
                ok = (month not in _MONTHS or start.month == _MONTHS[month]) and \
                     (weekday not in _WEEKDAYS or start.weekday() == _WEEKDAYS[weekday])
            except ValueError:
                ok = False
            if not ok:
                start = _dmy(start_txt, swap=True)  # ValueError -> unparseable
                if (month in _MONTHS and start.month != _MONTHS[month]) or \
                        (weekday in _WEEKDAYS and start.weekday() != _WEEKDAYS[weekday]):
                    raise ValueError("date fits neither day/month order")
                swap = True
            user, garage = get("User_ID"), get("Garage_ID")
        except (KeyError, IndexError, ValueError):
            report.skip(UNPARSEABLE, n)
            continue
        if end_txt.upper() in ("", "NA"):
            report.skip(MISSING_END, n)
            continue
        try:
            end = _dmy(end_txt, swap=swap)
            kwh = _float(kwh_txt, decimal_comma=True)
        except ValueError:
            report.skip(UNPARSEABLE, n)
            continue
        if not kwh > 0:
            report.skip(NON_POSITIVE_KWH, n)
            continue
        s, e = start.replace(tzinfo=OSLO), end.replace(tzinfo=OSLO)
        if e.timestamp() < s.timestamp():
            report.skip(END_BEFORE_START, n)
            continue
        if swap:
            report.repair(SWAPPED_DAY_MONTH, n)
        rec = SessionRecord(source, get("session_ID"), user or None, garage, garage, s, e, None, kwh)
        dur_txt = get("Duration_hours")
        if dur_txt.upper() != "NA":
            _check_stated_duration(report, n, rec, lambda: _float(dur_txt, decimal_comma=True), 0.05)
        out.append(rec)
    return _finish(out, report)


def _check_stated_duration(report: "LoadReport", n: int, rec: "SessionRecord", stated_hours: Callable[[], float],
                           tolerance_h: float) -> None:
    """Flag (keep) a row whose own duration column disagrees with plug-in..unplug, or cannot be read."""
    try:
        if abs(stated_hours() - rec.duration_h) > tolerance_h:
            report.flag(DURATION_COLUMN_DISAGREES, n)
    except ValueError:
        report.flag(DURATION_COLUMN_DISAGREES, n)


def load_trondheim(path: Path) -> tuple[list[SessionRecord], LoadReport]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return parse_trondheim(fh, source=path.name)


# ------------------------------------------------------------------------------------------------ Palo Alto


def _pacific(text: str, zone_abbr: str, *, swap: bool = False) -> datetime:
    date, clock = text.strip().split()
    a, b, y = date.split("/")
    m, d = (b, a) if swap else (a, b)
    hh, mm = clock.split(":")
    naive = datetime(int(y), int(m), int(d), int(hh), int(mm))
    # the PDT/PST column decides the repeated hour at the end of DST (fold=0 is the first, daylight, pass)
    return naive.replace(tzinfo=LOS_ANGELES, fold=0 if zone_abbr.strip().upper() == "PDT" else 1)


def _hms(text: str) -> float:
    h, m, s = text.strip().split(":")
    return int(h) + int(m) / 60 + int(s) / 3600


def parse_palo_alto(lines: Iterable[str], source: str = "palo_alto") -> tuple[list[SessionRecord], LoadReport]:
    """City of Palo Alto sessions: m/d/yyyy local times with a separate PDT/PST column.

    Swapped day/month: a date that is impossible as m/d (month > 12) but valid as d/m, or whose m/d reading puts
    the end before the start while the d/m reading does not, is repaired and counted."""
    reader = csv.reader(lines)
    header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    col = {h: i for i, h in enumerate(header)}
    report = LoadReport(source)
    out: list[SessionRecord] = []
    for n, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        report.rows += 1
        try:
            get = lambda k: row[col[k]].strip()  # noqa: E731
            start_txt, end_txt = get("Start Date"), get("End Date")
            s_zone, e_zone = get("Start Time Zone"), get("End Time Zone")
            kwh_txt, station, user = get("Energy (kWh)"), get("Station Name"), get("User ID")
            port = get("Port Number")
            charging_h = _hms(get("Charging Time (hh:mm:ss)")) if get("Charging Time (hh:mm:ss)") else None
            total_txt = get("Total Duration (hh:mm:ss)")
        except (KeyError, IndexError, ValueError):
            report.skip(UNPARSEABLE, n)
            continue
        if not end_txt:
            report.skip(MISSING_END, n)
            continue
        repaired = False
        try:
            try:
                start, end = _pacific(start_txt, s_zone), _pacific(end_txt, e_zone)
                if end.timestamp() < start.timestamp():
                    s2, e2 = _pacific(start_txt, s_zone, swap=True), _pacific(end_txt, e_zone, swap=True)
                    if e2.timestamp() >= s2.timestamp():
                        start, end, repaired = s2, e2, True
            except ValueError:
                start, end = _pacific(start_txt, s_zone, swap=True), _pacific(end_txt, e_zone, swap=True)
                repaired = True
            kwh = _float(kwh_txt)
        except ValueError:
            report.skip(UNPARSEABLE, n)
            continue
        if not kwh > 0:
            report.skip(NON_POSITIVE_KWH, n)
            continue
        if end.timestamp() < start.timestamp():
            report.skip(END_BEFORE_START, n)
            continue
        if repaired:
            report.repair(SWAPPED_DAY_MONTH, n)
        if not user:
            report.flag(NO_USER, n)
        done = None
        if charging_h is not None:
            done = min(start + timedelta(hours=charging_h), end, key=lambda d: d.timestamp())
        rec = SessionRecord(source, get("Plug In Event Id") or str(n), user or None, f"{station}#{port}",
                            "palo_alto", start, end, done, kwh)
        if total_txt:
            _check_stated_duration(report, n, rec, lambda: _hms(total_txt), 2 / 60)
        out.append(rec)
    return _finish(out, report)


def load_palo_alto(path: Path) -> tuple[list[SessionRecord], LoadReport]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return parse_palo_alto(fh, source=path.name)


def shared_data_dir(start: Path) -> Path:
    """`<parent of the repo root>/shared/data`, found by walking up from `start` to the directory holding
    pyproject.toml (the data is read in place, never copied into the repo)."""
    for p in [start, *start.parents]:
        if (p / "pyproject.toml").exists():
            return p.parent / "shared" / "data"
    raise FileNotFoundError(f"no repo root above {start}")
