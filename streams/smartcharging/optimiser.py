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
arrivals the planner cannot yet see), ``reserve`` (online only: maximise the energy planned for the
*reserve seats* -- expected future arrivals, see `online.py` -- so that the peak stage budgets for
them), ``defer`` (online: raise the peak above the peak already paid for as *late* as the plan allows
-- minimise the time-weighted load above the peak floor, earliest slots weighted most -- so that the
day's peak rises only when the arrivals that need it have actually come) and ``urgency`` (online tie-breaker after ``asap``: among equally early plans, prefer serving the
cars with the least laxity now; per-seat weights are mutable parameters set by the planner).

Only *car* seats count in ``energy``, ``fairness``, ``asap`` and ``urgency``; reserve seats load the
limit tree and therefore the peak, cost and carbon like real cars (they are what the planner expects
to have to serve) but never displace a real car's energy (``energy`` comes before ``reserve``).

Optional ``integer=True``: binary on/off per car and slot with ``min_kw <= p <= max_kw`` when on (MILP,
default 1 % relative gap). Binaries exist only where needed: for seats whose minimum is known to be 0
(`Seat.min_kw`) there is none. Optional strategy ``lp_guided`` (`OptimiserConfig.milp_strategy`; not
the default: on the 500-EV depot its restricted peak stage was not faster than the full MILP in our
loaded measurements):

1. solve every stage on the LP relaxation (binaries relaxed to [0, 1] in place -- the persistent
   model is not rebuilt);
2. fix the on/off decision wherever the LP already respects the minimum (p = 0 or p >= min_kw) for
   cars whose LP schedule has no slot strictly between 0 and min_kw; only the cars with such a
   fractional slot keep free binaries (on the 500-EV depot: ~140 of 500 cars);
3. solve the stages as a MILP over that neighbourhood (a restriction: always feasible, because the
   LP schedule with its fractional slots switched off satisfies it; that schedule, with every other
   variable completed from it, is passed as the MIP start), then un-fix everything. If the rounded
   schedule's energy is already within the MIP gap of the LP bound, the energy stage is not re-solved
   (it is locked at the rounded value: certified by the bound).

The LP values are kept as bounds (`ChargingModel.lp_values`): the energy stage's LP value is a true upper
bound for the MILP, so its gap is reported honestly; ``full`` (default) solves the unrestricted MILP
(~50 s on the 500-EV depot on a loaded machine).
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

Criterion = Literal["energy", "peak", "cost", "carbon", "fairness", "asap", "reserve", "urgency", "defer"]
CRITERIA: tuple[str, ...] = ("energy", "peak", "cost", "carbon", "fairness", "asap", "reserve", "urgency", "defer")
_SENSE = {"energy": pyo.maximize, "peak": pyo.minimize, "cost": pyo.minimize, "carbon": pyo.minimize,
          "fairness": pyo.maximize, "asap": pyo.maximize, "reserve": pyo.maximize, "urgency": pyo.maximize,
          "defer": pyo.minimize}
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
    #: ``lp_guided`` (relax, fix what the LP already decides, MILP over the rest) or ``full``.
    milp_strategy: Literal["lp_guided", "full"] = "full"
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
    #: A reserve seat stands for expected (not yet seen) arrivals: it loads the tree but its energy is
    #: not "energy delivered" (see the module docstring).
    reserve: bool = False
    #: Known minimum/maximum power when on (MILP only). None = set per plan through `set_seat`
    #: (mutable parameter, online seats). A known 0 minimum means no binaries for the seat.
    min_kw: float | None = None
    max_kw: float | None = None


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
        cars = [k for k, s in enumerate(self.seats) if not s.reserve]
        held = [k for k, s in enumerate(self.seats) if s.reserve]
        self._car_seats = cars
        self._has_reserve = bool(held)
        m.Etot = pyo.Var(bounds=(0, None))
        m.Etot_def = pyo.Constraint(expr=m.Etot == sum(m.e[k] for k in cars))
        m.R = pyo.Var(bounds=(0, None))
        m.R_def = pyo.Constraint(expr=m.R == sum(m.e[k] for k in held))
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
        m.fair_def = pyo.Constraint(cars, rule=lambda m, k: m.F * m.req[k] <= m.e[k])
        # asap: weight decreasing over time; normalised so the objective is in kWh-like units. An
        # aggregate variable (A) so the stage can be locked for the urgency tie-break after it. Over the
        # site load when there are no reserve seats (T terms instead of seats x T).
        m.A = pyo.Var()
        if held:
            car_set = set(cars)
            m.A_def = pyo.Constraint(
                expr=m.A == sum((T - t) / T * dt * m.p[k, t] for (k, t) in pairs if k in car_set))
        else:
            m.A_def = pyo.Constraint(expr=m.A == sum((T - t) / T * dt * m.L[t] for t in m.TT))
        # urgency: same time weights, scaled per car seat by a mutable weight (the planner's laxity
        # ranking). Built only when asked for: it is a dense row over every car (seat, slot).
        m.w = pyo.Param(m.K, mutable=True, initialize=1.0)
        m.U = pyo.Var()
        if "urgency" in config.objectives:
            car_set = set(cars)
            m.U_def = pyo.Constraint(
                expr=m.U == sum(m.w[k] * ((T - t) / T * dt) * m.p[k, t] for (k, t) in pairs if k in car_set))
        else:
            m.U.fix(0.0)
        # defer: X[t] >= L[t] - floor (floor = the peak already paid for, a mutable parameter).
        m.floor = pyo.Param(mutable=True, initialize=0.0)
        m.D = pyo.Var()
        if "defer" in config.objectives:
            m.X = pyo.Var(m.TT, bounds=(0, None))
            m.X_def = pyo.Constraint(m.TT, rule=lambda m, t: m.L[t] - m.X[t] <= m.floor)
            m.D_def = pyo.Constraint(expr=m.D == sum((T - t) / T * dt * m.X[t] for t in m.TT))
        else:
            m.D.fix(0.0)
        m.obj_energy = pyo.Objective(expr=m.Etot, sense=pyo.maximize)
        m.obj_peak = pyo.Objective(expr=m.P, sense=pyo.minimize)
        m.obj_cost = pyo.Objective(expr=m.C, sense=pyo.minimize)
        m.obj_carbon = pyo.Objective(expr=m.Q, sense=pyo.minimize)
        m.obj_fairness = pyo.Objective(expr=m.F, sense=pyo.maximize)
        m.obj_asap = pyo.Objective(expr=m.A, sense=pyo.maximize)
        m.obj_reserve = pyo.Objective(expr=m.R, sense=pyo.maximize)
        m.obj_urgency = pyo.Objective(expr=m.U, sense=pyo.maximize)
        m.obj_defer = pyo.Objective(expr=m.D, sense=pyo.minimize)
        for c in CRITERIA:
            getattr(m, f"obj_{c}").deactivate()
        if config.integer:
            seats_ = self.seats
            on_pairs = [(k, t) for (k, t) in pairs if seats_[k].min_kw is None or seats_[k].min_kw > 0]
            m.SPI = pyo.Set(initialize=on_pairs, dimen=2, ordered=True)
            m.on = pyo.Var(m.SPI, domain=pyo.Binary)
            m.pmin = pyo.Param(m.K, mutable=True, initialize=0.0)
            m.pmax = pyo.Param(m.K, mutable=True, initialize=0.0)

            def lo_coef(k: int) -> object:
                return seats_[k].min_kw if seats_[k].min_kw is not None else m.pmin[k]

            def hi_coef(k: int) -> object:
                return seats_[k].max_kw if seats_[k].max_kw is not None else m.pmax[k]

            m.on_lo = pyo.Constraint(m.SPI, rule=lambda m, k, t: m.p[k, t] >= lo_coef(k) * m.on[k, t])
            m.on_hi = pyo.Constraint(m.SPI, rule=lambda m, k, t: m.p[k, t] <= hi_coef(k) * m.on[k, t])
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
        self._pmin = np.array([s.min_kw or 0.0 for s in self.seats])
        #: Stage values of the LP relaxation from the last `lp_guided` MILP solve (empty otherwise).
        self.lp_values: dict[str, float] = {}
        #: Number of free binaries in the last `lp_guided` MILP neighbourhood.
        self.free_binaries = 0
        #: (stage, seconds) of every stage solved (LP relaxation stages first for ``lp_guided``).
        self.stage_seconds: list[tuple[str, float]] = []

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
            self._pmin[k] = self.seats[k].min_kw if self.seats[k].min_kw is not None else min(max(0.0, min_kw), pmax)

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

    def set_weight(self, key: str, weight: float) -> None:
        """Per-seat weight of the ``urgency`` tie-break (higher = served earlier)."""
        k = self.seat_index[key]
        w = float(weight)
        if pyo.value(self.m.w[k]) != w:
            self.m.w[k] = w

    def set_peak_floor(self, floor_kw: float) -> None:
        """Peak already reached (online: in slots already executed). Charging up to it costs no peak."""
        self.m.P.setlb(max(0.0, float(floor_kw)))
        if pyo.value(self.m.floor) != max(0.0, float(floor_kw)):
            self.m.floor = max(0.0, float(floor_kw))

    # ---------------------------------------------------------------- solving
    def _reset_locks(self) -> None:
        m = self.m
        m.Etot.setlb(0.0)
        m.P.setub(None)
        m.C.setub(None)
        m.Q.setub(None)
        m.F.setlb(0.0)
        m.R.setlb(0.0)
        m.A.setlb(None)
        if not m.D.fixed:
            m.D.setub(None)

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
        elif crit == "reserve":
            m.R.setlb(max(0.0, v - slack))
        elif crit == "asap":
            m.A.setlb(v - slack)
        elif crit == "defer" and not m.D.fixed:
            m.D.setub(v + slack)

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
        agg = {"energy": m.Etot, "peak": m.P, "cost": m.C, "carbon": m.Q, "fairness": m.F, "reserve": m.R,
               "asap": m.A, "urgency": m.U, "defer": m.D}
        v = pyo.value(agg[crit]) if crit in agg else float(res.best_feasible_objective)
        return _StageResult(True, float(v), tc)

    def solve(self, objectives: Sequence[str] | None = None) -> tuple[dict[str, float], str, float]:
        """Run the lexicographic stages. Returns (stage values, status, solve seconds)."""
        t0 = time.perf_counter()
        objectives = tuple(objectives or self.config.objectives)
        for c in ("urgency", "defer"):
            if c in objectives and c not in self.config.objectives:
                raise ValueError(f"the {c} stage must be in OptimiserConfig.objectives when the model is built")
        if self.config.integer and self.config.milp_strategy == "lp_guided" and len(self.m.on):
            values, status = self._solve_guided(objectives)
        else:
            values, status = self._run_stages(objectives)
        return values, status, time.perf_counter() - t0

    def _solve_guided(self, objectives: tuple[str, ...]) -> tuple[dict[str, float], str]:
        """LP relaxation, fix what it decides, MILP over the rest (see module docstring)."""
        m = self.m
        for v in m.on.values():
            v.domain = pyo.UnitInterval
        self.lp_values, lp_status = self._run_stages(objectives)
        ons = list(m.on.items())
        try:
            if lp_status != "ok":
                for _, v in ons:
                    v.domain = pyo.Binary
                return self._run_stages(objectives)
            lo = self._pmin
            frac: set[int] = set()
            vals = {}
            for (k, t), _ in ons:
                pv = m.p[k, t].value or 0.0
                vals[k, t] = pv
                if 1e-6 < pv < lo[k] - 1e-6:
                    frac.add(k)
            free = 0
            for (k, t), v in ons:
                v.domain = pyo.Binary
                if k in frac:
                    free += 1
                    v.set_value(1.0 if vals[k, t] >= lo[k] - 1e-6 else 0.0, skip_validation=True)
                else:
                    v.fix(1.0 if vals[k, t] > 1e-6 else 0.0)
            self.free_binaries = free
            # MIP start: the LP schedule rounded to respect the minimum (`_round_lp`), every other
            # variable completed from it.
            self._round_lp(sorted(frac))
            for (k, t), v in ons:
                if k in frac:
                    v.set_value(1.0 if (m.p[k, t].value or 0.0) > 1e-9 else 0.0, skip_validation=True)
            self._complete_from_p()
            return self._run_stages(objectives, self._certified(objectives))
        finally:
            for _, v in ons:
                if v.fixed:
                    v.unfix()
                v.domain = pyo.Binary

    def _round_lp(self, frac_seats: list[int]) -> None:
        """Round the loaded LP schedule so every on slot respects its seat's minimum, keeping energy.

        Each slot strictly between 0 and the minimum is switched off and its energy moved to the same
        car's other slots: first topping up slots already on, then switching on a new slot at the
        minimum (taking the surplus back from the car's on slots). Every move respects the car's
        bounds, every tree node's cap and the relaxation's peak plus half the MIP gap (so the peak stage
        stays certifiable), cheapest price first. Energy that cannot be placed is dropped (the result is then only a MIP start).
        """
        m, T, dt = self.m, self.T, self.dt
        if not frac_seats:
            return
        n = len(self.seats)
        p = np.zeros((n, T))
        for (k, t), v in m.p.items():
            p[k, t] = v.value or 0.0
        ub = np.maximum(self._ub, 0.0)
        load = p.sum(axis=0)
        # Half the MIP gap of room above the relaxation's peak: a min-peak LP is flat at its peak in
        # many slots, so without room no energy could move; with it the peak stays certifiable.
        top = max(float(load.max()), 0.0) * (1.0 + 0.5 * self.config.mip_gap)
        peak_cap = np.array([min(m.L[t].ub if m.L[t].ub is not None else BIG, top) for t in range(T)])
        nodes = {nd: np.fromiter(ks, dtype=int) for nd, ks in self._under.items()}
        node_load = {nd: p[ks].sum(axis=0) for nd, ks in nodes.items()}
        node_cap = {nd: np.array([pyo.value(m.cap[nd, t]) if (nd, t) in m.cap else BIG for t in range(T)])
                    for nd in nodes}
        anc = {k: [nd for nd, ks in self._under.items() if k in ks] for k in frac_seats}
        price = np.array([pyo.value(m.price[t]) for t in range(T)])
        eps = 1e-7

        def head(k: int, t: int) -> float:
            h = min(ub[k, t] - p[k, t], peak_cap[t] - load[t])
            for nd in anc[k]:
                h = min(h, node_cap[nd][t] - node_load[nd][t])
            return max(0.0, h)

        def add(k: int, t: int, kw: float) -> None:
            p[k, t] += kw
            load[t] += kw
            for nd in anc[k]:
                node_load[nd][t] += kw

        for k in frac_seats:
            lo = self._pmin[k]
            slots = sorted(self._by_seat.get(k, ()), key=lambda t: (price[t], t))
            owed = 0.0  # kW-slots to place
            for t in slots:
                if eps < p[k, t] < lo - eps:
                    owed += p[k, t]
                    add(k, t, -p[k, t])
            for t in slots:  # top up slots already on
                if owed <= eps:
                    break
                if p[k, t] >= lo - eps:
                    x = min(owed, head(k, t))
                    add(k, t, x)
                    owed -= x
            for t in slots:  # switch on a new slot at (at least) the minimum
                if owed <= eps:
                    break
                if p[k, t] > eps or head(k, t) < lo - eps:
                    continue
                x = min(max(owed, lo), head(k, t))
                surplus = x - owed
                donors = [s for s in slots if s != t and p[k, s] - lo > eps]
                give = sum(p[k, s] - lo for s in donors)
                if surplus > give + eps:
                    continue
                add(k, t, x)
                owed = 0.0
                for s in sorted(donors, key=lambda s: (-price[s], s)):
                    if surplus <= eps:
                        break
                    y = min(surplus, p[k, s] - lo)
                    add(k, s, -y)
                    surplus -= y
        for (k, t), v in m.p.items():
            if k in anc:
                v.set_value(float(max(p[k, t], 0.0)) if p[k, t] > eps else 0.0, skip_validation=True)

    def _certified(self, objectives: tuple[str, ...]) -> dict[str, float]:
        """Leading stages the rounded schedule already solves to within the MIP gap of the LP bound.

        A stage's LP value bounds the MILP only while every earlier stage's rounded value is at least as
        good as its LP value (up to the lock slack): then the MILP's feasible set at that stage is
        inside the relaxation's. Stops at the first stage that fails.
        """
        m, c = self.m, self.config
        agg = {"energy": m.Etot, "peak": m.P, "cost": m.C, "carbon": m.Q, "fairness": m.F, "reserve": m.R,
               "asap": m.A, "urgency": m.U, "defer": m.D}
        out: dict[str, float] = {}
        for crit in objectives:
            if crit not in self.lp_values or crit not in agg:
                break
            lp, inc = self.lp_values[crit], float(pyo.value(agg[crit]))
            slack = c.rel_tol * abs(lp) + c.abs_tol
            gap = c.mip_gap * max(abs(lp), abs(inc)) + c.abs_tol
            maximise = _SENSE[crit] == pyo.maximize
            if (maximise and inc < lp - gap) or (not maximise and inc > lp + gap):
                break
            out[crit] = inc
            if (maximise and inc < lp - slack) or (not maximise and inc > lp + slack):
                break  # certified itself, but no longer a valid bound for the stages after it
        return out

    def _complete_from_p(self) -> None:
        """Set every auxiliary variable consistently with the current p values (a full MIP start)."""
        m, T, dt = self.m, self.T, self.dt
        e = np.zeros(len(self.seats))
        L = np.zeros(T)
        for (k, t), v in m.p.items():
            val = v.value or 0.0
            e[k] += val * dt
            L[t] += val
        for k in m.K:
            m.e[k].set_value(float(e[k]), skip_validation=True)
        for t in m.TT:
            m.L[t].set_value(float(L[t]), skip_validation=True)
        cars = self._car_seats
        car_set = set(cars)
        m.Etot.set_value(float(e[cars].sum()) if cars else 0.0, skip_validation=True)
        m.R.set_value(float(e.sum() - (e[cars].sum() if cars else 0.0)), skip_validation=True)
        m.P.set_value(max(float(L.max()) if T else 0.0, m.P.lb or 0.0), skip_validation=True)
        price = np.array([pyo.value(m.price[t]) for t in m.TT])
        inten = np.array([pyo.value(m.intensity[t]) for t in m.TT])
        m.C.set_value(float(price @ L * dt), skip_validation=True)
        m.Q.set_value(float(inten @ L * dt / 1000.0), skip_validation=True)
        reqs = [(e[k], pyo.value(m.req[k])) for k in cars if pyo.value(m.req[k]) > 0]
        m.F.set_value(min([1.0] + [ek / r for ek, r in reqs]), skip_validation=True)
        if self._has_reserve:
            a = sum((T - t) / T * dt * (v.value or 0.0) for (k, t), v in m.p.items() if k in car_set)
        else:
            a = float(sum((T - t) / T * dt * L[t] for t in range(T)))
        m.A.set_value(a, skip_validation=True)
        if not m.U.fixed:
            m.U.set_value(sum(pyo.value(m.w[k]) * (T - t) / T * dt * (v.value or 0.0)
                              for (k, t), v in m.p.items() if k in car_set), skip_validation=True)
        if not m.D.fixed:
            fl = pyo.value(m.floor)
            x = np.maximum(L - fl, 0.0)
            for t in m.TT:
                m.X[t].set_value(float(x[t]), skip_validation=True)
            m.D.set_value(float(sum((T - t) / T * dt * x[t] for t in range(T))), skip_validation=True)
        if self.config.integer:
            for (k, t), v in m.on.items():
                if not v.fixed:
                    v.set_value(1.0 if (m.p[k, t].value or 0.0) > 1e-9 else 0.0, skip_validation=True)

    def _run_stages(
        self, objectives: tuple[str, ...], skip: dict[str, float] | None = None
    ) -> tuple[dict[str, float], str]:
        """Solve `objectives` in order, locking each; `skip` = stages whose value is already known
        (the current variable values achieve it) and are only locked."""
        self._reset_locks()
        values: dict[str, float] = {}
        status = "ok"
        snapshot: list | None = None
        skip = skip or {}
        for crit in objectives:
            if crit == "reserve" and not self._has_reserve:
                values[crit] = 0.0  # nothing reserved: the stage is a no-op, skip the solve
                continue
            if crit in skip:
                values[crit] = skip[crit]
                self._lock(crit, skip[crit])
                snapshot = [v.value for v in self.m.p.values()]
                continue
            t_stage = time.perf_counter()
            r = self._solve_stage(crit)
            self.stage_seconds.append((crit, time.perf_counter() - t_stage))
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
        return values, status

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
    anc = site.tree.ancestors()
    static = {n.id: float(n.cap_kw) for n in site.tree.walk()}
    top = {ev.id: max(0.0, min([ev.max_kw] + [static[a] for a in anc[ev.node]])) for ev in site.evs}
    seats = [Seat(ev.id, ev.node, ev.arrival, ev.departure, min_kw=min(ev.min_kw, top[ev.id]), max_kw=top[ev.id])
             for ev in site.evs]
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
    sched.timings.update({f"stage{i}_{c}": round(sec, 3) for i, (c, sec) in enumerate(cm.stage_seconds)})
    if cm.lp_values:
        sched.timings["free_binaries"] = cm.free_binaries
        sched.stages.update({f"lp_{k}": v for k, v in cm.lp_values.items()})
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



