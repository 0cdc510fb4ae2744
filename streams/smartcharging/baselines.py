"""Reference scheduling policies the optimiser is measured against.

All four are *online* and causal: at each slot they look only at the cars plugged in now, their
remaining need and their departure (which the driver declared), never at future arrivals. All
respect the whole limit tree: within a slot, power is handed out in a policy-specific way and every
grant is clipped to the headroom left on every node above the car, so no node is ever exceeded.

* ``uncontrolled`` -- full power from plug-in until full. With a site limit, first come first served
  (cars plugged in earlier keep their power; a later car gets what is left), which is what a
  breaker-protected site without a controller does in effect.
* ``edf`` -- earliest deadline (departure) first, each car served at full power in that order.
* ``llf`` -- least laxity first; laxity = time left before departure minus the time still needed at
  full power (hours). Recomputed every slot.
* ``round_robin`` -- every plugged car gets an equal share, in the limit of infinitely small
  round-robin increments: max-min fair water-filling per slot under the tree (a car whose own limit
  or need is lower than the fair share keeps only what it can use; the rest is re-shared).

Ties are broken by arrival slot, then EV id, so results are deterministic.
A car with `min_kw` > 0 that would be granted less than its minimum is left off for that slot.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

from .model import EPS, EV, Site
from .schedule import Schedule

__all__ = ["uncontrolled", "round_robin", "edf", "llf", "run_baseline", "BASELINES"]

Policy = Literal["uncontrolled", "round_robin", "edf", "llf"]


def _greedy_slot(
    order: list[int], need_kw: np.ndarray, evs: tuple[EV, ...], anc: dict[str, tuple[str, ...]], head: dict[str, float]
) -> np.ndarray:
    grant = np.zeros(len(evs))
    for i in order:
        ev = evs[i]
        p = min([need_kw[i], ev.max_kw] + [head[a] for a in anc[ev.node]])
        if p < ev.min_kw - EPS or p <= EPS:
            continue
        grant[i] = p
        for a in anc[ev.node]:
            head[a] -= p
    return grant


def _waterfill_slot(
    active: list[int], need_kw: np.ndarray, evs: tuple[EV, ...], anc: dict[str, tuple[str, ...]], head: dict[str, float]
) -> np.ndarray:
    """Max-min fair split of the headroom among `active` cars under the tree (progressive filling)."""
    grant = np.zeros(len(evs))
    cap = {i: min(need_kw[i], evs[i].max_kw) for i in active}
    free = {i for i in active if cap[i] > EPS}
    while free:
        count: dict[str, int] = {}
        for i in free:
            for a in anc[evs[i].node]:
                count[a] = count.get(a, 0) + 1
        step = min(min(head[a] / c for a, c in count.items()), min(cap[i] - grant[i] for i in free))
        step = max(step, 0.0)
        for i in free:
            grant[i] += step
        for a, c in count.items():
            head[a] -= step * c
        saturated = {a for a in count if head[a] <= EPS}
        free = {
            i for i in free if cap[i] - grant[i] > EPS and not any(a in saturated for a in anc[evs[i].node])
        }
    # Minimum power: a car granted less than its minimum is switched off and its share returned.
    for i in active:
        if 0 < grant[i] < evs[i].min_kw - EPS:
            for a in anc[evs[i].node]:
                head[a] += grant[i]
            grant[i] = 0.0
    return grant


def run_baseline(site: Site, policy: Policy) -> Schedule:
    """Simulate `policy` slot by slot on `site` and return the realised schedule."""
    evs = site.evs
    n, T, dt = len(evs), site.n_slots, site.slot_hours
    anc = site.tree.ancestors()
    caps = site.node_caps()
    remaining = np.array([max(0.0, e.energy_kwh) for e in evs])
    power = np.zeros((n, T))
    by_arrival: dict[int, list[int]] = {}
    for i, e in enumerate(evs):
        by_arrival.setdefault(e.arrival, []).append(i)
    plugged: list[int] = []
    for t in range(T):
        plugged.extend(by_arrival.get(t, []))
        plugged = [i for i in plugged if evs[i].departure > t]
        active = [i for i in plugged if remaining[i] > EPS]
        if not active:
            continue
        head = {k: float(v[t]) for k, v in caps.items()}
        need_kw = remaining / dt
        tie: Callable[[int], tuple] = lambda i: (evs[i].arrival, evs[i].id)  # noqa: E731
        if policy == "uncontrolled":
            grant = _greedy_slot(sorted(active, key=tie), need_kw, evs, anc, head)
        elif policy == "edf":
            grant = _greedy_slot(sorted(active, key=lambda i: (evs[i].departure,) + tie(i)), need_kw, evs, anc, head)
        elif policy == "llf":

            def laxity(i: int) -> tuple:
                rate = evs[i].max_kw if evs[i].max_kw > EPS else EPS
                return ((evs[i].departure - t) * dt - remaining[i] / rate,) + tie(i)

            grant = _greedy_slot(sorted(active, key=laxity), need_kw, evs, anc, head)
        elif policy == "round_robin":
            grant = _waterfill_slot(sorted(active, key=tie), need_kw, evs, anc, head)
        else:
            raise ValueError(f"unknown policy {policy!r}")
        power[:, t] = grant
        remaining = np.maximum(remaining - grant * dt, 0.0)
    short = any(r > 1e-6 * max(1.0, e.energy_kwh) for r, e in zip(remaining, evs))
    return Schedule(tuple(e.id for e in evs), power, dt, algorithm=policy, infeasible=short,
                    status="unmet_demand" if short else "ok")


def uncontrolled(site: Site) -> Schedule:
    return run_baseline(site, "uncontrolled")


def round_robin(site: Site) -> Schedule:
    return run_baseline(site, "round_robin")


def edf(site: Site) -> Schedule:
    return run_baseline(site, "edf")


def llf(site: Site) -> Schedule:
    return run_baseline(site, "llf")


BASELINES: dict[str, Callable[[Site], Schedule]] = {
    "uncontrolled": uncontrolled,
    "round_robin": round_robin,
    "edf": edf,
    "llf": llf,
}
