"""Prequential ("test then train") evaluation, strictly in time order, so the reported MAE is what the stream
processor would have achieved live.

Sessions: at each plug-in every model predicts from features built with only what is known at that instant; the
session's label is queued and learned at its unplug time, and only by predictions made strictly AFTER that unplug
(a label known at 10:00:00 is not used for a plug-in at 10:00:00: ties go against the model, never for it).  So an
overlapping earlier session of the same user does not inform the next one, as in reality.

Series (hourly occupancy): at the end of each hour t the forecaster sees y_t, then forecasts t+1..t+H; the forecast
for t+h is scored when y_{t+h} arrives.  Only forecasts whose target lies inside the series are scored.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from .loaders import SessionRecord
from .session_models import PlugInFeaturizer, Regressor


@dataclass
class PrequentialResult:
    mae: dict[str, float]
    n: int
    abs_errors: dict[str, list[float]] = field(default_factory=dict, repr=False)


def prequential_sessions(records: Iterable[SessionRecord], models: Mapping[str, Regressor],
                         target: Callable[[SessionRecord], float],
                         featurizer: PlugInFeaturizer | None = None,
                         label_time: Callable[[SessionRecord], datetime] = lambda r: r.unplug,
                         keep_errors: bool = False) -> PrequentialResult:
    """MAE per model over `records` (sorted here by plug-in).  `featurizer` is shared by all models (it holds only
    learned history, so sharing cannot leak one model's view to another)."""
    feat = featurizer or PlugInFeaturizer()
    recs = sorted(records, key=lambda r: r.plug_in.timestamp())
    pending: list[tuple[float, int, SessionRecord, dict]] = []  # (label time as POSIX, tie, ...)
    tie = itertools.count()
    sums = {k: 0.0 for k in models}
    errors: dict[str, list[float]] = {k: [] for k in models}
    n = 0
    for rec in recs:
        while pending and pending[0][0] < rec.plug_in.timestamp():
            _, _, done, x_done = heapq.heappop(pending)
            y_done = target(done)
            for m in models.values():
                m.learn_one(x_done, y_done)
            feat.observe_end(done)
        x = feat.features(rec)
        y = target(rec)
        n += 1
        for name, m in models.items():
            e = abs(m.predict_one(x) - y)
            sums[name] += e
            if keep_errors:
                errors[name].append(e)
        heapq.heappush(pending, (label_time(rec).timestamp(), next(tie), rec, x))
    return PrequentialResult({k: (v / n if n else float("nan")) for k, v in sums.items()}, n,
                             errors if keep_errors else {})


class SeriesForecaster(Protocol):
    def learn_one(self, t: datetime, y: float) -> None: ...

    def forecast(self, horizon: int) -> list[float]: ...


def prequential_series(times: Sequence[datetime], values: Sequence[float],
                       models: Mapping[str, SeriesForecaster], horizons: Sequence[int],
                       warmup: int = 0) -> dict[int, dict[str, float]]:
    """MAE per horizon per model.  `warmup` skips scoring targets in the first `warmup` steps (all models equally),
    because every model is meaningless before it has seen a week."""
    hmax = max(horizons)
    sums = {h: {k: 0.0 for k in models} for h in horizons}
    counts = {h: 0 for h in horizons}
    for i, (t, y) in enumerate(zip(times, values)):
        for m in models.values():
            m.learn_one(t, y)
        fc = {k: m.forecast(hmax) for k, m in models.items()}
        for h in horizons:
            j = i + h
            if j >= len(values) or j < warmup:
                continue
            counts[h] += 1
            for k in models:
                sums[h][k] += abs(fc[k][h - 1] - values[j])
    return {h: {k: (s / counts[h] if counts[h] else float("nan")) for k, s in sums[h].items()} for h in horizons}
