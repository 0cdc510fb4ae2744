"""Least-laxity-first plan of the cars plugged in now: the online planner's guard at a paid-up connection.

WHY: once the grid connection is paid for (`OnlinePlanner.connection_paid`), the peak can no longer
change and the only thing the online plan decides is *which* plugged car gets the scarce capacity now.
Every plan that delivers the maximum energy to the cars already plugged in is equally good for them; they
differ in what they leave owed when the next cars arrive. The LP's tie-breakers (``asap``, ``urgency``
with static laxity weights) pick one such plan, and on the 136 ACN days at a 25 kW limit that choice
lost 0.02 points of energy to plain LLF. LLF re-ranks the cars by laxity *every slot*, which keeps what
is still owed with the most flexible cars. So the planner simulates LLF over the plugged cars from now
on (the future arrivals are unknown: none are assumed) and uses that plan whenever it delivers as much
energy to the plugged cars as the LP optimum; only when the LP finds strictly more does the LP plan
win. The online plan then never does worse than LLF for the cars it knows, and better where LLF's
greedy order strands energy.

Invariants: pure (no I/O); causal (only the cars given, from slot `now`); the plan respects every node
cap in every slot and each car's window, power limit, remaining need and minimum power (a car that
would get less than its minimum is left off, as in `baselines.llf`); ties are broken by arrival slot,
then EV id, as in `baselines`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .model import EPS, EV, LimitNode

__all__ = ["llf_plan"]


def llf_plan(
    tree: LimitNode,
    caps: Mapping[str, np.ndarray],
    cars: Sequence[tuple[EV, float]],
    now: int,
    n_slots: int,
    slot_hours: float,
) -> np.ndarray:
    """kW per (car, slot) of LLF from slot `now` on for `cars` = (ev, kWh still owed); 0 before `now`.

    `caps` are the per-slot caps of the tree's nodes (nodes missing from it are unlimited).
    """
    n = len(cars)
    power = np.zeros((n, n_slots))
    if n == 0:
        return power
    anc = tree.ancestors()
    owed = np.array([max(0.0, r) for _, r in cars])
    for t in range(max(0, now), n_slots):
        active = [i for i, (ev, _) in enumerate(cars) if ev.arrival <= t < ev.departure and owed[i] > EPS]
        if not active:
            continue
        head = {k: float(v[t]) for k, v in caps.items()}

        def laxity(i: int) -> tuple[float, int, str]:
            ev = cars[i][0]
            rate = ev.max_kw if ev.max_kw > EPS else EPS
            return ((ev.departure - t) * slot_hours - owed[i] / rate, ev.arrival, ev.id)

        for i in sorted(active, key=laxity):
            ev = cars[i][0]
            p = min([owed[i] / slot_hours, ev.max_kw] + [head[a] for a in anc[ev.node] if a in head])
            if p <= EPS or p < ev.min_kw - EPS:
                continue
            power[i, t] = p
            owed[i] = max(0.0, owed[i] - p * slot_hours)
            for a in anc[ev.node]:
                if a in head:
                    head[a] -= p
    return power
