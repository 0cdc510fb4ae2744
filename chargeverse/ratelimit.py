"""Rate limits in Redis: GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp per key).

Why GCRA: one small value per key (the "theoretical arrival time", TAT), exact (no window-boundary bursts of a
fixed window, no per-request entries of a sliding log), and Retry-After falls out of the arithmetic.  A limit
"`count` per `period` seconds" admits a burst of `count` and then one request every `period / count` seconds.

For a key with stored TAT `t` (absent means "now") a request at `now` is admitted iff
    max(t, now) + T - period <= now,            T = period / count (the emission interval)
and then TAT becomes max(t, now) + T.  Refused requests change nothing (hammering does not dig a deeper hole,
and the memory per key stays constant); Retry-After = max(t, now) + T - period - now.

Several limits (per IP, per account) are checked in one atomic step: a request is admitted only if every limit
admits it, and only then is every bucket charged.  In Redis that is one Lua script (`_SCRIPT`), which implements
exactly `check()` below; an integration test drives both with the same sequence and compares.  Times are integer
microseconds (exact in Lua's doubles until the year 2255).  The caller passes `now`: API instances' clocks need
only agree to well within a limit's interval.

Redis Cluster note: one script touches all of a request's keys, so in a cluster they need a common hash tag.
Everything here is ephemeral protection state; losing it only resets the buckets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

_US = 1_000_000


@dataclass(frozen=True)
class Limit:
    """At most `count` requests per `period` seconds (a burst of `count`, then evenly spread)."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.period <= 0:
            raise ValueError(f"a limit needs count >= 1 and period > 0, got {self.count}/{self.period}")

    @classmethod
    def parse(cls, text: str) -> "Limit":
        """'20/60' = 20 per 60 seconds."""
        try:
            count, period = text.strip().split("/")
            return cls(int(count), float(period))
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r}: expected COUNT/SECONDS, e.g. 20/60") from exc

    @property
    def interval_us(self) -> int:
        return max(1, int(self.period * _US) // self.count)

    @property
    def period_us(self) -> int:
        return int(self.period * _US)

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: seconds until the request would be admitted (0 when admitted)
    retry_after: float
    #: the new stored TATs (µs), one per limit; unchanged when refused
    tats: tuple[int | None, ...]

    @property
    def retry_after_header(self) -> str:
        """Retry-After is whole seconds; round up so a client that obeys it is admitted."""
        return str(max(1, math.ceil(self.retry_after)))


def check(tats: Sequence[int | None], now_us: int, limits: Sequence[Limit]) -> Decision:
    """The pure GCRA step over several limits (see the module docstring)."""
    if len(tats) != len(limits):
        raise ValueError("one stored TAT per limit")
    new: list[int | None] = []
    retry = 0
    for tat, lim in zip(tats, limits):
        t = now_us if tat is None or tat < now_us else tat
        nt = t + lim.interval_us
        allow_at = nt - lim.period_us
        if now_us < allow_at:
            retry = max(retry, allow_at - now_us)
        new.append(nt)
    if retry > 0:
        return Decision(False, retry / _US, tuple(tats))
    return Decision(True, 0.0, tuple(new))


# KEYS: one per limit.  ARGV[1] = now (µs); then interval_us, period_us per key.  Returns {allowed, retry_us}.
_SCRIPT = """
local now = tonumber(ARGV[1])
local tats = {}
local retry = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('GET', KEYS[i])
  local t = now
  if stored then
    t = tonumber(stored)
    if t < now then t = now end
  end
  local nt = t + interval
  local allow_at = nt - period
  if now < allow_at and allow_at - now > retry then retry = allow_at - now end
  tats[i] = nt
end
if retry > 0 then return {0, string.format('%.0f', retry)} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
end
return {1, '0'}
"""


class RateLimiter:
    """GCRA limits in Redis (an asyncio client)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_SCRIPT)

    def key(self, action: str, scope: str, who: str) -> str:
        return f"{self.prefix}:rl:{action}:{scope}:{who}"

    async def hit(self, checks: Sequence[tuple[str, Limit]], now: float | None = None) -> Decision:
        """Admit (and charge every bucket) or refuse (charging none) one request against `checks`."""
        now_us = int((time.time() if now is None else now) * _US)
        args: list[int] = [now_us]
        for _, lim in checks:
            args += [lim.interval_us, lim.period_us]
        allowed, retry = await self._script(keys=[k for k, _ in checks], args=args)
        retry_us = int(retry)
        return Decision(bool(int(allowed)), retry_us / _US, ())

    async def stored(self, keys: Sequence[str]) -> list[int | None]:
        """The stored TATs (for tests and operators)."""
        vals = await self.redis.mget(list(keys))
        return [None if v is None else int(float(v)) for v in vals]
