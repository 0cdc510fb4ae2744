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
default 1 % relative gap per stage). Binaries exist only where needed: for seats whose minimum is known to
be 0 (`Seat.min_kw`) there is none. Two strategies (`OptimiserConfig.milp_strategy`):

``lp_guided`` (default) -- per lexicographic stage, with the earlier stages locked at their incumbents:

1. solve the stage's LP relaxation. With ``0 <= on <= 1`` the on/off rows are implied by the plain LP
   (``on = p / max`` satisfies both), so the relaxation *is* the plain LP: the on/off block is not even
   pushed to HiGHS (fast build, warm-started LP re-solves). Its optimum bounds the MILP stage, because
   the locks hold the *integer* incumbents of the earlier stages, not their LP values;
2. round it to an on/off pattern (`_pattern`: slots at or above the minimum stay on, empty slots off,
   of the slots in between the fullest are switched on as far as the car's energy, its request and
   every limit above it allow) and solve the same stage restricted to that pattern -- an LP over power
   *bounds* (on: ``p >= min``, off: ``p = 0``), so HiGHS keeps its basis. Its optimum is a feasible
   MILP schedule. If the pattern is infeasible (or not good enough), the previous stage's incumbent
   pattern is tried: that one is always feasible, since its schedule meets every lock;
3. if the incumbent is within `mip_gap` of the bound (``|value - bound| <= gap * |value|``) the stage
   is *certified* and locked; otherwise the on/off block is added to HiGHS once and the stage is solved
   as the real MILP, started from the incumbent (MIP start), to HiGHS' own gap and dual bound.

Every stage's bound, value, gap and method are kept (`ChargingModel.stage_info`; `optimise` copies
bound and gap into the schedule's ``stages``). On the 500-EV x 96-slot depot (4.2 kW minimum) every
stage is certified by rounding (gaps 0 / 0.03 / 0.4 %) at about 2-3x the LP's solve time; the full MILP
took ~50 s there. ``full`` builds the binaries up front and lets HiGHS solve every stage as a MILP.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.solvers import Highs as AppsiHighs

from .model import EV, Issue, LimitNode, Site, validate
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
    milp_strategy: Literal["lp_guided", "full"] = "lp_guided"
    #: lp_guided: relative room above the bound of a certified ``peak``/``cost``/``carbon`` stage that
    #: later stages may use (capped at `mip_gap`, so the stage's gap stays certified).
    milp_lock_slack: float = 0.0
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
    #: The solver's bound on the stage (a MILP's dual bound; an LP's optimum).
    bound: float = math.nan


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
        #: (seat, slot) pairs that may need an on/off binary (seats whose minimum is not known to be 0).
        self._int_pairs: list[tuple[int, int]] = []
        if config.integer:
            self._int_pairs = [(k, t) for (k, t) in pairs if self.seats[k].min_kw is None or self.seats[k].min_kw > 0]
            m.pmin = pyo.Param(m.K, mutable=True, initialize=0.0)
            m.pmax = pyo.Param(m.K, mutable=True, initialize=0.0)
        self._int_mask = np.zeros((len(self.seats), T), dtype=bool)
        for k, t in self._int_pairs:
            self._int_mask[k, t] = True
        self.m = m
        # lp_guided builds the on/off block (pyomo and HiGHS) only when a stage needs the real MILP.
        self._binaries_loaded = False
        if config.integer and config.milp_strategy == "full":
            self._build_binaries()
            self._binaries_loaded = True
        self._binaries_relaxed = False
        self._seat_nodes: list[list[str]] | None = None  # non-root limit nodes above each seat (lazy)
        self._node_cap: dict[str, np.ndarray] = {}  # last per-slot caps given to `set_node_cap` (rounding)
        self._params_pushed = False
        self._restricted: list[tuple[int, int]] = []  # power bounds `_restrict` changed
        self._ub = np.full((len(self.seats), T), -1.0)  # last bound pushed to each p (avoid redundant setub)
        self._solver = AppsiHighs()
        self._solver.config.load_solution = False
        self._solver.config.stream_solver = False
        if config.time_limit is not None:
            self._solver.config.time_limit = config.time_limit
        if config.integer:
            self._solver.config.mip_gap = config.mip_gap
            # MIP start from the current values (full MILP; lp_guided turns it on for its MILP fallback).
            self._solver.config.warmstart = config.milp_strategy == "full"
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
        #: Per stage of the last ``lp_guided`` MILP solve: method ("lp": the relaxation already met every
        #: minimum, "rounded": restricted LP certified by the relaxation, "milp": HiGHS MILP), bound,
        #: value, relative gap, cars with a fractional slot in the relaxation, seconds.
        self.stage_info: list[dict[str, object]] = []
        #: (stage, seconds) of every stage solved.
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
        self._node_cap[node] = np.maximum(cap[: self.T], 0.0).copy()
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

    def _solve_stage(self, crit: str, dual: bool = False) -> _StageResult:
        """Solve one stage; ``dual`` forces dual simplex (after bound changes the basis stays dual feasible)."""
        m = self.m
        for c in CRITERIA:
            obj = getattr(m, f"obj_{c}")
            if c == crit:
                obj.activate()
            else:
                obj.deactivate()
        opts = dict(self._base_options)
        opts.update(dict(dict(self.config.stage_options).get(crit, ())))
        if dual or not opts.get("simplex_strategy"):
            opts["simplex_strategy"] = 1
        self._solver.highs_options = opts
        # Parameters (caps, prices, requests) only change between `solve` calls: re-sending all of them
        # (appsi pushes every mutable coefficient, ~13k on the 500-EV depot) once per `solve` is enough.
        self._solver.update_config.update_params = not self._params_pushed
        try:
            res = self._solver.solve(m)
        except Exception as exc:  # noqa: BLE001 - a solver failure must become a flagged result
            log.warning("HiGHS failed in stage %s: %s", crit, exc)
            return _StageResult(False, math.nan, f"error:{exc}")
        self._params_pushed = True
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
        bound = res.best_objective_bound
        return _StageResult(True, float(v), tc, float(bound) if bound is not None else math.nan)

    def solve(self, objectives: Sequence[str] | None = None) -> tuple[dict[str, float], str, float]:
        """Run the lexicographic stages. Returns (stage values, status, solve seconds)."""
        t0 = time.perf_counter()
        objectives = tuple(objectives or self.config.objectives)
        for c in ("urgency", "defer"):
            if c in objectives and c not in self.config.objectives:
                raise ValueError(f"the {c} stage must be in OptimiserConfig.objectives when the model is built")
        self._params_pushed = False
        try:
            if self.config.integer and self.config.milp_strategy == "lp_guided" and self._int_pairs:
                values, status = self._solve_guided(objectives)
            else:
                values, status = self._run_stages(objectives)
        finally:
            self._params_pushed = False
        return values, status, time.perf_counter() - t0

    def _solve_guided(self, objectives: tuple[str, ...]) -> tuple[dict[str, float], str]:
        """Per stage: LP bound, rounded restricted LP, certified gap; MILP fallback (module docstring)."""
        m, c = self.m, self.config
        self.stage_info = []
        self._reset_locks()
        values: dict[str, float] = {}
        status = "ok"
        held: np.ndarray | None = None  # on/off pattern of the last incumbent (it satisfies every lock so far)
        snapshot: list | None = None
        try:
            for crit in objectives:
                if crit == "reserve" and not self._has_reserve:
                    values[crit] = 0.0
                    continue
                t_stage = time.perf_counter()
                self._relax_binaries(True)
                r = self._solve_stage(crit)
                if not r.ok:
                    status = f"stage {crit} failed ({r.status}); kept previous stage"
                    self._restore(snapshot)
                    break
                # Only an LP solved to optimality bounds the stage (not one stopped by the time limit).
                bound = r.value if "optimal" in r.status else math.nan
                inc, method, used = None, "lp", None
                tried: list[str] = []

                def certified(value: float | None) -> bool:
                    return value is not None and math.isfinite(bound) and \
                        abs(value - bound) <= c.mip_gap * abs(value) + c.abs_tol

                p = self._loaded_power()
                frac = (p > 1e-6) & (p < self._pmin[:, None] - 1e-6) & self._int_mask & (self._pmin[:, None] > 0)
                frac_cars = int(frac.any(axis=1).sum())
                if not frac.any():
                    inc, used = r.value, p > 1e-9  # the relaxation already respects every minimum
                else:
                    method = "rounded"
                    # This stage's rounded relaxation first; then the last incumbent's pattern (always
                    # feasible: that incumbent meets every lock). Keep the better; stop once certified.
                    best: list[float] | None = None
                    for name, pattern in (("rounded", self._pattern(p)), ("held", held)):
                        if pattern is None:
                            continue
                        self._restrict(pattern)
                        try:
                            t_r = time.perf_counter()
                            r2 = self._solve_stage(crit, dual=True)
                        finally:
                            self._restrict(None)
                        tried.append(f"{name}:{'ok' if r2.ok else 'infeasible'}:{time.perf_counter() - t_r:.2f}s")
                        if not r2.ok:
                            continue
                        better = inc is None or (r2.value > inc if _SENSE[crit] == pyo.maximize else r2.value < inc)
                        if better:
                            inc, used = r2.value, self._loaded_power() > 1e-9
                            best = [v.value for v in m.p.values()]
                        if certified(inc):
                            break
                    if best is not None and not self._loaded_is(best):
                        self._restore(best)
                        self._complete_from_p()
                gap = math.inf if inc is None or not math.isfinite(bound) else abs(inc - bound) / max(abs(inc), 1e-9)
                if not certified(inc):
                    # Not certified by the relaxation: the real MILP, started from the incumbent.
                    method = "milp"
                    if inc is None:
                        self._restore(snapshot)
                    self._relax_binaries(False)
                    self._complete_from_p()  # after: sets the binaries of the MIP start too
                    self._solver.config.warmstart = True
                    try:
                        r3 = self._solve_stage(crit)
                    finally:
                        self._solver.config.warmstart = False
                    if not r3.ok:
                        status = f"stage {crit} failed ({r3.status}); kept previous stage"
                        self._restore(snapshot)
                        break
                    inc, bound, used = r3.value, r3.bound, self._loaded_power() > 1e-9
                    gap = abs(inc - bound) / max(abs(inc), 1e-9) if math.isfinite(bound) else math.inf
                    if "optimal" not in r3.status:
                        status = f"stage {crit} stopped ({r3.status}) at gap {100 * gap:.2f}%"
                values[crit] = inc
                lock = inc
                if crit in ("peak", "cost", "carbon") and c.milp_lock_slack > 0 and math.isfinite(bound):
                    # Later stages may use the room up to `milp_lock_slack` above this stage's bound:
                    # still within the stage's certified gap, and their restricted LPs stay feasible.
                    lock = max(inc, bound + min(c.milp_lock_slack, c.mip_gap) * abs(bound))
                self._lock(crit, lock)
                held = used
                snapshot = [v.value for v in m.p.values()]
                self.stage_info.append({"stage": crit, "method": method, "bound": bound, "value": inc,
                                        "gap": gap, "fractional_cars": frac_cars, "restricted": tried,
                                        "seconds": time.perf_counter() - t_stage})
                self.stage_seconds.append((crit, time.perf_counter() - t_stage))
        finally:
            self._relax_binaries(True)
            self._reset_locks()
        return values, status

    def _build_binaries(self) -> None:
        """The on/off block: binary ``on[k, t]`` with ``min * on <= p <= max * on``."""
        m, seats_ = self.m, self.seats
        m.SPI = pyo.Set(initialize=self._int_pairs, dimen=2, ordered=True)
        m.on = pyo.Var(m.SPI, domain=pyo.Binary)

        def lo_coef(k: int) -> object:
            return seats_[k].min_kw if seats_[k].min_kw is not None else m.pmin[k]

        def hi_coef(k: int) -> object:
            return seats_[k].max_kw if seats_[k].max_kw is not None else m.pmax[k]

        m.on_lo = pyo.Constraint(m.SPI, rule=lambda m, k, t: m.p[k, t] >= lo_coef(k) * m.on[k, t])
        m.on_hi = pyo.Constraint(m.SPI, rule=lambda m, k, t: m.p[k, t] <= hi_coef(k) * m.on[k, t])

    def _relax_binaries(self, relax: bool) -> None:
        """Binaries out of the solver (relaxed: their LP relaxation is the plain LP) or in, as 0/1.

        The on/off rows are pushed to HiGHS only the first time a stage needs the real MILP; until
        then the solver holds the plain LP (fast warm-started re-solves, fast build)."""
        m = self.m
        if not relax and not self._binaries_loaded:
            self._build_binaries()
            self._solver.add_constraints(list(m.on_lo.values()) + list(m.on_hi.values()))
            self._binaries_loaded = True
        if self._binaries_loaded and self._binaries_relaxed != relax:
            dom = pyo.UnitInterval if relax else pyo.Binary
            for v in m.on.values():
                v.domain = dom
            self._binaries_relaxed = relax

    def _loaded_power(self) -> np.ndarray:
        out = np.zeros((len(self.seats), self.T))
        for (k, t), v in self.m.p.items():
            out[k, t] = v.value or 0.0
        return out

    def _loaded_is(self, snapshot: list) -> bool:
        return all(v.value == x for v, x in zip(self.m.p.values(), snapshot))

    def _restore(self, snapshot: list | None) -> None:
        for i, v in enumerate(self.m.p.values()):
            v.set_value(snapshot[i] if snapshot is not None else 0.0, skip_validation=True)

    def _pattern(self, p: np.ndarray) -> np.ndarray:
        """Round a relaxed schedule to an on/off pattern that can still carry each car's energy.

        Slots at or above the car's minimum stay on, empty slots off. Of the slots strictly between,
        the ones with the most power are switched on -- as many as the energy they carried pays for at
        the minimum (rounded to nearest), and only where every limit above the car (and the locked
        peak) still has room for the minimums of all cars switched on there -- then adjusted so the
        car's energy lies between "every on slot at the minimum" and "every on slot at its bound"
        (the restricted LP re-spreads the energy within the pattern). A car whose relaxed energy no
        on/off pattern can carry (e.g. 4.1 kWh requested, 3.7 kWh per slot at most, 4.2 kWh for two
        slots at the minimum) keeps the pattern that stays within its request.
        """
        m, T = self.m, self.T
        lo = self._pmin
        ub = np.maximum(self._ub, 0.0)
        mask = self._int_mask & (lo[:, None] > 0)
        can_on = mask & (ub >= lo[:, None] - 1e-9)
        on = (p >= lo[:, None] - 1e-6) & can_on
        frac = (p > 1e-6) & ~on & mask
        if not frac.any():
            return on
        if self._seat_nodes is None:
            self._seat_nodes = [[nd for nd, ks in self._under.items() if k in ks] for k in range(len(self.seats))]
        forced = on * lo[:, None]
        p_ub = m.P.ub if m.P.ub is not None else BIG
        room = {self.root: np.array([min(m.L[t].ub if m.L[t].ub is not None else BIG, p_ub) for t in range(T)])
                - forced.sum(axis=0)}
        for nd, ks in self._under.items():
            cap = self._node_cap.get(nd, np.full(T, BIG))
            room[nd] = cap - forced[np.fromiter(ks, dtype=int)].sum(axis=0)
        for k in np.nonzero(frac.any(axis=1))[0]:
            nodes = [room[self.root]] + [room[nd] for nd in self._seat_nodes[k]]
            idx = np.nonzero(frac[k] & can_on[k])[0]
            order = idx[np.argsort(-p[k, idx], kind="stable")]
            energy = float(p[k].sum())
            target = int(round(float(p[k, frac[k]].sum()) / lo[k]))
            row = on[k].copy()
            chosen: list[int] = []

            def fits(t: int) -> bool:
                return all(r[t] >= lo[k] - 1e-9 for r in nodes)

            def switch(t: int, to_on: bool) -> None:
                row[t] = to_on
                for r in nodes:
                    r[t] += -lo[k] if to_on else lo[k]

            for t in order:
                if len(chosen) >= target:
                    break
                if fits(t):
                    switch(t, True)
                    chosen.append(t)
            while chosen and row.sum() * lo[k] > energy + 1e-9:
                switch(chosen.pop(), False)
            # The on slots cannot carry the energy: switch on more, while the minimums of all on slots
            # stay within the car's request (hard: otherwise the restricted LP is infeasible).
            most = float(m.e[k].ub or 0.0) / self.dt + 1e-9
            for t in order:
                if float(ub[k, row].sum()) >= energy - 1e-9:
                    break
                if not row[t] and fits(t) and (row.sum() + 1) * lo[k] <= most:
                    switch(t, True)
            on[k] = row
        return on

    def _restrict(self, pattern: np.ndarray | None) -> None:
        """Fix the on/off decisions through the power bounds (on: p >= min, off: p = 0); None undoes it.

        Bounds, not fixed binaries: the solver keeps its basis and pyomo re-sends only bounds."""
        m, lo, ub = self.m, self._pmin, self._ub
        if pattern is None:
            for (k, t) in self._restricted:
                v = m.p[k, t]
                v.setlb(0.0)
                v.setub(float(max(ub[k, t], 0.0)))
            self._restricted = []
            return
        # closed slots (bound 0) are off already
        self._restricted = [(k, t) for (k, t) in self._int_pairs if lo[k] > 0 and ub[k, t] > 0]
        for (k, t) in self._restricted:
            if pattern[k, t]:
                m.p[k, t].setlb(float(min(lo[k], ub[k, t])))
            else:
                m.p[k, t].setub(0.0)

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
        if self._binaries_loaded:
            for (k, t), v in m.on.items():
                if not v.fixed:
                    v.set_value(1.0 if (m.p[k, t].value or 0.0) > 1e-9 else 0.0, skip_validation=True)

    def _run_stages(
        self, objectives: tuple[str, ...]
    ) -> tuple[dict[str, float], str]:
        """Solve `objectives` in order, locking each."""
        self._reset_locks()
        if self.config.integer:
            self.stage_info = []
        values: dict[str, float] = {}
        status = "ok"
        snapshot: list | None = None
        for crit in objectives:
            if crit == "reserve" and not self._has_reserve:
                values[crit] = 0.0  # nothing reserved: the stage is a no-op, skip the solve
                continue
            t_stage = time.perf_counter()
            r = self._solve_stage(crit)
            self.stage_seconds.append((crit, time.perf_counter() - t_stage))
            if not r.ok:
                status = f"stage {crit} failed ({r.status}); kept previous stage"
                self._restore(snapshot)
                break
            values[crit] = r.value
            if self.config.integer:  # full MILP: HiGHS' dual bound and gap per stage
                self.stage_info.append({"stage": crit, "method": "milp", "bound": r.bound, "value": r.value,
                                        "gap": abs(r.value - r.bound) / max(abs(r.value), 1e-9),
                                        "seconds": self.stage_seconds[-1][1]})
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
    for info in cm.stage_info:  # lp_guided MILP: each stage's bound, relative gap, and whether HiGHS' MILP ran
        sched.stages[f"bound_{info['stage']}"] = float(info["bound"])  # type: ignore[arg-type]
        sched.stages[f"gap_{info['stage']}"] = float(info["gap"])  # type: ignore[arg-type]
        sched.timings[f"milp_fallback_{info['stage']}"] = 1.0 if info["method"] == "milp" else 0.0
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



