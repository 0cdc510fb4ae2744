"""Station/site occupancy: occupied connectors per hour for the next 24 hours, updated with every status event.

Conventions:
- "Occupied" = a vehicle is plugged in (from plug-in / OCPP status Preparing..Finishing, to unplug / Available),
  whether or not it is drawing power: an idle, fully charged car still blocks the connector.
- The hourly value is the TIME-WEIGHTED MEAN number of occupied connectors over the hour [h, h+1) (connector-hours
  in the hour), not a snapshot at the top of the hour: it is what "how busy is it at 17:00" means, and it does not
  depend on whether a car arrived at 16:59 or 17:01.
- Hours are aligned to UTC hour boundaries (all our zones are whole-hour offsets, so these are also local hours);
  the calendar keys (weekday, hour) are taken in the SITE's local zone, so 17:00 stays 17:00 across DST.

Forecasters share `learn_one(hour_start, value)` / `forecast(horizon) -> [value at t+1 .. t+horizon]`, called once
per closed hour.  Baselines: `Persistence`, `SeasonalMean` (running mean per (weekday, hour)); river `SNARIMAX` is
wrapped for comparison; the learned model is `SeasonalBlend`: an exponentially-weighted level per (weekday, hour)
(tracks the trend that a running mean lags: usage grew through 2021) corrected by recent deviations through one
online least-squares model per horizon (next hour leans on "now", day-ahead on the seasonal level).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
from river import time_series

from .loaders import SessionRecord

HOUR = timedelta(hours=1)


def hour_floor(t: datetime) -> datetime:
    u = t.astimezone(timezone.utc)
    return u.replace(minute=0, second=0, microsecond=0)


# ------------------------------------------------------------------------------------------ events -> hours


@dataclass
class OccupancyTracker:
    """Folds connector status events into closed hourly occupancy values, in event-time order.

    `occupied(t, connector, True/False)` is idempotent per connector (a repeated "occupied" does not double count,
    an "available" for a free connector is ignored), so it can be fed raw OCPP StatusNotifications."""

    hour: datetime | None = None  # start of the open hour (UTC)
    busy: set[str] = field(default_factory=set)
    _t: datetime | None = None  # time of the last event
    _acc: float = 0.0  # connector-seconds accumulated in the open hour

    def _advance(self, t: datetime) -> list[tuple[datetime, float]]:
        t = t.astimezone(timezone.utc)  # UTC arithmetic: same-zone subtraction is wall-clock in Python
        closed: list[tuple[datetime, float]] = []
        if self.hour is None:
            self.hour, self._t = hour_floor(t), t
            return closed
        assert self._t is not None
        if t < self._t:
            raise ValueError(f"event at {t} is older than {self._t}: feed events in time order")
        while t >= self.hour + HOUR:
            end = self.hour + HOUR
            self._acc += len(self.busy) * (end - self._t).total_seconds()
            closed.append((self.hour, self._acc / 3600.0))
            self.hour, self._t, self._acc = end, end, 0.0
        self._acc += len(self.busy) * (t - self._t).total_seconds()
        self._t = t
        return closed

    def occupied(self, t: datetime, connector: str, is_occupied: bool) -> list[tuple[datetime, float]]:
        """Apply one status change; returns the hours closed by the passage of time up to `t`."""
        closed = self._advance(t)
        if is_occupied:
            self.busy.add(connector)
        else:
            self.busy.discard(connector)
        return closed

    def tick(self, t: datetime) -> list[tuple[datetime, float]]:
        """Advance the clock without a status change (a heartbeat), closing any finished hours."""
        return self._advance(t)

    @property
    def now(self) -> int:
        return len(self.busy)


def session_events(records: Iterable[SessionRecord]) -> list[tuple[datetime, str, bool]]:
    """Plug-in/unplug events of sessions in time order (an unplug sorts before a plug-in at the same instant,
    so a connector handed over in the same second is never counted twice)."""
    ev: list[tuple[datetime, int, str, bool]] = []
    for i, r in enumerate(records):
        conn = f"{r.station_id}/{i}"  # one virtual connector per session: overlapping data rows stay counted
        ev.append((r.plug_in, 1, conn, True))
        ev.append((r.unplug, 0, conn, False))
    ev.sort(key=lambda e: (e[0].timestamp(), e[1]))
    return [(t, c, o) for t, _, c, o in ev]


def hourly_occupancy(records: Sequence[SessionRecord]) -> tuple[list[datetime], list[float]]:
    """Whole-site hourly occupancy series from sessions (every hour from the first plug-in to the last unplug)."""
    tr = OccupancyTracker()
    out: list[tuple[datetime, float]] = []
    for t, conn, occ in session_events(records):
        out.extend(tr.occupied(t, conn, occ))
    if tr.hour is not None:
        out.extend(tr.tick(tr.hour + HOUR))
    return [t for t, _ in out], [v for _, v in out]


# ------------------------------------------------------------------------------------------- forecasters


class Persistence:
    """Baseline: every future hour equals the last closed hour."""

    def __init__(self) -> None:
        self.last = 0.0

    def learn_one(self, t: datetime, y: float) -> None:
        self.last = y

    def forecast(self, horizon: int) -> list[float]:
        return [self.last] * horizon


class _Calendar:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.t: datetime | None = None

    def key(self, t: datetime) -> int:
        loc = t.astimezone(self.tz)
        return loc.weekday() * 24 + loc.hour

    def future_keys(self, horizon: int) -> list[int]:
        assert self.t is not None
        return [self.key(self.t + HOUR * h) for h in range(1, horizon + 1)]


class SeasonalMean:
    """Baseline: running mean per local (weekday, hour); the global running mean for a key not seen yet."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.cal = _Calendar(tz)
        self.sum = np.zeros(168)
        self.n = np.zeros(168)
        self.total = 0.0
        self.count = 0

    def learn_one(self, t: datetime, y: float) -> None:
        k = self.cal.key(t)
        self.cal.t = t
        self.sum[k] += y
        self.n[k] += 1
        self.total += y
        self.count += 1

    def value(self, k: int) -> float:
        if self.n[k]:
            return float(self.sum[k] / self.n[k])
        return self.total / self.count if self.count else 0.0

    def forecast(self, horizon: int) -> list[float]:
        return [self.value(k) for k in self.cal.future_keys(horizon)]


class Snarimax:
    """river's SNARIMAX (seasonal ARIMA with online updates), seasonality 24 h, for comparison."""

    def __init__(self, p: int = 2, q: int = 1, sp: int = 1, sq: int = 1, m: int = 24) -> None:
        from river import preprocessing  # noqa: F401  (kept explicit: SNARIMAX's default regressor)
        self.model = time_series.SNARIMAX(p=p, d=0, q=q, m=m, sp=sp, sd=0, sq=sq)
        self.n = 0

    def learn_one(self, t: datetime, y: float) -> None:
        self.model.learn_one(y)
        self.n += 1

    def forecast(self, horizon: int) -> list[float]:
        if self.n < 2:
            return [0.0] * horizon
        return [max(float(v), 0.0) for v in self.model.forecast(horizon=horizon)]


class _RLS:
    """Recursive least squares with forgetting: the exact online ridge solution, O(d^2) per update."""

    def __init__(self, d: int, lam: float = 0.999, delta: float = 10.0) -> None:
        self.w = np.zeros(d)
        self.P = np.eye(d) * delta
        self.lam = lam

    def predict(self, x: np.ndarray) -> float:
        return float(self.w @ x)

    def learn(self, x: np.ndarray, y: float) -> None:
        Px = self.P @ x
        k = Px / (self.lam + x @ Px)
        self.w += k * (y - self.w @ x)
        self.P = (self.P - np.outer(k, Px)) / self.lam


class SeasonalBlend:
    """The learned occupancy model.

    Level: per (weekday, hour) an exponentially-weighted mean (weight `eta`, after a running-mean start) so it
    follows slow growth; a weekly profile.  For horizon h the forecast is an online least-squares combination of
    [1, level(t+h), running mean(t+h), y_t, y_t - level(t), y_{t-1} - level(t-1), y at t+h-24, y at t+h-168],
    one RLS per horizon, each trained when its target hour closes.  Clipped to >= 0."""

    N_FEAT = 8

    def __init__(self, tz: ZoneInfo, horizon: int = 24, eta: float = 0.15, lam: float = 0.998) -> None:
        self.cal = _Calendar(tz)
        self.H = horizon
        self.eta = eta
        self.level = np.zeros(168)
        self.n = np.zeros(168)
        self.mean = SeasonalMean(tz)
        self.hist: deque[float] = deque(maxlen=170)  # y history, newest last
        self.dev: deque[float] = deque(maxlen=2)
        self.rls = [_RLS(self.N_FEAT, lam=lam) for _ in range(horizon)]
        self.pending: deque[list[np.ndarray]] = deque(maxlen=horizon)  # features made at t-h..t-1 for all h
        self.steps = 0

    def _level(self, k: int) -> float:
        return float(self.level[k]) if self.n[k] else self.mean.value(k)

    def _features(self, horizon: int) -> list[np.ndarray]:
        keys = self.cal.future_keys(horizon)
        y = self.hist[-1]
        dev0 = self.dev[-1] if self.dev else 0.0
        dev1 = self.dev[-2] if len(self.dev) > 1 else dev0
        feats = []
        for h, k in enumerate(keys, start=1):
            # same hour yesterday / last week of the TARGET hour t+h (hist[-1] is hour t)
            lag24 = self.hist[-1 - (24 - h)] if 24 >= h and len(self.hist) > 24 - h else y
            lag168 = self.hist[-(168 - h) - 1] if len(self.hist) > 168 - h else self._level(k)
            feats.append(np.array([1.0, self._level(k), self.mean.value(k), y, dev0, dev1, lag24, lag168]))
        return feats

    def learn_one(self, t: datetime, y: float) -> None:
        k = self.cal.key(t)
        # train each horizon's model on the features it had when this hour was h steps ahead
        for h in range(1, self.H + 1):
            if len(self.pending) >= h:
                self.rls[h - 1].learn(self.pending[-h][h - 1], y)
        lvl = self._level(k)
        self.dev.append(y - lvl)
        self.n[k] += 1
        self.level[k] = y if self.n[k] == 1 else self.level[k] + max(self.eta, 1 / self.n[k]) * (y - self.level[k])
        self.mean.learn_one(t, y)
        self.cal.t = t
        self.hist.append(y)
        self.steps += 1
        self.pending.append(self._features(self.H))

    def forecast(self, horizon: int) -> list[float]:
        if not self.pending:
            return [0.0] * horizon
        feats = self.pending[-1]
        out = []
        for h in range(1, horizon + 1):
            x = feats[h - 1] if h <= self.H else self._features(h)[h - 1]
            # until a horizon's model has seen a week, trust the level (RLS from zero weights is meaningless)
            pred = self.rls[h - 1].predict(x) if self.steps > 168 and h <= self.H else x[1]
            out.append(max(float(pred), 0.0))
        return out


@dataclass
class OccupancyForecaster:
    """One station's (or site's) live forecaster: status events in, "next 24 hours" out.

    Why a wrapper: the stream processor only sees status events; this turns them into closed hours for the model
    and serves `next_24h()` at any time (e.g. "usually busy at 17:00") from the latest closed hour."""

    tz: ZoneInfo
    tracker: OccupancyTracker = field(default_factory=OccupancyTracker)
    model: SeasonalBlend | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = SeasonalBlend(self.tz)

    def on_status(self, t: datetime, connector: str, occupied: bool) -> None:
        for hour, value in self.tracker.occupied(t, connector, occupied):
            assert self.model is not None
            self.model.learn_one(hour, value)

    def on_tick(self, t: datetime) -> None:
        for hour, value in self.tracker.tick(t):
            assert self.model is not None
            self.model.learn_one(hour, value)

    def next_24h(self) -> list[tuple[datetime, float]]:
        """(local hour start, expected occupied connectors) for the 24 hours after the last closed hour."""
        assert self.model is not None
        if self.model.cal.t is None:
            return []
        base = self.model.cal.t
        return [((base + HOUR * h).astimezone(self.tz), v)
                for h, v in enumerate(self.model.forecast(24), start=1)]
