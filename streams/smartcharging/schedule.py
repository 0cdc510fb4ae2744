"""A per-EV, per-slot power schedule and the metrics every algorithm is judged by.

One result type for the optimiser and the baselines, so the bench and the tests measure them with
the same code (a metric computed differently per algorithm would make the comparison meaningless).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .model import Issue, Site

__all__ = ["Schedule", "violations"]


@dataclass
class Schedule:
    """`power[i, t]` is the kW drawn by `ev_ids[i]` in slot t.

    `issues` carries validation findings and `infeasible` is True when some request could not be met
    in full (flagged best-effort, never a crash). `stages` records each lexicographic stage's optimal
    value, `timings` build/solve seconds.
    """

    ev_ids: tuple[str, ...]
    power: np.ndarray
    slot_hours: float
    algorithm: str = ""
    status: str = "ok"
    infeasible: bool = False
    issues: list[Issue] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def delivered_kwh(self) -> np.ndarray:
        return self.power.sum(axis=1) * self.slot_hours

    def site_load(self) -> np.ndarray:
        return self.power.sum(axis=0)

    def peak_kw(self) -> float:
        load = self.site_load()
        return float(load.max()) if load.size else 0.0

    def cost(self, price: np.ndarray | None) -> float:
        """EUR, given price per slot in EUR/kWh."""
        if price is None:
            return float("nan")
        return float(self.site_load() @ np.asarray(price, dtype=float)[: self.power.shape[1]] * self.slot_hours)

    def carbon(self, intensity: np.ndarray | None) -> float:
        """kg CO2, given intensity per slot in g/kWh."""
        if intensity is None:
            return float("nan")
        return float(self.site_load() @ np.asarray(intensity, dtype=float)[: self.power.shape[1]] * self.slot_hours) / 1000.0

    def by_id(self, ev_id: str) -> np.ndarray:
        return self.power[self.ev_ids.index(ev_id)]


def violations(site: Site, sched: Schedule, tol: float = 1e-5, check_min_power: bool = True) -> list[str]:
    """Every way `sched` breaks the physics of `site` (empty list = valid).

    Checked: power outside the EV's window, negative power, power above the EV limit, energy above
    the request, any limit-tree node exceeded, and on/off minimum power when an EV has one (skip
    that with ``check_min_power=False`` for LP schedules, which deliberately relax it).
    Tests and the bench call this on *every* algorithm's output.
    """
    out: list[str] = []
    idx = {e: i for i, e in enumerate(sched.ev_ids)}
    anc = site.tree.ancestors()
    caps = site.node_caps()
    node_load = {n: np.zeros(site.n_slots) for n in caps}
    T = site.n_slots
    if sched.power.shape != (len(site.evs), T):
        return [f"power has shape {sched.power.shape}, expected {(len(site.evs), T)}"]
    for ev in site.evs:
        p = sched.power[idx[ev.id]]
        if np.any(p < -tol):
            out.append(f"{ev.id}: negative power")
        mask = np.zeros(T, dtype=bool)
        mask[ev.arrival : max(ev.arrival, ev.departure)] = True
        if np.any(np.abs(p[~mask]) > tol):
            out.append(f"{ev.id}: power outside its window")
        if np.any(p > ev.max_kw + tol):
            out.append(f"{ev.id}: power above EV max {ev.max_kw}")
        if check_min_power and ev.min_kw > 0 and np.any((p > tol) & (p < ev.min_kw - tol)):
            out.append(f"{ev.id}: power below minimum {ev.min_kw} while on")
        e = p.sum() * site.slot_hours
        if e > ev.energy_kwh + max(tol, 1e-6 * ev.energy_kwh):
            out.append(f"{ev.id}: delivered {e:.6f} kWh > requested {ev.energy_kwh:.6f}")
        for a in anc[ev.node]:
            node_load[a] += p
    for n, load in node_load.items():
        over = load - caps[n]
        if np.any(over > tol * max(1.0, float(np.max(np.abs(caps[n][np.isfinite(caps[n])]), initial=1.0)))):
            t = int(np.argmax(over))
            out.append(f"node {n}: load {load[t]:.6f} > cap {caps[n][t]:.6f} in slot {t}")
    return out


def empty(site: Site, algorithm: str = "") -> Schedule:
    return Schedule(tuple(e.id for e in site.evs), np.zeros((len(site.evs), site.n_slots)), site.slot_hours, algorithm)


def summarize(schedules: Sequence[Schedule]) -> dict[str, float]:
    """Aggregate helper for benches: total energy and peaks."""
    return {
        "energy_kwh": float(sum(s.delivered_kwh().sum() for s in schedules)),
        "mean_peak_kw": float(np.mean([s.peak_kw() for s in schedules])) if schedules else 0.0,
        "max_peak_kw": float(np.max([s.peak_kw() for s in schedules])) if schedules else 0.0,
    }



