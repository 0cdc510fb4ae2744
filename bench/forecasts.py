"""Prequential benchmark of the issue-7 forecasts on the real session files, against baselines in the same run.

    nice -n 5 .venv/bin/python bench/forecasts.py            # full (ARF residual candidate on, duration only)
    nice -n 5 .venv/bin/python bench/forecasts.py --quick    # no ARF candidate (energy figures are identical)

"learned" = `SessionForecaster`: per driver, an exponentially-weighted blend (weights from that driver's past
absolute errors only) of per-driver context medians, station-pooled medians (cold start: a new driver is predicted
from the station they plug into), a request-ratio model (ACN app inputs, first input only), gap-scaled energy
medians (energy), a median (least-absolute-deviation) regression shared by all drivers on what is known at plug-in
(energy: the driver's and the station's medians, the typed request, time away, clock; it also speaks for drivers
never seen before), a station pool matched on the car the ACN app states (Wh/mile, range asked; energy), the
driver's habit kernels and recency medians kept per site (a driver charging at two garages; energy),
a cross-driver curve of where in their own range of energies a driver's session falls (`RankQuantile`; energy),
a cross-driver stack over the blend (the mean of a linear and a log-space median regression) mixed with it by
recent errors (energy), and a
leaving-time-shifted duration median (duration); see streams/forecasting/session_models.py.
The per-model cost is dominated by the Python weighted medians; "us/ev" is the learned model's CPU time per session
(its prediction at plug-in plus its learning at unplug), measured around the model alone in this run.

Conventions: sessions in plug-in order, predicted at plug-in, learned at unplug (streams/forecasting/prequential.py);
calendar features in site-local time; occupancy = time-weighted mean number of plugged-in cars per hour over the
whole ACN site (streams/forecasting/occupancy.py), every hour from the first plug-in to the last unplug; next hour
is scored from the first hour, day ahead is the 24th step of a forecast made at every hour.  "Best baseline" for
sessions is the lowest of global mean / user mean / user median / last value; for occupancy next hour it is
persistence (the issue's target), day ahead the running mean per (weekday, hour).
Data are read in place from <repo>/../shared/data; PNGs go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.forecasting.loaders import LOS_ANGELES, load_acn, load_palo_alto, load_trondheim, shared_data_dir  # noqa: E402,E501
from streams.forecasting.occupancy import (Persistence, SeasonalBlend, SeasonalMean, Snarimax,  # noqa: E402
                                           hourly_occupancy)
from streams.forecasting.prequential import prequential_series, prequential_sessions  # noqa: E402
from streams.forecasting.session_models import SessionForecaster, baselines  # noqa: E402

BASELINES = ("global mean", "user mean", "user median", "last value")


class _Timed:
    """Wraps a model and adds up the CPU time of its calls: the per-event cost the live processor pays."""

    def __init__(self, model: Any) -> None:
        self.model, self.cpu = model, 0.0

    def predict_one(self, x: dict[str, Any]) -> float:
        t = time.process_time()
        try:
            return self.model.predict_one(x)
        finally:
            self.cpu += time.process_time() - t

    def learn_one(self, x: dict[str, Any], y: float) -> None:
        t = time.process_time()
        self.model.learn_one(x, y)
        self.cpu += time.process_time() - t
REFERENCE = {("ACN", "energy kWh"): 5.06, ("Trondheim", "energy kWh"): 5.40,
             ("ACN", "duration h"): 1.36, ("Trondheim", "duration h"): 6.72}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the ARF candidate (duration; energy has none)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--palo-alto", action="store_true",
                    help="also Palo Alto 2011-2013: a third dataset that no model choice was tuned on (no target)")
    args = ap.parse_args()
    t_start = time.time()
    data = shared_data_dir(ROOT) / "sessions"
    acn, acn_rep = load_acn(data / "acn_caltech_2021.json")
    tr, tr_rep = load_trondheim(data / "norway_trondheim_2018_2020.csv")
    print(acn_rep.summary())
    print(tr_rep.summary())
    datasets = [("ACN", acn), ("Trondheim", tr)]
    if args.palo_alto:
        pa, pa_rep = load_palo_alto(data / "palo_alto_2011_2013.csv")
        print(pa_rep.summary())
        datasets.append(("Palo Alto", pa))
    print()
    rows: list[tuple[str, str, dict[str, float], str, float, float]] = []
    summary: list[str] = []
    for ds, recs in datasets:
        for label, target, fn in (("energy kWh", "kwh", lambda r: r.kwh), ("duration h", "duration_h",
                                                                           lambda r: r.duration_h)):
            t0 = time.time()
            models = dict(baselines())
            learned = models["learned"] = _Timed(SessionForecaster(target, use_arf=not args.quick))
            res = prequential_sessions(recs, models, fn)
            best = min(BASELINES, key=res.mae.__getitem__)
            rows.append((ds, label, res.mae, best, time.time() - t0, learned.cpu / max(res.n, 1) * 1e6))
            gain = 1 - res.mae["learned"] / res.mae[best]
            summary.append(f"{ds} {label.split()[0]} {res.mae['learned']:.3f} vs {best} {res.mae[best]:.3f} "
                           f"({-gain:+.1%})")
    print(f"{'session forecasts (prequential MAE)':<26}" + "".join(f"{k:>13}" for k in (*BASELINES, "learned"))
          + "   best baseline -> learned   ref bar (user mean)")
    for ds, label, mae, best, secs, us in rows:
        gain = 1 - mae["learned"] / mae[best]
        print(f"{ds + ' ' + label:<26}" + "".join(f"{mae[k]:>13.3f}" for k in (*BASELINES, "learned"))
              + f"   {best}: {-gain:+.1%} "
              + ("(held out: no target)" if ds == "Palo Alto" else
                 "(target -10% met)" if gain >= 0.10 else "(target -10% NOT met)")
              + f"   {REFERENCE.get((ds, label), float('nan')):.2f}   [{secs:.0f}s, {us:.0f} us/ev]")

    times, vals = hourly_occupancy(acn)
    t0 = time.time()
    occ_models = {"persistence": Persistence(), "mean (wd,h)": SeasonalMean(LOS_ANGELES),
                  "SNARIMAX": Snarimax(), "learned": SeasonalBlend(LOS_ANGELES)}
    occ = prequential_series(times, vals, occ_models, [1, 24])
    print()
    print(f"ACN whole-site occupancy, {len(vals)} hours, mean {sum(vals) / len(vals):.2f} cars "
          f"(prequential MAE, cars) [{time.time() - t0:.0f}s]")
    print(f"{'horizon':<14}" + "".join(f"{k:>14}" for k in occ_models) + "   vs baseline         ref bar")
    for h, base, ref in ((1, "persistence", "persistence 0.669, SNARIMAX 0.642"),
                         (24, "mean (wd,h)", "mean (wd,h) 1.102")):
        m = occ[h]
        gain = 1 - m["learned"] / m[base]
        print(f"{('next hour' if h == 1 else 'day ahead'):<14}" + "".join(f"{m[k]:>14.3f}" for k in occ_models)
              + f"   {base}: {-gain:+.1%} {'(met)' if gain >= 0.10 else '(NOT met)'}   {ref}")
        summary.append(f"occupancy {'1h' if h == 1 else '24h'} {m['learned']:.3f} vs {base} {m[base]:.3f} "
                       f"({-gain:+.1%})")

    if not args.no_plot:
        try:
            _plot(rows, occ)
        except ImportError:
            print("(matplotlib not installed: no PNG)")
    print()
    print(f"SUMMARY{' (quick)' if args.quick else ''}: " + "; ".join(summary) + f"; {time.time() - t_start:.0f}s")
    return 0


def _plot(rows, occ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(rows) + 2, figsize=(3.2 * (len(rows) + 2), 3.2))
    for ax, (ds, label, mae, best, _, _us) in zip(axes, rows):
        names = [*BASELINES, "learned"]
        ax.bar(range(len(names)), [mae[k] for k in names],
               color=["#999"] * len(BASELINES) + ["#2a7"])
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        ax.set_title(f"{ds} {label}", fontsize=8)
    for ax, h in zip(axes[len(rows):], (1, 24)):
        names = list(occ[h])
        ax.bar(range(len(names)), [occ[h][k] for k in names], color=["#999"] * (len(names) - 1) + ["#2a7"])
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        ax.set_title(f"ACN occupancy +{h}h (cars)", fontsize=8)
    fig.suptitle("prequential MAE: baselines (grey) vs learned (green)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "forecasts_mae.png", dpi=110)
    print(f"wrote {out / 'forecasts_mae.png'}")


if __name__ == "__main__":
    raise SystemExit(main())
