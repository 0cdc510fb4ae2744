"""Expected future arrivals ("reserve") for the online planner, learned from previous days only.

WHY: an online planner that knows only the cars already plugged in plans the day's peak as if no
one else will come. Flattening the known cars to the lowest possible level then leaves their energy
to be delivered exactly when the evening/morning rush arrives, and the realised peak ends up far above
the offline optimum (on ACN 2021: +30 %). Planning against the *expected* arrivals as well -- an
average of what arrived on comparable previous days -- makes the peak stage budget for them, so known
cars charge early enough to leave room.

Causality (invariant): `expected_arrivals` sees only sessions of days strictly before the one being
planned (`history_before` enforces it); nothing about the planned day is used except, in the planner,
how much energy has arrived *so far* (the adaptive scale, see `online.OnlinePlanner`).

Aggregation: past sessions are grouped by (arrival bucket, departure bucket) of `bucket_slots` slots;
each group becomes one pseudo-EV whose energy and power are the group's sums divided by the number of
history days (so the reserve is an average day). Its window is conservative: arrival at the group's
mean arrival rounded *up*, departure at its mean departure rounded *down*, energy capped to what fits.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Callable, Sequence

from .model import EV

__all__ = ["expected_arrivals", "history_before", "history_peak_floor", "weekday_kind"]


def weekday_kind(d: date) -> str:
    """Comparable days: weekdays with weekdays, weekends with weekends (ACN traffic halves at weekends)."""
    return "weekend" if d.weekday() >= 5 else "weekday"


def history_before(
    days: Sequence[tuple[date, Sequence[EV]]],
    day: date,
    max_days: int = 20,
    kind: Callable[[date], str] = weekday_kind,
) -> list[Sequence[EV]]:
    """The EVs of up to `max_days` most recent days strictly before `day` of the same kind."""
    past = sorted((d, evs) for d, evs in days if d < day and kind(d) == kind(day))
    return [evs for _, evs in past[-max_days:]] if max_days > 0 else []


def expected_arrivals(
    past_days: Sequence[Sequence[EV]],
    n_slots: int,
    slot_hours: float,
    node: str,
    bucket_slots: int = 4,
) -> tuple[EV, ...]:
    """An average day of arrivals as pseudo-EVs on `node` (empty if there is no history)."""
    if not past_days or bucket_slots < 1 or n_slots < 1:
        return ()
    k = len(past_days)
    groups: dict[tuple[int, int], list[EV]] = {}
    for evs in past_days:
        for ev in evs:
            if ev.departure <= ev.arrival or ev.energy_kwh <= 0 or ev.max_kw <= 0:
                continue
            a, d = max(0, ev.arrival), min(n_slots, ev.departure)
            if d <= a:
                continue
            groups.setdefault((a // bucket_slots, d // bucket_slots), []).append(ev)
    out = []
    for (ba, bd), evs in sorted(groups.items()):
        n = len(evs)
        a = min(n_slots - 1, math.ceil(sum(max(0, e.arrival) for e in evs) / n))
        d = max(a + 1, min(n_slots, math.floor(sum(min(n_slots, e.departure) for e in evs) / n)))
        kw = sum(e.max_kw for e in evs) / k
        energy = min(sum(e.energy_kwh for e in evs) / k, kw * (d - a) * slot_hours)
        out.append(EV(f"reserve:{ba}:{bd}", a, d, energy, kw, node))
    return tuple(out)


def history_peak_floor(
    past_peaks: Sequence[tuple[date, float]],
    day: date,
    alpha: float = 1.0,
    beta_kw: float = 0.0,
) -> float:
    """A causal peak floor for `day`: ``alpha * M + beta_kw``, M = the highest of `past_peaks` dated strictly
    before `day` (0 with no history).

    WHY: a closed day's peaks -- its uncontrolled peak (every car at full power from plug-in) or its
    hindsight-optimal peak (the offline LP over its completed sessions) -- are known once it has closed, so
    previous days' values are fair game for planning today. Front-loading up to such a floor (the planner's
    `peak_hint` with the ``asap`` stage) leaves little energy owed when a late rush comes.

    Used as the online *virtual connection* (`online` module docstring): ``alpha`` = 0.6 of the highest
    uncontrolled daily peak of earlier days, i.e. the issue's -40 % target turned into a connection size.
    The bench's floor study (`bench/smart_charging.py --floor-study`) measures this and other bases (earlier
    days' offline-optimal peaks, windows, quantiles) on the record days of ACN 2021.
    Invariant: only values dated before `day` are read; the result is never negative.
    """
    past = [p for d, p in past_peaks if d < day and math.isfinite(p)]
    return max(0.0, alpha * max(past) + beta_kw) if past else 0.0
