"""Site (depot) model for smart charging: EVs, a tree of power limits, and price/carbon signals.

Everything here is plain data plus validation. The optimiser and the baselines consume the same
`Site`, so that a baseline and the LP are always compared on exactly the same instance.

Conventions (shared by every module in this package):

* Time is discretised into `n_slots` slots of `slot_hours` hours. Slot ``t`` covers
  ``[t*slot_hours, (t+1)*slot_hours)`` from the site's `start`.
* An EV may draw power in slots ``arrival <= t < departure`` (departure is *exclusive*: it is the
  first slot in which the car is gone). Power is constant within a slot, so energy in a slot is
  ``p * slot_hours``.
* Powers are kW, energies kWh, prices EUR/kWh, carbon intensities g CO2/kWh.
* The limit tree caps the *sum* of the powers of the EVs attached anywhere under a node
  (transformer -> panels -> chargers). EVs normally attach to leaves (their charger/connector) but
  may attach to any node (e.g. the ACN replay attaches every car directly to the site root).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterator, Literal, Mapping, Sequence

import numpy as np

__all__ = [
    "EV",
    "LimitNode",
    "Site",
    "Issue",
    "InvalidSiteError",
    "validate",
]

#: Tolerance (kWh or kW) below which numbers are treated as equal; solver outputs are only this exact.
EPS = 1e-6


@dataclass(frozen=True)
class EV:
    """One charging session as the planner sees it.

    `max_kw` is the car's own acceptance limit (on-board charger); the connector's limit is the cap of
    the tree node the car is attached to. `min_kw` > 0 means "when on, draw at least this much" --
    AC chargers cannot go below ~6 A per phase (IEC 61851), which is what makes the MILP necessary.
    `phases` is only used to convert kW to amperes for OCPP profiles.
    """

    id: str
    arrival: int
    departure: int
    energy_kwh: float
    max_kw: float
    node: str
    min_kw: float = 0.0
    phases: int = 3

    def window(self) -> range:
        """Slots in which the car may charge (empty if departure <= arrival)."""
        return range(self.arrival, max(self.arrival, self.departure))


@dataclass(frozen=True)
class LimitNode:
    """A node of the limit tree: a power cap (kW) over everything attached beneath it."""

    id: str
    cap_kw: float
    children: tuple["LimitNode", ...] = ()

    def walk(self) -> Iterator["LimitNode"]:
        """Pre-order traversal (root first)."""
        yield self
        for child in self.children:
            yield from child.walk()

    def ancestors(self) -> dict[str, tuple[str, ...]]:
        """Map node id -> ids of the node itself and all nodes above it (self first, root last).

        An EV attached to node n loads every node in ``ancestors()[n]``.
        """
        out: dict[str, tuple[str, ...]] = {}

        def rec(node: LimitNode, above: tuple[str, ...]) -> None:
            chain = (node.id,) + above
            out[node.id] = chain
            for child in node.children:
                rec(child, chain)

        rec(self, ())
        return out


@dataclass(frozen=True)
class Issue:
    """One validation finding. `subject` is an EV id or a node id."""

    subject: str
    code: str
    message: str


class InvalidSiteError(ValueError):
    """Raised by strict validation. Carries every issue, not just the first, so a caller can fix all."""

    def __init__(self, issues: Sequence[Issue]):
        self.issues = tuple(issues)
        super().__init__("; ".join(f"{i.subject}: {i.message}" for i in self.issues))


@dataclass(frozen=True)
class Site:
    """A complete planning instance.

    `price` and `carbon` are per slot (length `n_slots`) or None (criterion unavailable).
    `cap_schedule` optionally overrides a node's cap per slot (length `n_slots`) -- used for charger
    faults (cap 0 from the fault on) and for time-varying grid agreements.
    """

    evs: tuple[EV, ...]
    tree: LimitNode
    n_slots: int
    slot_hours: float = 0.25
    price: np.ndarray | None = None
    carbon: np.ndarray | None = None
    cap_schedule: Mapping[str, np.ndarray] = field(default_factory=dict)
    start: datetime | None = None
    name: str = ""

    def node_caps(self) -> dict[str, np.ndarray]:
        """Per-slot cap of every node (kW), with `cap_schedule` overrides applied."""
        caps = {n.id: np.full(self.n_slots, float(n.cap_kw)) for n in self.tree.walk()}
        for node_id, sched in self.cap_schedule.items():
            caps[node_id] = np.minimum(caps[node_id], np.asarray(sched, dtype=float)[: self.n_slots])
        return caps

    def ev_max_kw(self, ev: EV) -> float:
        """The most this EV can ever draw: its own limit and every cap above it (static part only)."""
        anc = self.tree.ancestors()[ev.node]
        caps = {n.id: n.cap_kw for n in self.tree.walk()}
        return max(0.0, min([ev.max_kw] + [caps[a] for a in anc]))

    def deliverable_kwh(
        self, ev: EV, caps: Mapping[str, np.ndarray] | None = None, ancestors: Mapping[str, tuple[str, ...]] | None = None
    ) -> float:
        """Upper bound on what the EV could receive if it were alone on the site.

        Pass precomputed `caps`/`ancestors` when calling for many EVs (validation of 500 cars).
        """
        caps = caps if caps is not None else self.node_caps()
        anc = (ancestors if ancestors is not None else self.tree.ancestors())[ev.node]
        total = 0.0
        for t in ev.window():
            if 0 <= t < self.n_slots:
                total += max(0.0, min([ev.max_kw] + [caps[a][t] for a in anc])) * self.slot_hours
        return total

    def with_evs(self, evs: Sequence[EV]) -> "Site":
        return replace(self, evs=tuple(evs))


def _finite(x: float) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def validate(
    site: Site, mode: Literal["strict", "best_effort"] = "strict"
) -> tuple[Site, list[Issue]]:
    """Check a site for impossible requests before it reaches a solver.

    WHY: a solver fed a negative cap or an empty window returns "infeasible" with no hint which of
    500 cars caused it, and an over-large energy request silently turns the energy stage into a
    rationing problem. We find those up front and name the culprit.

    * ``strict``: raise `InvalidSiteError` listing every issue.
    * ``best_effort``: return a repaired copy (windows clipped to the horizon, empty windows and
      negative requests set to 0 kWh, negative caps set to 0, requests larger than what the window
      and power allow capped to what fits) plus the issues, so the caller can still schedule
      everything else and report the flagged sessions as infeasible. Nothing is dropped: a car whose
      request cannot be served stays in the instance with a 0 kWh request.
    """
    issues: list[Issue] = []
    fixed_nodes: dict[str, float] = {}
    seen_nodes: set[str] = set()
    for node in site.tree.walk():
        if node.id in seen_nodes:
            issues.append(Issue(node.id, "duplicate_node", f"node id {node.id!r} appears twice in the tree"))
        seen_nodes.add(node.id)
        if not isinstance(node.cap_kw, (int, float, np.floating, np.integer)) or math.isnan(node.cap_kw):
            issues.append(Issue(node.id, "bad_limit", f"cap {node.cap_kw!r} is not a number"))
            fixed_nodes[node.id] = 0.0
        elif node.cap_kw < 0:
            issues.append(Issue(node.id, "negative_limit", f"cap {node.cap_kw} kW is negative"))
            fixed_nodes[node.id] = 0.0
    sched_fixed: dict[str, np.ndarray] = {}
    for node_id, sched in site.cap_schedule.items():
        arr = np.asarray(sched, dtype=float)
        if node_id not in seen_nodes:
            issues.append(Issue(node_id, "unknown_node", "cap_schedule names a node that is not in the tree"))
            continue
        if len(arr) < site.n_slots:
            issues.append(Issue(node_id, "short_schedule", f"cap_schedule has {len(arr)} < {site.n_slots} slots"))
            arr = np.concatenate([arr, np.full(site.n_slots - len(arr), np.inf)])
        if np.any(~np.isfinite(arr) & ~np.isposinf(arr)) or np.any(arr < 0):
            issues.append(Issue(node_id, "negative_limit", "cap_schedule has negative or NaN entries"))
            arr = np.where(np.isnan(arr) | (arr < 0), 0.0, arr)
        sched_fixed[node_id] = arr
    for name, sig in (("price", site.price), ("carbon", site.carbon)):
        if sig is not None:
            arr = np.asarray(sig, dtype=float)
            if arr.shape != (site.n_slots,) or not np.all(np.isfinite(arr)):
                issues.append(Issue("site", f"bad_{name}", f"{name} must be {site.n_slots} finite numbers"))
    if site.n_slots <= 0 or not _finite(site.slot_hours) or site.slot_hours <= 0:
        issues.append(Issue("site", "bad_horizon", "n_slots and slot_hours must be positive"))

    def tree_fixed(node: LimitNode) -> LimitNode:
        return LimitNode(node.id, fixed_nodes.get(node.id, node.cap_kw), tuple(tree_fixed(c) for c in node.children))

    repaired_site = replace(site, tree=tree_fixed(site.tree), cap_schedule=sched_fixed)
    evs: list[EV] = []
    seen_evs: set[str] = set()
    all_caps = repaired_site.node_caps()
    all_anc = repaired_site.tree.ancestors()
    for ev in site.evs:
        e = ev
        if ev.id in seen_evs:
            issues.append(Issue(ev.id, "duplicate_ev", "EV id appears twice"))
        seen_evs.add(ev.id)
        if ev.node not in seen_nodes:
            issues.append(Issue(ev.id, "unknown_node", f"attached to unknown node {ev.node!r}"))
            e = replace(e, node=site.tree.id, energy_kwh=0.0)
        if not all(_finite(x) for x in (ev.energy_kwh, ev.max_kw, ev.min_kw)):
            issues.append(Issue(ev.id, "not_a_number", "energy/max/min power must be finite numbers"))
            e = replace(e, energy_kwh=0.0, max_kw=0.0, min_kw=0.0)
        if ev.departure <= ev.arrival:
            issues.append(
                Issue(ev.id, "departure_not_after_arrival", f"departure slot {ev.departure} <= arrival slot {ev.arrival}")
            )
            e = replace(e, departure=e.arrival, energy_kwh=0.0)
        if ev.arrival < 0 or ev.departure > site.n_slots:
            issues.append(
                Issue(ev.id, "window_outside_horizon", f"window [{ev.arrival},{ev.departure}) leaves [0,{site.n_slots})")
            )
            a = min(max(e.arrival, 0), site.n_slots)
            e = replace(e, arrival=a, departure=min(max(e.departure, a), site.n_slots))
        if e.energy_kwh < 0:
            issues.append(Issue(ev.id, "negative_energy", f"requested {ev.energy_kwh} kWh"))
            e = replace(e, energy_kwh=0.0)
        if e.max_kw < 0:
            issues.append(Issue(ev.id, "negative_limit", f"max power {ev.max_kw} kW is negative"))
            e = replace(e, max_kw=0.0, energy_kwh=0.0)
        if e.min_kw < 0 or e.min_kw > e.max_kw + EPS:
            issues.append(Issue(ev.id, "bad_min_power", f"min power {ev.min_kw} kW not in [0, max {ev.max_kw}]"))
            e = replace(e, min_kw=min(max(e.min_kw, 0.0), e.max_kw))
        if ev.phases not in (1, 2, 3):
            issues.append(Issue(ev.id, "bad_phases", f"phases={ev.phases} (must be 1, 2 or 3)"))
            e = replace(e, phases=3)
        fits = repaired_site.deliverable_kwh(e, all_caps, all_anc)
        if e.energy_kwh > fits + EPS:
            issues.append(
                Issue(
                    ev.id,
                    "energy_exceeds_window",
                    f"requested {e.energy_kwh:.3f} kWh but window and power allow at most {fits:.3f} kWh",
                )
            )
            e = replace(e, energy_kwh=fits)
        evs.append(e)
    if mode == "strict" and issues:
        raise InvalidSiteError(issues)
    return replace(repaired_site, evs=tuple(evs)), issues


def single_level_site(
    evs: Sequence[EV], cap_kw: float, n_slots: int, slot_hours: float = 0.25, **kw: object
) -> Site:
    """Convenience: one site node with every EV attached to it (the ACN replay's topology)."""
    return Site(evs=tuple(evs), tree=LimitNode("site", cap_kw), n_slots=n_slots, slot_hours=slot_hours, **kw)  # type: ignore[arg-type]
