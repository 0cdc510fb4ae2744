"""Retry timing and a per-partner circuit breaker for our calls to partners.  Pure: no I/O, the clock is passed in.

Why: a partner that is down must cost us little (no hammering, no piled-up work) and must never slow the calls to
other partners.  Each partner gets its own Breaker (and its own lane: edges/ocpi/outbound.py).

Backoff: exponential with jitter - attempt n (1-based) waits `base * 2**(n-1)`, capped at `cap`, times a factor
drawn uniformly from [0.5, 1.5) ("equal jitter"), so retries of many callers spread out instead of arriving
together.  The factor is passed in (a random number in [0, 1)), which makes the timing testable.

Breaker states and invariants:
- CLOSED: calls go through; `failure_threshold` consecutive failures open it.  A success resets the count.
- OPEN: `allow()` is False until `reset_after` seconds have passed since it opened; no call reaches the partner.
- HALF_OPEN: after that, exactly one trial call is allowed at a time; its success closes the breaker, its
  failure opens it again for another `reset_after`.
A call refused by the breaker is not a failure (it never reached the partner) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"


def backoff_delay(attempt: int, rand: float, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry); `rand` in [0, 1)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= rand < 1.0:
        raise ValueError("rand must be in [0, 1)")
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rand)


class State(str, Enum):
    CLOSED = CLOSED
    OPEN = OPEN
    HALF_OPEN = HALF_OPEN


@dataclass
class Breaker:
    clock: Callable[[], float]
    failure_threshold: int = 5
    reset_after: float = 30.0
    state: State = State.CLOSED
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False
    transitions: list[tuple[State, State]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.reset_after <= 0:
            raise ValueError("reset_after must be positive")

    def _to(self, new: State) -> None:
        if new != self.state:
            self.transitions.append((self.state, new))
            self.state = new

    def current(self) -> State:
        """The state now (an OPEN breaker whose wait is over reads HALF_OPEN)."""
        if self.state == State.OPEN and self.opened_at is not None and \
                self.clock() - self.opened_at >= self.reset_after:
            self._to(State.HALF_OPEN)
            self.trial_in_flight = False
        return self.state

    def allow(self) -> bool:
        """May a call go to the partner now?  In HALF_OPEN this claims the single trial."""
        s = self.current()
        if s == State.CLOSED:
            return True
        if s == State.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until a call may be allowed again (0 when it may now)."""
        s = self.current()
        if s == State.OPEN and self.opened_at is not None:
            return max(0.0, self.reset_after - (self.clock() - self.opened_at))
        return 0.0

    def success(self) -> None:
        self.failures = 0
        self.trial_in_flight = False
        self.opened_at = None
        self._to(State.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.state == State.HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._to(State.OPEN)
