"""Session energy (kWh) and duration (h) predicted at plug-in, learned online; with the baselines it must beat.

Every model has the river interface `predict_one(x) -> float` and `learn_one(x, y)`, where `x` is the feature dict
built by `PlugInFeaturizer.features` at plug-in (only what is known then) and `y` arrives at unplug.

Why these choices:
- MAE is the yardstick, and MAE is minimised by a median, not a mean; session targets are skewed (a few overnight
  or 60 kWh sessions), so medians and absolute-loss learners are the natural predictors.
- Behaviour is personal (commuter vs. shift worker) and depends on the plug-in clock time (an evening plug-in at
  home lasts until the morning).  `UserContextMedian` is a per-user weighted median over that user's own past
  sessions, weighted by closeness of plug-in hour (circular), weekday/weekend type and recency.
- No single predictor is best for every user, so `SessionForecaster` keeps several candidates (including a river
  ARF regressor on the residual) and, per user, follows whichever has the lowest recent absolute error (a
  "follow the leader" ensemble), falling back to the global leader for new users.
- Anonymous sessions (no user id) share one pseudo-user: they come from the same anonymous pool (e.g. ACN's
  non-app users), which predicts them better than the global mean.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from river import forest

from .loaders import SessionRecord, hours_between

ANON = "<anonymous>"
Features = dict[str, Any]


class Regressor(Protocol):
    def predict_one(self, x: Features) -> float: ...

    def learn_one(self, x: Features, y: float) -> None: ...


# --------------------------------------------------------------------------------------------------- features


@dataclass
class _UserHistory:
    last_unplug: datetime | None = None
    last_plug_in: datetime | None = None


@dataclass
class PlugInFeaturizer:
    """Turns a plug-in into features, from the session's plug-in fields and the history learned so far.

    `observe_end` must be called only once the session has ended (its labels known): the prequential loop and the
    stream processor do this; the featurizer never looks at a record's labels in `features`."""

    users: dict[str, _UserHistory] = field(default_factory=dict)

    def features(self, rec: SessionRecord) -> Features:
        local = rec.plug_in  # loaders give site-local aware datetimes
        user = rec.user_id or ANON
        hist = self.users.get(user)
        hour = local.hour + local.minute / 60
        x: Features = {
            "user": user,
            "station": rec.station_id,
            "site": rec.site_id,
            "hour": hour,
            "weekday": local.weekday(),
            "weekend": local.weekday() >= 5,
            "plug_in": rec.plug_in,
        }
        if hist is not None and hist.last_unplug is not None and hist.last_unplug.timestamp() <= rec.plug_in.timestamp():
            x["hours_since_last"] = hours_between(hist.last_unplug, rec.plug_in)
        if rec.requested_kwh is not None:
            x["requested_kwh"] = rec.requested_kwh
        if rec.requested_departure is not None:
            x["requested_h"] = max(hours_between(rec.plug_in, rec.requested_departure), 0.0)
        return x

    def observe_end(self, rec: SessionRecord) -> None:
        h = self.users.setdefault(rec.user_id or ANON, _UserHistory())
        if h.last_unplug is None or rec.unplug.timestamp() > h.last_unplug.timestamp():
            h.last_unplug = rec.unplug
            h.last_plug_in = rec.plug_in


# -------------------------------------------------------------------------------------------------- baselines


class GlobalMean:
    """Baseline: the running mean of every label seen so far (0 before the first)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0

    def predict_one(self, x: Features) -> float:
        return self.mean

    def learn_one(self, x: Features, y: float) -> None:
        self.n += 1
        self.mean += (y - self.mean) / self.n


class UserMean:
    """Baseline: the user's running mean; the global running mean for a user not seen yet."""

    def __init__(self) -> None:
        self.glob = GlobalMean()
        self.users: dict[str, GlobalMean] = {}

    def predict_one(self, x: Features) -> float:
        u = self.users.get(x["user"])
        return u.mean if u is not None else self.glob.mean

    def learn_one(self, x: Features, y: float) -> None:
        self.glob.learn_one(x, y)
        self.users.setdefault(x["user"], GlobalMean()).learn_one(x, y)


def _median(sorted_vals: list[float]) -> float:
    n = len(sorted_vals)
    mid = n // 2
    return sorted_vals[mid] if n % 2 else (sorted_vals[mid - 1] + sorted_vals[mid]) / 2


class UserMedian:
    """Baseline: the user's running median (exact, over all their labels); the global running median for a new
    user.  Exact because per-user histories are small (hundreds), and insertion into a sorted list is cheap."""

    def __init__(self) -> None:
        self.glob: list[float] = []
        self.users: dict[str, list[float]] = defaultdict(list)

    def predict_one(self, x: Features) -> float:
        vals = self.users.get(x["user"]) or self.glob
        return _median(vals) if vals else 0.0

    def learn_one(self, x: Features, y: float) -> None:
        bisect.insort(self.glob, y)
        bisect.insort(self.users[x["user"]], y)


class LastValue:
    """Baseline: the user's previous label; the global running mean for a new user."""

    def __init__(self) -> None:
        self.glob = GlobalMean()
        self.last: dict[str, float] = {}

    def predict_one(self, x: Features) -> float:
        return self.last.get(x["user"], self.glob.mean)

    def learn_one(self, x: Features, y: float) -> None:
        self.glob.learn_one(x, y)
        self.last[x["user"]] = y


def baselines() -> dict[str, Regressor]:
    return {"global mean": GlobalMean(), "user mean": UserMean(), "user median": UserMedian(),
            "last value": LastValue()}


# ------------------------------------------------------------------------------------------- learned models


def _weighted_median(pairs: list[tuple[float, float]]) -> float:
    """Median of values under weights: the value where cumulative weight crosses half."""
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= total / 2:
            return v
    return pairs[-1][0]


def _circ_hours(a: float, b: float) -> float:
    d = abs(a - b) % 24
    return min(d, 24 - d)


class UserContextMedian:
    """Per-user weighted median of past labels, weighted by similar plug-in hour, same weekday/weekend type and
    recency: "what this driver usually does when plugging in at this time".  Falls back to the global median.

    `sigma_h` is the hour kernel width; `window` bounds memory per user (old habits fade anyway)."""

    def __init__(self, sigma_h: float = 2.0, other_daytype: float = 0.3, half_life: int = 30,
                 window: int = 200) -> None:
        self.sigma_h, self.other_daytype, self.window = sigma_h, other_daytype, window
        self.decay = 0.5 ** (1 / half_life)
        self.hist: dict[str, deque[tuple[float, bool, float]]] = {}
        self.glob = UserMedian()

    def predict_one(self, x: Features) -> float:
        h = self.hist.get(x["user"])
        if not h:
            return self.glob.predict_one({"user": None})
        pairs = []
        w_age = 1.0
        for hour, weekend, y in reversed(h):
            w = w_age * math.exp(-0.5 * (_circ_hours(hour, x["hour"]) / self.sigma_h) ** 2)
            if weekend != x["weekend"]:
                w *= self.other_daytype
            pairs.append((y, w + 1e-9))
            w_age *= self.decay
        return _weighted_median(pairs)

    def learn_one(self, x: Features, y: float) -> None:
        self.glob.learn_one({"user": None}, y)
        self.hist.setdefault(x["user"], deque(maxlen=self.window)).append((x["hour"], x["weekend"], y))


class RequestRatio:
    """For drivers who state a request at plug-in (ACN app): prediction = request × the user's median ratio of
    actual to requested (people over-ask energy and under-/over-state departure in personal ways).  Without a
    request it defers to `fallback`.  `key` is the feature holding the request ("requested_kwh"/"requested_h")."""

    def __init__(self, key: str, fallback: Regressor, cap: float | None = None) -> None:
        self.key, self.fallback, self.cap = key, fallback, cap
        self.ratios: dict[str, list[float]] = defaultdict(list)
        self.glob: list[float] = []

    def predict_one(self, x: Features) -> float:
        req = x.get(self.key)
        if req is None or req <= 0:
            return self.fallback.predict_one(x)
        r = self.ratios.get(x["user"]) or self.glob
        ratio = _median(r) if r else 1.0
        return req * ratio

    def learn_one(self, x: Features, y: float) -> None:
        self.fallback.learn_one(x, y)
        req = x.get(self.key)
        if req is not None and req > 0:
            ratio = y / req
            if self.cap is not None:
                ratio = min(ratio, self.cap)
            bisect.insort(self.ratios[x["user"]], ratio)
            bisect.insort(self.glob, ratio)


class ResidualARF:
    """A river Adaptive Random Forest on the residual from the user's context median, fed numeric context
    (hour, weekday, gap since the user's last unplug, request, the user's own statistics).  It learns the
    cross-user patterns (e.g. long gap → more energy) that a per-user statistic cannot."""

    def __init__(self, base: Regressor, seed: int = 7, n_models: int = 6) -> None:
        self.base = base
        self.stats = UserMean()
        self.med = UserMedian()
        self.n: dict[str, int] = defaultdict(int)
        self.arf = forest.ARFRegressor(n_models=n_models, seed=seed, leaf_prediction="mean")

    def _num(self, x: Features, base: float) -> dict[str, float]:
        z = {
            "base": base,
            "user_mean": self.stats.predict_one(x),
            "user_median": self.med.predict_one(x),
            "log_n": math.log1p(self.n.get(x["user"], 0)),
            "hour_sin": math.sin(2 * math.pi * x["hour"] / 24),
            "hour_cos": math.cos(2 * math.pi * x["hour"] / 24),
            "weekend": float(x["weekend"]),
            "log_gap": math.log1p(x.get("hours_since_last", 24 * 30)),
        }
        for k in ("requested_kwh", "requested_h"):
            if k in x:
                z[k] = float(x[k])
        return z

    def predict_one(self, x: Features) -> float:
        base = self.base.predict_one(x)
        return max(base + self.arf.predict_one(self._num(x, base)), 0.0)

    def learn_one(self, x: Features, y: float) -> None:
        base = self.base.predict_one(x)
        self.arf.learn_one(self._num(x, base), y - base)
        self.base.learn_one(x, y)
        self.stats.learn_one(x, y)
        self.med.learn_one(x, y)
        self.n[x["user"]] += 1


class SessionForecaster:
    """The learned model: per user, follow the candidate with the lowest exponentially-weighted absolute error
    (ties and new users: the candidate that leads globally).  Candidates are learned on every label.

    Why per-user selection: the data shows two populations (regular drivers whose own context median is hard to
    beat, and irregular ones better served by cross-user learning); choosing per user is cheap and robust."""

    def __init__(self, target: str, *, use_arf: bool = True, alpha: float = 0.15, seed: int = 7) -> None:
        if target not in ("kwh", "duration_h"):
            raise ValueError("target must be 'kwh' or 'duration_h'")
        req_key = "requested_kwh" if target == "kwh" else "requested_h"
        self.alpha = alpha
        self.candidates: dict[str, Regressor] = {
            "ctx median": UserContextMedian(),
            "user median": UserMedian(),
            "request ratio": RequestRatio(req_key, UserContextMedian()),
        }
        if use_arf:
            self.candidates["arf residual"] = ResidualARF(UserContextMedian(), seed=seed)
        self.user_err: dict[str, dict[str, float]] = {}
        self.glob_err: dict[str, float] = {k: 0.0 for k in self.candidates}
        self.n_glob = 0

    def _leader(self, x: Features) -> str:
        errs = self.user_err.get(x["user"])
        if errs is None:
            errs = self.glob_err
        return min(errs, key=errs.__getitem__)

    def predict_one(self, x: Features) -> float:
        return self.candidates[self._leader(x)].predict_one(x)

    def learn_one(self, x: Features, y: float) -> None:
        errs = self.user_err.get(x["user"])
        first = errs is None
        if first:
            errs = dict(self.glob_err)  # start a new user from the global ranking
            self.user_err[x["user"]] = errs
        self.n_glob += 1
        ga = max(self.alpha / 3, 1 / self.n_glob)
        for name, model in self.candidates.items():
            e = abs(model.predict_one(x) - y)
            errs[name] += self.alpha * (e - errs[name])
            self.glob_err[name] += ga * (e - self.glob_err[name])
            model.learn_one(x, y)
