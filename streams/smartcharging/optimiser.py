"""Lexicographic smart-charging optimiser: pyomo model, HiGHS through pyomo's persistent interface.

WHY the structure looks like this:

* **Build once, update in place.** Pyomo's model building dominates solve time on small instances
  (a 20-car day solves in milliseconds). So `ChargingModel` creates every variable and constraint
  once and afterwards only changes *variable bounds* and *mutable parameters* -- the cheap updates
  the persistent (appsi) HiGHS interface forwards to the live HiGHS model without re-passing it. The
  online planner (`online.py`) re-plans on every event with the same model.
* **Lexicographic stages as bounds.** Each criterion has one aggregate variable (Etot, P, C, Q, F).
  After a stage is solved its aggregate is *locked* by a bound (e.g. ``Etot >= E* (1 - tol)``) and
  the next objective is activated. Locks are bounds, so a stage costs one warm-started re-solve
  (HiGHS keeps the basis between solves of the persistent model).
* **Sparse.** A car gets power variables only for slots inside its window (for the online seat pool:
  the whole horizon, with bounds closing the slots the car is not there).
* **Never crash.** p = 0 is always feasible; if a later stage fails numerically the previous stage's
  solution is kept and the result's ``status`` says so.

Criteria (``objectives`` order = priority):
``energy`` (maximise kWh delivered, capped per car by its request), ``peak`` (minimise the site's
maximum slot load), ``cost`` (minimise sum price * energy), ``carbon`` (minimise sum intensity *
energy), ``fairness`` (maximise the smallest fraction of request served, max-min fairness) and
``asap`` (maximise early charging: a tie-breaker that front-loads energy, which makes plans robust to
arrivals the planner cannot yet see).

Optional ``integer=True``: binary on/off per car and slot with ``min_kw <= p <= max_kw`` when on (MILP,
default 1 % relative gap).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.solvers import Highs as AppsiHighs

from .model import EPS, EV, Issue, LimitNode, Site, validate
from .schedule import Schedule

__all__ = ["CRITERIA", "OptimiserConfig", "ChargingModel", "Seat", "optimise"]

log = logging.getLogger(__name__)

Criterion = Literal["energy", "peak", "cost", "carbon", "fairness", "asap"]
CRITERIA: tuple[str, ...] = ("energy", "peak", "cost", "carbon", "fairness", "asap")
_SENSE = {"energy": pyo.maximize, "peak": pyo.minimize, "cost": pyo.minimize, "carbon": pyo.minimize,
          "fairness": pyo.maximize, "asap": pyo.maximize}
#: Finite stand-in for "no limit": HiGHS treats >= 1e20 as infinite, pyomo params must be finite numbers.
BIG = 1e9


@dataclass(frozen=True)
class OptimiserConfig:
    """How to optimise. `rel_tol`/`abs_tol` is the slack a later stage may take from an earlier one:
    without it, floating-point noise in the locked value makes the next stage infeasible."""

    objectives: tuple[str, ...] = ("energy", "peak", "cost")
    integer: bool = False
    mip_gap: float = 0.01
    rel_tol: float = 1e-6
    abs_tol: float = 1e-6
    time_limit: float | None = None
    threads: int | None = None
    #: HiGHS options per stage. Measured on the 500-EV depot: dual simplex (HiGHS' default) is
    #: fastest for the energy and peak stages; when only the objective changes (cost, carbon, asap)
    #: the previous optimum is primal feasible, so primal simplex from that basis is ~2x faster.
    stage_options: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = (
        ("cost", (("simplex_strategy", 4),)),
        ("carbon", (("simplex_strategy", 4),)),
        ("asap", (("simplex_strategy", 4),)),
    )

    def __post_init__(self) -> None:
        bad = [o for o in self.objectives if o not in CRITERIA]
        if bad or not self.objectives:
            raise ValueError(f"unknown objectives {bad}; choose from {CRITERIA}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("an objective may appear only once")


@dataclass(frozen=True)
class Seat:
    """A column block of the model: one car position attached to a tree node over slots [lo, hi)."""

    key: str
    node: str
    lo: int
    hi: int


@dataclass
class _StageResult:
    ok: bool
    value: float
    status: str


class ChargingModel:
    """A pyomo model of one site over a horizon, built once, re-solved many times.

    Typical use: ``cm = ChargingModel(tree, n_slots, dt, seats, config)``; then per plan call
    `set_seat` for every seat (bounds and request), `set_signals`/`set_node_cap` as needed, then `solve`.
    """

    def __init__(
        self,
        tree: LimitNode,
        n_slots: int,
        slot_hours: float,
        seats: Sequence[Seat],
        config: OptimiserConfig = OptimiserConfig(),
    ) -> None:
        t0 = time.perf_counter()
        self.tree, self.T, self.dt, self.config = tree, n_slots, slot_hours, config
        self.seats = list(seats)
        self.seat_index = {s.key: k for k, s in enumerate(self.seats)}
        anc = tree.ancestors()
        self.root = tree.id
        T, dt = n_slots, slot_hours
        m = pyo.ConcreteModel()
        pairs = [(k, t) for k, s in enumerate(self.seats) for t in range(max(0, s.lo), min(T, s.hi))]
        m.SP = pyo.Set(initialize=pairs, dimen=2, ordered=True)
        m.K = pyo.RangeSet(0, len(self.seats) - 1) if self.seats else pyo.Set(initialize=[])
        m.TT = pyo.RangeSet(0, T - 1)
        m.p = pyo.Var(m.SP, bounds=(0, 0))
        m.e = pyo.Var(m.K, bounds=(0, 0))
        m.L = pyo.Var(m.TT, bounds=(0, BIG))
        by_seat: dict[int, list[int]] = {}
        by_slot: dict[int, list[int]] = {t: [] for t in range(T)}
        for k, t in pairs:
            by_seat.setdefault(k, []).append(t)
            by_slot[t].append(k)
        self._by_seat = by_seat
        m.energy_def = pyo.Constraint(m.K, rule=lambda m, k: m.e[k] == dt * sum(m.p[k, t] for t in by_seat.get(k, ())))
        m.load_def = pyo.Constraint(m.TT, rule=lambda m, t: m.L[t] == sum(m.p[k, t] for k in by_slot[t]))
        # Limit tree: every non-root node with seats under it; the root's cap is the bound of L[t].
        under: dict[str, list[int]] = {}
        for k, s in enumerate(self.seats):
            for a in anc[s.node]:
                if a != self.root:
                    under.setdefault(a, []).append(k)
        node_t = []
        for node, ks in under.items():
            kset = set(ks)
            for t in range(T):
                if any(k in kset for k in by_slot[t]):
                    node_t.append((node, t))
        self._under = {n: set(ks) for n, ks in under.items()}
        m.NT = pyo.Set(initialize=node_t, dimen=2, ordered=True)
        m.cap = pyo.Param(m.NT, mutable=True, initialize=BIG)
        m.node_limit = pyo.Constraint(
            m.NT, rule=lambda m, n, t: sum(m.p[k, t] for k in by_slot[t] if k in self._under[n]) <= m.cap[n, t]
        )
        # Aggregates used as objectives and locked between stages.
        m.Etot = pyo.Var(bounds=(0, None))
        m.Etot_def = pyo.Constraint(expr=m.Etot == sum(m.e[k] for k in m.K))
        m.P = pyo.Var(bounds=(0, None))
        m.peak_def = pyo.Constraint(m.TT, rule=lambda m, t: m.L[t] <= m.P)
        m.price = pyo.Param(m.TT, mutable=True, initialize=0.0)
        m.intensity = pyo.Param(m.TT, mutable=True, initialize=0.0)
        m.C = pyo.Var()
        m.C_def = pyo.Constraint(expr=m.C == sum(m.price[t] * dt * m.L[t] for t in m.TT))
        m.Q = pyo.Var()
        m.Q_def = pyo.Constraint(expr=m.Q == sum(m.intensity[t] * dt * m.L[t] for t in m.TT) / 1000.0)
        m.F = pyo.Var(bounds=(0, 1))
        m.req = pyo.Param(m.K, mutable=True, initialize=0.0)
        m.fair_def = pyo.Constraint(m.K, rule=lambda m, k: m.F * m.req[k] <= m.e[k])
        # asap: weight decreasing over time; normalised so the objective is in kWh-like units.
        m.obj_energy = pyo.Objective(expr=m.Etot, sense=pyo.maximize)
        m.obj_peak = pyo.Objective(expr=m.P, sense=pyo.minimize)
        m.obj_cost = pyo.Objective(expr=m.C, sense=pyo.minimize)
        m.obj_carbon = pyo.Objective(expr=m.Q, sense=pyo.minimize)
        m.obj_fairness = pyo.Objective(expr=m.F, sense=pyo.maximize)
        m.obj_asap = pyo.Objective(expr=sum((T - t) / T * dt * m.L[t] for t in m.TT), sense=pyo.maximize)
        for c in CRITERIA:
            getattr(m, f"obj_{c}").deactivate()
        if config.integer:
            m.on = pyo.Var(m.SP, domain=pyo.Binary)
            m.pmin = pyo.Param(m.K, mutable=True, initialize=0.0)
            m.pmax = pyo.Param(m.K, mutable=True, initialize=0.0)
            m.on_lo = pyo.Constraint(m.SP, rule=lambda m, k, t: m.p[k, t] >= m.pmin[k] * m.on[k, t])
            m.on_hi = pyo.Constraint(m.SP, rule=lambda m, k, t: m.p[k, t] <= m.pmax[k] * m.on[k, t])
        self.m = m
        self._ub = np.full((len(self.seats), T), -1.0)  # last bound pushed to each p (avoid redundant setub)
        self._solver = AppsiHighs()
        self._solver.config.load_solution = False
        self._solver.config.stream_solver = False
        if config.time_limit is not None:
            self._solver.config.time_limit = config.time_limit
        if config.integer:
            self._solver.config.mip_gap = config.mip_gap
            self._solver.config.warmstart = True
        self._base_options: dict[str, object] = {}
        if config.threads is not None:
            self._base_options["threads"] = config.threads
        self._solver.set_instance(m)
        # HiGHS prints coefficient warnings outside appsi's output capture; silence at the source.
        self._solver._solver_model.setOptionValue("output_flag", False)
        uc = self._solver.update_config
        # Only bounds, params and the active objective ever change after construction.
        uc.check_for_new_or_removed_constraints = False
        uc.check_for_new_or_removed_vars = False
        uc.check_for_new_or_removed_params = False
        uc.update_constraints = False
        uc.update_named_expressions = False
        uc.update_vars = True
        uc.update_params = True
        uc.check_for_new_objective = True
        uc.update_objective = True
        self.build_seconds = time.perf_counter() - t0
        self.solves = 0

    # ---------------------------------------------------------------- updates
    def set_seat(self, key: str, ub_kw: np.ndarray, request_kwh: float, min_kw: float = 0.0) -> None:
        """Give a seat its per-slot power bound (0 closes a slot) and its energy request.

        Only changed bounds are pushed: HiGHS then re-solves from the previous basis.
        """
        k = self.seat_index[key]
        m = self.m
        ub_kw = np.maximum(np.asarray(ub_kw, dtype=float), 0.0)
        old = self._ub[k]
        for t in self._by_seat.get(k, ()):
            if old[t] != ub_kw[t]:
                m.p[k, t].setub(float(ub_kw[t]))
                old[t] = ub_kw[t]
        req = max(0.0, float(request_kwh))
        m.e[k].setub(req)
        if pyo.value(m.req[k]) != req:
            m.req[k] = req
        if self.config.integer:
            pmax = float(np.max(ub_kw)) if ub_kw.size else 0.0
            m.pmin[k] = min(max(0.0, min_kw), pmax)
            m.pmax[k] = pmax

    def set_node_cap(self, node: str, cap_kw: np.ndarray) -> None:
        """Per-slot cap for a node (e.g. 0 from a charger fault on)."""
        m = self.m
        cap = np.minimum(np.asarray(cap_kw, dtype=float), BIG)
        if node == self.root:
            for t in range(self.T):
                m.L[t].setub(float(max(cap[t], 0.0)))
            return
        for t in range(self.T):
            if (node, t) in m.cap:
                m.cap[node, t] = float(max(cap[t], 0.0))

    def set_signals(self, price: np.ndarray | None, carbon: np.ndarray | None) -> None:
        m = self.m
        for t in range(self.T):
            pr = float(price[t]) if price is not None else 0.0
            ci = float(carbon[t]) if carbon is not None else 0.0
            if pyo.value(m.price[t]) != pr:
                m.price[t] = pr
            if pyo.value(m.intensity[t]) != ci:
                m.intensity[t] = ci

    def set_peak_floor(self, floor_kw: float) -> None:
        """Peak already reached (online: in slots already executed). Charging up to it costs no peak."""
        self.m.P.setlb(max(0.0, float(floor_kw)))

    # ---------------------------------------------------------------- solving
    def _reset_locks(self) -> None:
        m = self.m
        m.Etot.setlb(0.0)
        m.P.setub(None)
        m.C.setub(None)
        m.Q.setub(None)
        m.F.setlb(0.0)

    def _lock(self, crit: str, v: float) -> None:
        m, c = self.m, self.config
        slack = c.rel_tol * abs(v) + c.abs_tol
        if crit == "energy":
            m.Etot.setlb(max(0.0, v - slack))
        elif crit == "peak":
            m.P.setub(max(v + slack, pyo.value(m.P.lb) or 0.0))
        elif crit == "cost":
            m.C.setub(v + slack)
        elif crit == "carbon":
            m.Q.setub(v + slack)
        elif crit == "fairness":
            m.F.setlb(min(1.0, max(0.0, v - slack)))

    def _solve_stage(self, crit: str) -> _StageResult:
        m = self.m
        for c in CRITERIA:
            obj = getattr(m, f"obj_{c}")
            if c == crit:
                obj.activate()
            else:
                obj.deactivate()
        opts = dict(self._base_options)
        opts.update(dict(dict(self.config.stage_options).get(crit, ())))
        if not opts.get("simplex_strategy"):
            opts["simplex_strategy"] = 1
        self._solver.highs_options = opts
        try:
            res = self._solver.solve(m)
        except Exception as exc:  # noqa: BLE001 - a solver failure must become a flagged result
            log.warning("HiGHS failed in stage %s: %s", crit, exc)
            return _StageResult(False, math.nan, f"error:{exc}")
        self.solves += 1
        tc = str(res.termination_condition)
        ok = res.best_feasible_objective is not None and ("optimal" in tc or "maxTimeLimit" in tc or "Limit" in tc)
        if not ok:
            return _StageResult(False, math.nan, tc)
        res.solution_loader.load_vars()
        # Lock on the value of the aggregate actually achieved by the loaded (feasible) solution; for
        # a MILP at 1 % gap this is the incumbent, not the bound, so the next stage stays feasible.
        agg = {"energy": m.Etot, "peak": m.P, "cost": m.C, "carbon": m.Q, "fairness": m.F}
        v = pyo.value(agg[crit]) if crit in agg else float(res.best_feasible_objective)
        return _StageResult(True, float(v), tc)

    def solve(self, objectives: Sequence[str] | None = None) -> tuple[dict[str, float], str, float]:
        """Run the lexicographic stages. Returns (stage values, status, solve seconds)."""
        t0 = time.perf_counter()
        objectives = tuple(objectives or self.config.objectives)
        self._reset_locks()
        values: dict[str, float] = {}
        status = "ok"
        snapshot: list | None = None
        for crit in objectives:
            r = self._solve_stage(crit)
            if not r.ok:
                status = f"stage {crit} failed ({r.status}); kept previous stage"
                if snapshot is not None:
                    for v, val in zip(self.m.p.values(), snapshot):
                        v.set_value(val, skip_validation=True)
                else:
                    for v in self.m.p.values():
                        v.set_value(0.0, skip_validation=True)
                break
            values[crit] = r.value
            self._lock(crit, r.value)
            snapshot = [v.value for v in self.m.p.values()]
        self._reset_locks()
        return values, status, time.perf_counter() - t0

    def power(self) -> np.ndarray:
        """Seats x slots kW from the last loaded solution (values below 1e-9 are noise -> 0)."""
        out = np.zeros((len(self.seats), self.T))
        for (k, t), v in self.m.p.items():
            val = v.value
            if val is not None and val > 1e-9:
                out[k, t] = val
        return out


def _ev_bounds(site: Site, ev: EV) -> np.ndarray:
    ub = np.zeros(site.n_slots)
    ub[ev.arrival : ev.departure] = ev.max_kw
    return ub


def optimise(site: Site, config: OptimiserConfig = OptimiserConfig(), strict: bool = False) -> Schedule:
    """Offline optimum: every car's arrival, departure and request known in advance.

    Input is validated first; with ``strict=False`` impossible requests are repaired and flagged
    (see `model.validate`) and the result's ``infeasible`` is True if any request cannot be met.
    """
    site, issues = validate(site, "strict" if strict else "best_effort")
    seats = [Seat(ev.id, ev.node, ev.arrival, ev.departure) for ev in site.evs]
    cm = ChargingModel(site.tree, site.n_slots, site.slot_hours, seats, config)
    for ev in site.evs:
        cm.set_seat(ev.id, _ev_bounds(site, ev), ev.energy_kwh, ev.min_kw)
    for node, cap in site.node_caps().items():
        cm.set_node_cap(node, cap)
    cm.set_signals(site.price, site.carbon)
    _check_signals(config.objectives, site, issues)
    values, status, solve_s = cm.solve()
    power = cm.power()
    sched = Schedule(tuple(ev.id for ev in site.evs), power, site.slot_hours, algorithm="lp" if not config.integer else "milp",
                     status=status, issues=list(issues), stages=values,
                     timings={"build": cm.build_seconds, "solve": solve_s})
    _flag_unmet(site.evs, sched)
    return sched


def _check_signals(objectives: Iterable[str], site: Site, issues: list[Issue]) -> None:
    if "cost" in objectives and site.price is None:
        issues.append(Issue("site", "no_price", "cost objective requested but no price signal; treated as 0"))
    if "carbon" in objectives and site.carbon is None:
        issues.append(Issue("site", "no_carbon", "carbon objective requested but no carbon signal; treated as 0"))


def _flag_unmet(evs: Sequence[EV], sched: Schedule) -> None:
    got = sched.delivered_kwh()
    for ev, g in zip(evs, got):
        if g < ev.energy_kwh - max(1e-4, 1e-4 * ev.energy_kwh):
            sched.infeasible = True
            sched.issues.append(Issue(ev.id, "unmet_demand", f"delivered {g:.3f} of {ev.energy_kwh:.3f} kWh"))
    if any(i.code != "unmet_demand" for i in sched.issues):
        sched.infeasible = True



