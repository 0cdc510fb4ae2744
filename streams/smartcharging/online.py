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

The default policy (`ONLINE_POLICY`), stage by stage at every re-plan:

1. ``energy`` -- maximise the energy the plugged cars get by their departures (demand first, always).
2. ``reserve`` -- maximise the energy planned for the *reserve*: pseudo-cars standing for the arrivals
   still expected today (`reserve.expected_arrivals`, an average of comparable previous days -- never
   the future of the day being planned), scaled by how busy today has been so far (adaptive scale,
   below). Reserve seats never take energy from a real car (stage 1 is locked first).
3. ``peak`` -- minimise the *increase* of the day's peak: the peak variable's lower bound is the peak
   budget, the running maximum of the load already executed (and of `peak_hint`, e.g. a fixed grid
   connection that costs nothing below it). A peak once incurred is sunk, so load up to it is free;
   the budget never decreases. The reserve makes this budget include the load still to come.
4. ``asap`` -- among plans with that peak, charge the real cars as early as possible (the reserve's
   share moves late), so that energy still owed is small when the unexpected happens.
5. ``urgency`` -- among equally early plans, serve the cars with the least laxity now (weight
   ``1 / (1 + laxity h)``, laxity = time left minus time still needed at full power): what is left
   is then owed by the most flexible cars, which is what lets the online plan beat LLF/EDF at a
   tight site limit.

Adaptive scale: ``(energy arrived so far today + s0) / (reserve energy expected to have arrived by now
+ s0)`` with ``s0`` half the day's expected total, clipped to [0.5, 2.5]; the remaining reserve
(pseudo-cars not yet due) is multiplied by it. Reserve pseudo-cars whose arrival slot has passed are
dropped (the real cars that came instead are known).

Reserve only while the peak is open (`connection_paid`): the reserve exists to make the *peak* stage
budget for cars not seen yet. Once the peak already paid for (`peak_hint`, e.g. a fixed grid connection,
or the realised peak) reaches the root limit in every open slot, no plan can change the peak, and the
reserve's coarse pseudo-cars (one per hour-of-arrival x hour-of-departure group, averaged over days)
would only steer *which real car* gets the scarce capacity -- measured on the six busiest ACN days at a
30 kW limit that cost energy (82.726 % with the reserve vs 82.802 % without, = LLF's). So at a paid-up
connection the reserve seats are closed and the ``reserve`` stage is skipped; the plan is then:
maximise the plugged cars' energy, front-load it (``asap``) and hand the scarce early capacity to the
least-laxity cars (``urgency``), which leaves what is still owed with the most flexible cars.

Sticky budget (`sticky_budget`, OFF by default, an experiment): the peak level a re-plan budgets for
(the ``peak`` stage value, reserve included) is kept as a peak floor for the rest of the day, even when
a later re-plan's forecast is lower. WHY: on 2021-09-10 the adaptive scale peaks at 08:00-08:15 (an
early rush: plan 46.3 kW, about the offline optimum), then the big 08:30 reserve group falls due and the
scale drops, the plan falls to 39.6 kW and the afternoon rush later forces 53.9 kW. Keeping the 08:15
budget front-loads the morning cars. Its effect depends on the scale cap: with ``reserve_params`` hi
2.5 (default) 2021-09-13 overshoots to 57.8 kW; measured over all 136 ACN days, hi 1.55 gives max daily
peak 51.4 kW, but hi 1.5 / 1.6 give 53.7 / 52.7 kW on the two busiest days -- a value tuned on the
evaluation days, so not the default.

LLF guard at a paid-up connection (`llf_guard`, on by default): the LP's static laxity weights pick one
of many max-energy plans, and over the 136 ACN days at a 25 kW limit that pick lost 0.021 points of
energy to plain LLF (95.310 % vs 95.331 %). LLF re-ranks by laxity every slot. So after the LP the
planner simulates LLF over the plugged cars from now on (no arrivals assumed: causal) and executes
LLF's plan whenever it delivers at least the LP's optimum energy to the plugged cars; only when the LP
finds strictly more (LLF's greedy order would strand energy) does the LP plan run. Measured with the
guard (ACN, all days): 25 kW 95.331 % (= LLF), 30 kW 97.561 (LLF 97.558), 35.9 kW 99.009 (= LLF),
39 kW 99.470 (LLF 99.470), 45 kW 99.942 (LLF 99.940). While the peak is open the guard is off: the
LP's peak stage is what matters then.

Virtual connection (how the bench runs a site without a limit, `bench/smart_charging.py --online-budget
connection`, the default there): the peak floor (`peak_hint`) is 0.6 x the highest *uncontrolled* daily peak of
any earlier day (`reserve.history_peak_floor`; a closed day's uncontrolled peak is known), and no reserve. The
planner then treats the site as if it had a connection of that size: load below it is free, so ``asap``
front-loads up to it and a rush finds little energy still owed; the peak rises above it only when the plugged
cars cannot otherwise be served. WHY 0.6: it is the issue's target (-40 % vs uncontrolled) turned into a
connection size, fixed before any replay, not fitted. WHY no reserve: the reserve's adaptive scale is what sets
the max on the record days (2021-09-13: an early rush drives the scale to 1.8, the budget to 57.8 kW, and
``asap`` front-loads the real cars up to it; with the reserve no floor <= 52 kW keeps that day under 53.8 kW --
`bench/smart_charging.py --floor-study`). ACN, 136 days, no limit (full bench run, 2026-11-27): max daily peak
47.52 kW (offline 47.48), mean 24.05 kW (20.8 with the reserve: light days are front-loaded up to the
connection), cost +1.7 % vs the offline LP, 100 % energy. Caveats, measured by the floor study and stated wherever
the figure is quoted: that 0.6 x 79.2 kW (the highest uncontrolled peak of the days before 2021-09-08) lands within 0.1 % of the
last day's offline optimum is luck -- the fractions that keep the four record days within 3 % of the offline
peak are 0.595-0.617, those within -40 % 0.577-0.657 -- and nothing bounds a day whose demand outgrows every
earlier day: 2021-09-13 set a new uncontrolled record (86.8 vs 79.2 kW) and its optimum still fit under 47.52.

Invariants:

* Causality: a re-plan at slot t sees only cars with arrival <= t (`arrive` is the only way a car
  enters), their declared departure/request, meter readings and signals published so far, and the
  reserve built from previous days. What is executed in slots < t+1 therefore cannot change when
  sessions arriving after t change (tests/unit/smartcharging/test_online_causality.py).
* A real car's energy is maximised before anything else; the reserve never displaces it.
* Limits: every plan respects every node cap (the model's constraints), so the realised schedule does.
* The peak floor never decreases during a day.
* At a paid-up connection the executed plan delivers, to the cars plugged in at each re-plan, at least
  what LLF would from that state (the guard picks the better of the two; both respect every limit).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np

from .llf_guard import llf_plan
from .model import EPS, EV, Issue, LimitNode, Site, validate
from .optimiser import ChargingModel, OptimiserConfig, Seat
from .schedule import Schedule

__all__ = ["OnlinePlanner", "replay", "ONLINE_POLICY", "ONLINE_POLICY_DEFER", "DEFAULT_ONLINE", "adaptive_scale"]

#: The documented online policy (module docstring). `DEFAULT_ONLINE` is kept as its alias.
ONLINE_POLICY = OptimiserConfig(objectives=("energy", "reserve", "peak", "asap", "urgency"))
#: The policy with the ``defer`` stage (raise the peak above the sunk peak as late as possible); on the
#: six busiest ACN days it made no difference to the realised peaks, so it is not the default.
ONLINE_POLICY_DEFER = OptimiserConfig(objectives=("energy", "reserve", "peak", "defer", "asap", "urgency"))
DEFAULT_ONLINE = ONLINE_POLICY

ReserveScale = Literal["adaptive"] | float


def adaptive_scale(
    seen_kwh: float, expected_by_now_kwh: float, expected_total_kwh: float,
    prior: float = 0.25, lo: float = 0.25, hi: float = 4.0,
) -> float:
    """How much busier than the history today is so far (1 = as expected); see module docstring.

    `prior` (fraction of the expected day total added to both sides) damps the early-morning ratio,
    when a handful of cars would otherwise swing it wildly.
    """
    s0 = prior * max(expected_total_kwh, 0.0)
    if s0 <= 0:
        return 1.0
    return float(min(hi, max(lo, (max(seen_kwh, 0.0) + s0) / (max(expected_by_now_kwh, 0.0) + s0))))


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
        reserve: Sequence[EV] = (),
        reserve_scale: ReserveScale = "adaptive",
        llf_guard: bool = True,
        reserve_params: tuple[float, float, float] = (0.5, 0.5, 2.5),
        sticky_budget: bool = False,
    ) -> None:
        self.tree, self.T, self.dt, self.config = tree, n_slots, slot_hours, config
        nodes_ = {n.id for n in tree.walk()}
        #: Expected arrivals (pseudo-EVs); attached to their node if it exists, else to the root.
        self.reserve: tuple[EV, ...] = tuple(
            replace(r, node=r.node if r.node in nodes_ else tree.id,
                    arrival=min(max(r.arrival, 0), n_slots), departure=min(max(r.departure, 0), n_slots))
            for r in reserve if r.energy_kwh > 0 and r.max_kw > 0 and r.departure > r.arrival
        )
        self.reserve_scale = reserve_scale
        #: At a paid-up connection, use LLF's plan when it serves the plugged cars as well as the LP's.
        self.llf_guard = llf_guard
        #: Re-plans that used the LLF plan.
        self.llf_plans = 0
        self.scale = 1.0
        #: (prior, lo, hi) of `adaptive_scale`.
        self.reserve_params: tuple[float, float, float] = reserve_params
        #: Keep the highest peak any re-plan budgeted for (with the reserve) as a peak floor (module docstring).
        self.sticky_budget = sticky_budget
        # Bad limits (negative/NaN caps) are flagged and treated as 0, like the offline optimiser does.
        self.frame, frame_issues = validate(Site((), tree, n_slots, slot_hours, price=price, carbon=carbon), "best_effort")
        tree = self.tree = self.frame.tree
        self.price, self.carbon = price, carbon
        self.caps = {k: v.copy() for k, v in self.frame.node_caps().items()}
        self.clock = 0
        self.cars: dict[str, _Car] = {}
        self.order: list[str] = []
        self.realised: dict[str, np.ndarray] = {}
        self.issues: list[Issue] = list(frame_issues)
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
        seats += [Seat(f"~{r.id}", r.node, r.arrival, r.departure, reserve=True) for r in self.reserve]
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
        self._push_reserve()

    def peak_floor(self) -> float:
        """The peak already paid for: `peak_hint` and the highest load executed so far."""
        load = self.site_load()
        return max(self.peak_hint, float(load[: self.clock].max()) if self.clock else 0.0)

    def connection_paid(self) -> bool:
        """True when the peak already paid for covers the root limit in every slot still open.

        Then no plan can raise the peak, so the reserve has nothing to budget (see module docstring).
        """
        cap = self.caps[self.tree.id][self.clock :]
        return cap.size == 0 or bool(np.all(cap <= self.peak_floor() + EPS))

    def _push_reserve(self) -> bool:
        """Reserve pseudo-cars still due (arrival after now), scaled; the others closed.

        Returns whether the reserve takes part in this re-plan (False: no reserve, or the connection is
        paid for and the reserve seats are all closed).
        """
        if not self.reserve:
            return False
        if self.connection_paid():
            self.scale = 0.0
            for r in self.reserve:
                self.cm.set_seat(f"~{r.id}", np.zeros(self.T), 0.0)
            return False
        if self.reserve_scale == "adaptive":
            seen = sum(c.ev.energy_kwh for c in self.cars.values())
            total = sum(r.energy_kwh for r in self.reserve)
            by_now = sum(r.energy_kwh for r in self.reserve if r.arrival <= self.clock)
            self.scale = adaptive_scale(seen, by_now, total, *self.reserve_params)
        else:
            self.scale = max(0.0, float(self.reserve_scale))
        for r in self.reserve:
            ub = np.zeros(self.T)
            due = r.arrival > self.clock
            if due:
                ub[r.arrival : r.departure] = r.max_kw * self.scale
            self.cm.set_seat(f"~{r.id}", ub, r.energy_kwh * self.scale if due else 0.0)
        return True

    def _push_weights(self) -> None:
        """Urgency weights of the plugged cars: 1 / (1 + laxity in hours)."""
        if "urgency" not in self.config.objectives:
            return
        for car in self.cars.values():
            if car.gone:
                continue
            left = max(0.0, car.ev.energy_kwh - car.delivered)
            rate = car.ev.max_kw if car.ev.max_kw > EPS else EPS
            lax = max(0.0, (car.ev.departure - self.clock) * self.dt - left / rate)
            self.cm.set_weight(car.seat, 1.0 / (1.0 + lax))

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
        active = self._push_reserve()
        self._push_weights()
        objectives = tuple(o for o in self.config.objectives if active or o != "reserve")
        values, status, _ = self.cm.solve(objectives)
        if status != "ok":
            self.issues.append(Issue("planner", "stage_failed", status))
        if self.sticky_budget and active and math.isfinite(values.get("peak", math.nan)):
            # Takes effect from the next `advance` on (the floor of this plan is already set).
            self.peak_hint = max(self.peak_hint, float(values["peak"]))
        power = self.cm.power()
        guard = self._llf_guard(values.get("energy")) if self.llf_guard and self.connection_paid() else None
        out = {}
        for cid in self.order:
            car = self.cars[cid]
            if car.gone:
                continue
            plan = guard[cid] if guard is not None else power[self.cm.seat_index[car.seat]].copy()
            plan[: self.clock] = 0.0
            car.plan = plan
            out[cid] = plan[self.clock :]
        self.replans += 1
        self.solve_seconds += time.perf_counter() - t0
        return out

    def _llf_guard(self, lp_energy: float | None) -> dict[str, np.ndarray] | None:
        """LLF's plan for the plugged cars if it delivers as much as the LP optimum, else None (module docstring)."""
        live = [cid for cid in self.order if not self.cars[cid].gone]
        cars = [(self.cars[c].ev, max(0.0, self.cars[c].ev.energy_kwh - self.cars[c].delivered)) for c in live]
        plan = llf_plan(self.tree, self.caps, cars, self.clock, self.T, self.dt)
        got = float(plan.sum()) * self.dt
        if lp_energy is None or not math.isfinite(lp_energy) or got < lp_energy - max(1e-4, 1e-6 * lp_energy):
            return None
        self.llf_plans += 1
        return {cid: plan[i] for i, cid in enumerate(live)}

    def site_load(self) -> np.ndarray:
        return np.sum(list(self.realised.values()), axis=0) if self.realised else np.zeros(self.T)

    def result(self) -> Schedule:
        """Realised schedule of every car seen so far (call after advancing to the horizon)."""
        ids = tuple(self.order)
        power = np.array([self.realised[i] for i in ids]) if ids else np.zeros((0, self.T))
        sched = Schedule(ids, power, self.dt, algorithm="online", issues=list(self.issues),
                         timings={"build": self.build_seconds, "solve": self.solve_seconds,
                                  "replans": self.replans, "rebuilds": self.rebuilds,
                                  "llf_plans": self.llf_plans})
        for i, cid in enumerate(ids):
            ev = self.cars[cid].ev
            if power[i].sum() * self.dt < ev.energy_kwh - max(1e-4, 1e-4 * ev.energy_kwh):
                sched.infeasible = True
        if self.issues:  # a repaired (impossible) request or limit, or a failed stage: best effort, flagged
            sched.infeasible = True
        return sched


def replay(
    site: Site,
    config: OptimiserConfig = DEFAULT_ONLINE,
    seats_per_node: int = 8,
    peak_hint_kw: float = 0.0,
    reserve: Sequence[EV] = (),
    reserve_scale: ReserveScale = "adaptive",
    llf_guard: bool = True,
    reserve_params: tuple[float, float, float] = (0.5, 0.5, 2.5),
    sticky_budget: bool = False,
) -> Schedule:
    """Replay `site` online: cars revealed at their arrival slot, one re-plan per arrival slot.

    `peak_hint_kw` is an initial peak floor: a causal estimate of today's peak (e.g. learned from
    previous days). With the ``asap`` tie-breaker the planner then front-loads charging up to that
    level, leaving headroom for cars it cannot see yet. 0 = no hint.
    `reserve` are the expected arrivals (`reserve.expected_arrivals` of previous days), empty = none.
    `llf_guard`: at a paid-up connection use LLF's plan when it serves the plugged cars as well as the LP
    (see `OnlinePlanner` and `llf_guard`); False = always the LP's plan.
    `reserve_params` = (prior, lo, hi) of `adaptive_scale`; `sticky_budget` see `OnlinePlanner` (off by default).
    The result's rows are in the site's EV order so it can be compared with offline schedules.
    """
    planner = OnlinePlanner(site.tree, site.n_slots, site.slot_hours, config, site.price, site.carbon, seats_per_node,
                            reserve=reserve, reserve_scale=reserve_scale, llf_guard=llf_guard,
                            reserve_params=reserve_params, sticky_budget=sticky_budget)
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
