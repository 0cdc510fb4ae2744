"""Online (event-driven) re-planning on one persistent pyomo/HiGHS model.

The planner knows only what has happened: cars that have arrived (with their declared departure and
request), meter readings, faults and prices published so far. On every event it re-optimises the
remaining horizon and returns each plugged car's power per slot from `now` on.

WHY seats: pyomo model building is the expensive part, so the model is built once per site and
horizon with a pool of *seats* per tree node (car positions). An arriving car takes a free seat of its
node and the seat's bounds/request are updated in place; a departed car frees its seat. Only if a
node runs out of seats is the model rebuilt, with the pool doubled (counted in `rebuilds`). HiGHS keeps
its basis between solves, so each re-plan is a warm start.

Time handling: `advance(now)` executes the current plan for slots ``[clock, now)`` -- the cars get what
was planned (unless a meter reading later says otherwise) -- and moves the clock. Executed slots are
closed (upper bound 0) in the model; the peak already realised becomes the peak floor (charging up to
it again is free in the peak stage: minimising below a peak already paid for would only waste
flexibility). Cost/carbon of executed slots are sunk and not optimised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .model import EPS, EV, Issue, LimitNode, Site, validate
from .optimiser import ChargingModel, OptimiserConfig, Seat
from .schedule import Schedule

__all__ = ["OnlinePlanner", "replay"]

DEFAULT_ONLINE = OptimiserConfig(objectives=("energy", "peak", "asap"))


@dataclass
class _Car:
    ev: EV
    seat: str
    delivered: float = 0.0
    plan: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gone: bool = False


class OnlinePlanner:
    """Event-driven planner for one site and horizon."""

    def __init__(
        self,
        tree: LimitNode,
        n_slots: int,
        slot_hours: float = 0.25,
        config: OptimiserConfig = DEFAULT_ONLINE,
        price: np.ndarray | None = None,
        carbon: np.ndarray | None = None,
        seats_per_node: int | dict[str, int] = 8,
    ) -> None:
        self.tree, self.T, self.dt, self.config = tree, n_slots, slot_hours, config
        self.frame = Site((), tree, n_slots, slot_hours, price=price, carbon=carbon)
        self.price, self.carbon = price, carbon
        self.caps = {k: v.copy() for k, v in self.frame.node_caps().items()}
        self.clock = 0
        self.cars: dict[str, _Car] = {}
        self.order: list[str] = []
        self.realised: dict[str, np.ndarray] = {}
        self.issues: list[Issue] = []
        self.rebuilds = 0
        self.replans = 0
        #: Peak the planner may use without penalty (see `replay`); the realised peak raises it.
        self.peak_hint = 0.0
        self.solve_seconds = 0.0
        self.build_seconds = 0.0
        nodes = [n.id for n in tree.walk()]
        if isinstance(seats_per_node, int):
            self.pool = {n: seats_per_node for n in nodes}
        else:
            self.pool = {n: seats_per_node.get(n, 0) for n in nodes}
        self._build()

    # ---------------------------------------------------------------- model management
    def _build(self) -> None:
        seats = [Seat(f"{n}#{i}", n, 0, self.T) for n, c in self.pool.items() for i in range(c)]
        self.cm = ChargingModel(self.tree, self.T, self.dt, seats, self.config)
        self.build_seconds += self.cm.build_seconds
        self.free = {n: [f"{n}#{i}" for i in reversed(range(c))] for n, c in self.pool.items()}
        for node, cap in self.caps.items():
            self.cm.set_node_cap(node, cap)
        self.cm.set_signals(self.price, self.carbon)
        load = self.site_load()
        self.cm.set_peak_floor(max(self.peak_hint, float(load[: self.clock].max()) if self.clock else 0.0))
        for car in self.cars.values():
            if not car.gone:
                car.seat = self.free[car.ev.node].pop()
                self._push(car)

    def _take_seat(self, node: str) -> str:
        if not self.free[node]:
            self.pool[node] = max(1, 2 * self.pool[node])
            self.rebuilds += 1
            self._build()
        return self.free[node].pop()

    def _push(self, car: _Car) -> None:
        ub = np.zeros(self.T)
        if not car.gone:
            lo = max(car.ev.arrival, self.clock)
            ub[lo : car.ev.departure] = car.ev.max_kw
        remaining = max(0.0, car.ev.energy_kwh - car.delivered) if not car.gone else 0.0
        self.cm.set_seat(car.seat, ub, remaining, car.ev.min_kw)

    # ---------------------------------------------------------------- events
    def advance(self, now: int) -> None:
        """Execute the current plans up to (not including) slot `now`."""
        now = min(max(now, self.clock), self.T)
        if now == self.clock:
            return
        for cid in self.order:
            car = self.cars[cid]
            if car.gone or car.plan.size == 0:
                continue
            seg = car.plan[self.clock : now]
            self.realised[cid][self.clock : now] = seg
            car.delivered += float(seg.sum()) * self.dt
        self.clock = now
        for cid in self.order:
            car = self.cars[cid]
            if not car.gone and car.ev.departure <= now:
                self._depart(car)
            elif not car.gone:
                self._push(car)
        load = self.site_load()
        self.cm.set_peak_floor(max(self.peak_hint, float(load[: self.clock].max()) if self.clock else 0.0))

    def _depart(self, car: _Car) -> None:
        car.gone = True
        self._push(car)
        self.free[car.ev.node].append(car.seat)

    def arrive(self, ev: EV) -> None:
        """A car plugged in and declared its departure and request (EV.arrival is its plug-in slot)."""
        site, issues = validate(replace(self.frame, evs=(ev,)), "best_effort")
        self.issues.extend(issues)
        ev = site.evs[0]
        if ev.id in self.cars:
            self.issues.append(Issue(ev.id, "duplicate_ev", "arrived twice; second arrival ignored"))
            return
        car = _Car(ev, self._take_seat(ev.node), plan=np.zeros(self.T))
        self.cars[ev.id] = car
        self.order.append(ev.id)
        self.realised[ev.id] = np.zeros(self.T)
        self._push(car)

    def change_departure(self, ev_id: str, departure: int) -> None:
        car = self.cars[ev_id]
        car.ev = replace(car.ev, departure=min(max(departure, self.clock), self.T))
        if car.ev.departure <= self.clock:
            self._depart(car)
        else:
            self._push(car)

    def change_request(self, ev_id: str, energy_kwh: float) -> None:
        car = self.cars[ev_id]
        car.ev = replace(car.ev, energy_kwh=max(0.0, energy_kwh))
        self._push(car)

    def meter(self, ev_id: str, delivered_kwh: float) -> None:
        """Meter reading (energy delivered so far) that differs from the plan: trust the meter."""
        car = self.cars[ev_id]
        if abs(delivered_kwh - car.delivered) > EPS:
            # Attribute the difference to the last executed slot so the realised schedule sums right.
            if self.clock > 0:
                last = self.clock - 1
                self.realised[ev_id][last] = max(0.0, self.realised[ev_id][last] + (delivered_kwh - car.delivered) / self.dt)
            car.delivered = max(0.0, delivered_kwh)
        self._push(car)

    def fault(self, node: str, until: int | None = None) -> None:
        """Charger/circuit fault: the node delivers nothing from now until `until` (default: horizon)."""
        end = self.T if until is None else min(until, self.T)
        self.caps[node][self.clock : end] = 0.0
        self.cm.set_node_cap(node, self.caps[node])

    def set_signals(self, price: np.ndarray | None = None, carbon: np.ndarray | None = None) -> None:
        """A new price/carbon forecast (only slots >= now matter)."""
        if price is not None:
            self.price = np.asarray(price, dtype=float)
        if carbon is not None:
            self.carbon = np.asarray(carbon, dtype=float)
        self.cm.set_signals(self.price, self.carbon)

    # ---------------------------------------------------------------- planning
    def replan(self) -> dict[str, np.ndarray]:
        """Re-optimise; returns {ev_id: kW per slot for slots >= now} for every plugged car."""
        t0 = time.perf_counter()
        values, status, _ = self.cm.solve()
        if status != "ok":
            self.issues.append(Issue("planner", "stage_failed", status))
        power = self.cm.power()
        out = {}
        for cid in self.order:
            car = self.cars[cid]
            if car.gone:
                continue
            plan = power[self.cm.seat_index[car.seat]].copy()
            plan[: self.clock] = 0.0
            car.plan = plan
            out[cid] = plan[self.clock :]
        self.replans += 1
        self.solve_seconds += time.perf_counter() - t0
        return out

    def site_load(self) -> np.ndarray:
        return np.sum(list(self.realised.values()), axis=0) if self.realised else np.zeros(self.T)

    def result(self) -> Schedule:
        """Realised schedule of every car seen so far (call after advancing to the horizon)."""
        ids = tuple(self.order)
        power = np.array([self.realised[i] for i in ids]) if ids else np.zeros((0, self.T))
        sched = Schedule(ids, power, self.dt, algorithm="online", issues=list(self.issues),
                         timings={"build": self.build_seconds, "solve": self.solve_seconds,
                                  "replans": self.replans, "rebuilds": self.rebuilds})
        for i, cid in enumerate(ids):
            ev = self.cars[cid].ev
            if power[i].sum() * self.dt < ev.energy_kwh - max(1e-4, 1e-4 * ev.energy_kwh):
                sched.infeasible = True
        return sched


def replay(
    site: Site, config: OptimiserConfig = DEFAULT_ONLINE, seats_per_node: int = 8, peak_hint_kw: float = 0.0
) -> Schedule:
    """Replay `site` online: cars revealed at their arrival slot, one re-plan per arrival slot.

    `peak_hint_kw` is an initial peak floor: a causal estimate of today's peak (e.g. learned from
    previous days). With the ``asap`` tie-breaker the planner then front-loads charging up to that
    level, leaving headroom for cars it cannot see yet. 0 = no hint.
    The result's rows are in the site's EV order so it can be compared with offline schedules.
    """
    planner = OnlinePlanner(site.tree, site.n_slots, site.slot_hours, config, site.price, site.carbon, seats_per_node)
    planner.peak_hint = peak_hint_kw
    planner.cm.set_peak_floor(peak_hint_kw)
    for node, sched in site.cap_schedule.items():
        planner.caps[node] = np.minimum(planner.caps[node], sched)
        planner.cm.set_node_cap(node, planner.caps[node])
    by_slot: dict[int, list[EV]] = {}
    for ev in site.evs:
        by_slot.setdefault(ev.arrival, []).append(ev)
    for t in sorted(by_slot):
        planner.advance(t)
        for ev in by_slot[t]:
            planner.arrive(ev)
        planner.replan()
    planner.advance(site.n_slots)
    res = planner.result()
    idx = {cid: i for i, cid in enumerate(res.ev_ids)}
    res.power = np.array([res.power[idx[e.id]] for e in site.evs]) if site.evs else res.power
    res.ev_ids = tuple(e.id for e in site.evs)
    return res
