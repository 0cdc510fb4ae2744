"""Seeded synthetic depot instances for scale tests and benches.

WHY synthetic: the scale target (500 EVs x 96 slots) is larger than any single ACN day (at most ~60
cars), so we need a generator; seeding keeps timing runs comparable between commits.

The depot: every car has its own connector (leaf, 22 kW), 20 connectors per panel (`panel_kw`),
all panels under one transformer (`site_kw`). 70 % of cars arrive for the work day (around 08:30),
30 % in the evening (around 18:00); dwell 2-10 h; request 5-60 kWh, capped to what its window and
power allow so the instance is individually feasible (the site limits still bind).
"""

from __future__ import annotations

import numpy as np

from .model import EV, LimitNode, Site

__all__ = ["depot"]


def depot(
    n_evs: int = 500,
    n_slots: int = 96,
    slot_hours: float = 0.25,
    seed: int = 0,
    site_kw: float = 2000.0,
    panel_kw: float = 150.0,
    min_kw: float = 0.0,
) -> Site:
    rng = np.random.default_rng(seed)
    per_hour = 1.0 / slot_hours
    evs = []
    for i in range(n_evs):
        mean_h = 8.5 if rng.random() < 0.7 else 18.0
        arr_h = float(np.clip(rng.normal(mean_h, 1.5), 0, 23))
        dwell_h = float(rng.uniform(2, 10))
        a = int(arr_h * per_hour)
        d = int(min(n_slots, a + max(1, round(dwell_h * per_hour))))
        pmax = float(rng.choice([7.4, 11.0, 22.0]))
        e = float(min(rng.uniform(5, 60), pmax * (d - a) * slot_hours))
        evs.append(EV(f"ev{i}", a, d, round(e, 3), pmax, f"c{i}", min_kw=min(min_kw, pmax)))
    panels = []
    for j in range(0, n_evs, 20):
        leaves = tuple(LimitNode(f"c{i}", 22.0) for i in range(j, min(n_evs, j + 20)))
        panels.append(LimitNode(f"panel{j // 20}", panel_kw, leaves))
    t = np.arange(n_slots) * slot_hours
    price = 0.12 + 0.08 * np.sin((t - 12) / 24 * 2 * np.pi) + rng.normal(0, 0.01, n_slots)
    carbon = 200 + 80 * np.cos((t - 13) / 24 * 2 * np.pi) + rng.normal(0, 5, n_slots)
    return Site(tuple(evs), LimitNode("site", site_kw, tuple(panels)), n_slots, slot_hours,
                price=price, carbon=carbon, name=f"depot{n_evs}x{n_slots}s{seed}")
