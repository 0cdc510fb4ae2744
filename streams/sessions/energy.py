"""Session energy from meter *register* readings.  Pure: no I/O.

A charger reports an energy register (a meter's running total, Wh), not deltas.  A session's energy is therefore
"last reading - first reading", never a sum of reported values, so a reading repeated, redelivered or arriving
late cannot be counted twice.  Real meters and firmware add three hazards this module guards against:

1. **Offline start** - a charger that starts a transaction offline (or with buggy firmware) sends meterStart = 0
   and then its lifetime register (say 900,000 Wh).  "last - meterStart" would bill 900 kWh.
2. **Register going backwards** - a meter replaced or reset mid-session, or a charger reporting a session-relative
   value in one message and the lifetime register in the next.  "last - first" could be negative.
3. **Glitches** - a corrupt reading far above the truth.

The rule: readings are kept as time-ordered *segments* of credible steps, and the energy is the sum over segments of
(segment's last reading - segment's first reading).  A step from reading a to a later reading b is credible when
- it does not go backwards by more than `jitter_wh` (rounding between contexts; such a reading is ignored, it never
  moves a total down), and
- it needs no more than `max_power_w` on average (plus `slack_wh` for clock skew and equal timestamps), and
- when a reads exactly 0, b is at most `zero_start_max_wh`: a zero register is a believable baseline only for a
  session-relative meter, never for a lifetime register.
A step that is not credible starts a new segment: the reading after the jump is the new baseline and the jump itself
is never billed.  So the offline start bills from the first real reading (the baseline is *inferred*), a meter reset
adds the energy counted after the reset, and a glitch adds nothing.

Guarantees (tested in tests/unit/sessions/test_energy_rules.py):
- energy is never negative;
- inserting a reading that is already known changes nothing (idempotent), in any order;
- for a register that never goes backwards, energy = (latest reading - earliest reading) whatever the arrival order,
  so it never exceeds (max register - min register);
- with resets, energy never exceeds the sum over segments of (segment max - segment min);
- readings without an energy register never reach this module, so they cannot reset a total.

Readings arriving out of time order are merged: one after or before the covered span extends it (or starts a
segment), one inside a span already covered never changes the energy (its information is already bounded by the
span's ends).  In time order (what OCPP asks of chargers for transaction messages) the result is exact.

Segments are JSON-friendly lists `[t_first_us, wh_first, t_last_us, wh_last]` (Wh as decimal strings), so the
processor can keep them in a Faust table.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

US_PER_HOUR = Decimal(3_600_000_000)

Segment = list  # [t0: int, wh0: str, t1: int, wh1: str]


@dataclass(frozen=True)
class Rules:
    """The credibility limits of register steps (module docstring).  Defaults suit public AC/DC/MCS charging."""

    #: the highest average power a step may imply; above it the step is a jump, not energy delivered
    max_power_w: Decimal = Decimal(1_000_000)
    #: allowance on top of max_power_w x time, for clock skew and readings with equal timestamps
    slack_wh: Decimal = Decimal(1000)
    #: a backwards step this small is rounding: the reading is ignored, no new segment
    jitter_wh: Decimal = Decimal(10)
    #: from a reading of exactly 0 the next reading is credible only up to this (session-relative meters)
    zero_start_max_wh: Decimal = Decimal(100_000)


DEFAULT_RULES = Rules()


def credible(t_a: int, wh_a: Decimal, t_b: int, wh_b: Decimal, rules: Rules = DEFAULT_RULES) -> bool:
    """Whether the register step from reading a to the later (or simultaneous) reading b is energy delivered."""
    step = wh_b - wh_a
    if step < -rules.jitter_wh:
        return False
    allowed = rules.max_power_w * Decimal(max(t_b - t_a, 0)) / US_PER_HOUR + rules.slack_wh
    if step > allowed:
        return False
    return not (wh_a == 0 and wh_b > rules.zero_start_max_wh)


def insert(segments: Sequence[Segment], t: int, wh: Decimal, rules: Rules = DEFAULT_RULES) -> list[Segment]:
    """The segments with the reading (t, wh) merged in; the input is not modified."""
    segs = [list(s) for s in segments]
    for i, (t0, w0, t1, w1) in enumerate(segs):
        if t0 <= t <= t1:  # inside (or on the edge of) a covered span
            lo, hi = Decimal(w0), Decimal(w1)
            if t == t1 and wh > hi and credible(t1, hi, t, wh, rules):
                segs[i][3] = str(wh)
            elif t == t0 and wh < lo and credible(t, wh, t0, lo, rules):
                segs[i][1] = str(wh)
            return segs  # an interior reading never changes the energy
    before = [i for i, s in enumerate(segs) if s[2] < t]
    after = [i for i, s in enumerate(segs) if s[0] > t]
    p = before[-1] if before else None
    n = after[0] if after else None
    join_prev = p is not None and credible(segs[p][2], Decimal(segs[p][3]), t, wh, rules)
    join_next = n is not None and credible(t, wh, segs[n][0], Decimal(segs[n][1]), rules)
    if join_prev and join_next:
        prev, nxt = segs[p], segs[n]  # type: ignore[index]
        top = max(Decimal(prev[3]), Decimal(nxt[3]), wh)
        merged = [prev[0], prev[1], nxt[2], str(top)]
        return segs[:p] + [merged] + segs[n + 1:]  # type: ignore[operator]
    if join_prev:
        prev = segs[p]  # type: ignore[index]
        prev[2], prev[3] = t, str(max(Decimal(prev[3]), wh))
        return segs
    if join_next:
        nxt = segs[n]  # type: ignore[index]
        nxt[0], nxt[1] = t, str(min(Decimal(nxt[1]), wh))
        return segs
    at = n if n is not None else len(segs)
    return segs[:at] + [[t, str(wh), t, str(wh)]] + segs[at:]


def energy_wh(segments: Sequence[Segment]) -> Decimal:
    """Session energy: the sum of (last - first) over segments."""
    return sum((Decimal(s[3]) - Decimal(s[1]) for s in segments), Decimal(0))


def baseline_inferred(segments: Sequence[Segment], meter_start_wh: Decimal | None, start_us: int,
                      rules: Rules = DEFAULT_RULES) -> bool:
    """True when the energy does not count from the start reading: it was missing, or it was not a credible
    baseline for the readings after it (an offline start's 0, a start reading followed by a reset or a jump)."""
    if meter_start_wh is None:
        return True
    if not segments:
        return False
    first = segments[0]
    counts_from_start = first[0] == start_us and abs(Decimal(first[1]) - meter_start_wh) <= rules.jitter_wh
    isolated = len(segments) > 1 and first[0] == first[2]
    return not counts_from_start or isolated
