"""Price and carbon signals from the shared data files, mapped onto a site's slots.

Mapping conventions (the ACN site is in California, the signals are European; the mapping is a
*wall-clock* one so that "evening" at the site meets "evening" prices, which is what a site there
would face -- it is an illustration, not a claim about Californian prices):

* **Price** (`nl_day_ahead_2015_2024.csv`, EUR/MWh hourly): a slot starting at site-local wall-clock
  ``YYYY-MM-DD hh:mm`` gets the NL price of the hour ``YYYY-MM-DD hh:00`` in the file's
  "Datetime (Local)" column (same calendar date, same local hour). Returned in EUR/kWh.
* **Carbon** (`uk_carbon_intensity_2023.csv`, g/kWh half-hourly): a slot starting at local wall
  clock ``MM-DD hh:mm`` (any year) gets the 2023 half-hour starting at ``2023-MM-DD hh:(00|30)`` UTC
  ("from" column); Feb 29 maps to Feb 28. `actual` is used, `forecast` where `actual` is missing
  (counted); a half-hour absent from the file takes the previous available one (counted).

Both loaders count rows they cannot parse (the NL file switches to ``dd/mm/yyyy hh:mm`` near the end).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

__all__ = ["PriceTable", "CarbonTable", "load_nl_prices", "load_uk_carbon"]


def _parse_nl(s: str) -> datetime | None:
    s = s.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    return None


@dataclass
class PriceTable:
    """EUR/kWh keyed by naive local hour."""

    by_hour: dict[datetime, float]
    skipped: Counter = field(default_factory=Counter)
    filled: int = 0

    def series(self, start_local: datetime, n_slots: int, slot_hours: float = 0.25) -> np.ndarray:
        start = start_local.replace(tzinfo=None)
        out = np.empty(n_slots)
        last = float(np.mean(list(self.by_hour.values()))) if self.by_hour else 0.0
        for t in range(n_slots):
            wall = start + timedelta(hours=t * slot_hours)
            key = wall.replace(minute=0, second=0, microsecond=0)
            v = self.by_hour.get(key)
            if v is None:
                self.filled += 1
                v = last
            out[t] = last = v
        return out


def load_nl_prices(path: str | Path) -> PriceTable:
    table = PriceTable({})
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            local = _parse_nl(row.get("Datetime (Local)") or "")
            try:
                price = float(row.get("Price (EUR/MWhe)") or "")
            except ValueError:
                table.skipped["bad_price"] += 1
                continue
            if local is None:
                table.skipped["bad_datetime"] += 1
                continue
            if local in table.by_hour:
                table.skipped["duplicate_local_hour"] += 1  # DST fall-back hour: keep the first
                continue
            table.by_hour[local] = price / 1000.0
    return table


@dataclass
class CarbonTable:
    """g CO2/kWh keyed by (month, day, hour, minute in {0, 30}) of 2023 UTC."""

    by_halfhour: dict[tuple[int, int, int, int], float]
    skipped: Counter = field(default_factory=Counter)
    used_forecast: int = 0
    filled: int = 0

    def series(self, start_local: datetime, n_slots: int, slot_hours: float = 0.25) -> np.ndarray:
        start = start_local.replace(tzinfo=None)
        out = np.empty(n_slots)
        for t in range(n_slots):
            wall = start + timedelta(hours=t * slot_hours)
            m, d = wall.month, wall.day
            if (m, d) == (2, 29):
                d = 28
            probe = datetime(2023, m, d, wall.hour, 30 if wall.minute >= 30 else 0)
            for _ in range(48 * 7):
                v = self.by_halfhour.get((probe.month, probe.day, probe.hour, probe.minute))
                if v is not None:
                    break
                probe -= timedelta(minutes=30)
                self.filled += 1
            out[t] = v if v is not None else float(np.mean(list(self.by_halfhour.values())))
        return out


def load_uk_carbon(path: str | Path) -> CarbonTable:
    table = CarbonTable({})
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                start = datetime.fromisoformat(row["from"])
            except (KeyError, ValueError):
                table.skipped["bad_datetime"] += 1
                continue
            if start.year != 2023:
                table.skipped["outside_2023"] += 1
                continue
            val: float | None = None
            try:
                val = float(row.get("actual") or "")
            except ValueError:
                try:
                    val = float(row.get("forecast") or "")
                    table.used_forecast += 1
                except ValueError:
                    table.skipped["no_value"] += 1
                    continue
            table.by_halfhour[(start.month, start.day, start.hour, start.minute)] = val
    return table
