"""Charger health: flag chargers whose behaviour departs from THEIR OWN history, as fault verdicts.

Why per-charger statistics instead of fixed thresholds only: a workplace charger sees many short top-ups, a home
garage one long session a day, so "normal" differs per charger; a fault is a change against that charger's past.
Clear online statistics (counts, EWMA) are used rather than an opaque anomaly score so that each verdict says why.

Checks, each on a finished session (`observe_session`) or a connection event (`observe_disconnect`):
- zero energy: `min_zero_run` consecutive sessions below `zero_kwh` that lasted at least `min_session_min` minutes
  (a car was there long enough to charge), while the charger's own historical zero rate is low.
- low power: the session's average power (kWh / charging hours) is below `low_power_frac` of the charger's
  reference power -- its rating if known, else its own EWMA of past healthy sessions -- on `min_low_run` sessions
  in a row (one slow car is not a fault; a run of them is).
- dropped connections: more than `max_drops` unexpected disconnects (charger offline / power loss, not a driver
  unplug) within `drop_window`.
A verdict is emitted once when a condition starts (not on every later session) and cleared on a healthy session.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

ZERO_ENERGY = "repeated zero-energy sessions"
LOW_POWER = "power far below reference"
DROPPED = "dropped connections"


@dataclass(frozen=True)
class FaultVerdict:
    charger_id: str
    kind: str
    at: datetime
    detail: str


@dataclass
class _ChargerState:
    sessions: int = 0
    zero_sessions: int = 0
    zero_run: int = 0
    low_run: int = 0
    power_ewma: float | None = None
    drops: deque[datetime] = field(default_factory=deque)
    active: set[str] = field(default_factory=set)


@dataclass
class ChargerHealth:
    zero_kwh: float = 0.05
    min_session_min: float = 10.0
    min_zero_run: int = 3
    max_zero_rate: float = 0.2  # a charger that is "always" near zero (e.g. a test bay) is not newly faulty
    low_power_frac: float = 0.3
    min_low_run: int = 3
    min_history: int = 5  # sessions before the charger's own EWMA is trusted as reference
    ewma: float = 0.1
    max_drops: int = 3
    drop_window: timedelta = timedelta(hours=24)
    ratings_kw: dict[str, float] = field(default_factory=dict)
    chargers: dict[str, _ChargerState] = field(default_factory=dict)

    def _raise(self, st: _ChargerState, kind: str, charger: str, at: datetime, detail: str) -> list[FaultVerdict]:
        if kind in st.active:
            return []
        st.active.add(kind)
        return [FaultVerdict(charger, kind, at, detail)]

    def observe_session(self, charger: str, plug_in: datetime, unplug: datetime, kwh: float,
                        charging_end: datetime | None = None) -> list[FaultVerdict]:
        """Learn from one finished session; returns the verdicts it newly raises."""
        st = self.chargers.setdefault(charger, _ChargerState())
        out: list[FaultVerdict] = []
        minutes = (unplug.timestamp() - plug_in.timestamp()) / 60
        long_enough = minutes >= self.min_session_min
        # ---- zero energy
        is_zero = kwh < self.zero_kwh and long_enough
        prior_rate = st.zero_sessions / st.sessions if st.sessions else 0.0
        if is_zero:
            st.zero_run += 1
            if st.zero_run >= self.min_zero_run and prior_rate <= self.max_zero_rate:
                out += self._raise(st, ZERO_ENERGY, charger, unplug,
                                   f"{st.zero_run} sessions in a row under {self.zero_kwh} kWh "
                                   f"(historical zero rate {prior_rate:.0%})")
        elif kwh >= self.zero_kwh:
            st.zero_run = 0
            st.active.discard(ZERO_ENERGY)
        # ---- power
        end = charging_end if charging_end is not None and charging_end.timestamp() > plug_in.timestamp() else unplug
        hours = (end.timestamp() - plug_in.timestamp()) / 3600
        if kwh >= self.zero_kwh and hours > 0.25:
            power = kwh / hours
            ref = self.ratings_kw.get(charger)
            if ref is None and st.power_ewma is not None and st.sessions >= self.min_history:
                ref = st.power_ewma
            if ref is not None and power < self.low_power_frac * ref:
                st.low_run += 1
                if st.low_run >= self.min_low_run:
                    out += self._raise(st, LOW_POWER, charger, unplug,
                                       f"{st.low_run} sessions in a row at {power:.2f} kW vs reference {ref:.2f} kW")
            else:
                st.low_run = 0
                st.active.discard(LOW_POWER)
                # only healthy sessions move the reference, so a slow fault cannot teach itself as normal
                st.power_ewma = power if st.power_ewma is None else st.power_ewma + self.ewma * (power - st.power_ewma)
        st.sessions += 1
        st.zero_sessions += int(is_zero)
        return out

    def observe_disconnect(self, charger: str, at: datetime, expected: bool) -> list[FaultVerdict]:
        """A connection loss: `expected` for a driver's unplug / normal stop, False for charger offline, power loss,
        EV communication error..."""
        st = self.chargers.setdefault(charger, _ChargerState())
        if expected:
            return []
        st.drops.append(at)
        while st.drops and at.timestamp() - st.drops[0].timestamp() > self.drop_window.total_seconds():
            st.drops.popleft()
        if len(st.drops) > self.max_drops:
            return self._raise(st, DROPPED, charger, at,
                               f"{len(st.drops)} unexpected disconnects within {self.drop_window}")
        st.active.discard(DROPPED)  # back within normal: a later burst is a new verdict
        return []

    def faulty(self) -> dict[str, set[str]]:
        """Chargers with an open verdict, and which."""
        return {c: set(s.active) for c, s in self.chargers.items() if s.active}
