"""Roamed sessions: the partner's CDR against our re-pricing of it -> ok, or a discrepancy for review.

Why: for a roamed session the partner CPO's CDR is authoritative (it is what the CPO invoices us), so we post
*their* totals.  We still re-price the CDR from the tariff it had (the tariff engine does that) and compare: a
difference above a threshold becomes a `BillingDiscrepancy` event for a human, it does not block posting.

The rule, per compared figure (partner value p, our value o, d = p - o):

    flagged  <=>  |d| > max(absolute, relative * |o|)

i.e. a difference is tolerated when it is within the absolute floor OR within the relative band; only a
difference above both is flagged.  The floor keeps cheap sessions from flagging on a cent; the band keeps
expensive ones from flagging on rounding.

Compared: `total_cost` excl/incl VAT, and each cost part (fixed, energy, time, parking, reservation) that both
sides carry.  A part present on one side only is listed in `not_compared` (the `total_cost` comparison still
catches any money it hides).  Quantities are not compared: the re-pricing reads the partner's own dimensions.
Different currencies cannot be compared at all: that is a discrepancy by itself (`currency_mismatch`).

Pure: no I/O; the same inputs always give the same decision (replay-safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from ledger.billing.cdr_checks import COST_PARTS, CdrTotals, Price
from ledger.billing.money import ZERO


@dataclass(frozen=True, slots=True)
class Threshold:
    """`absolute` in currency units (e.g. 0.05 EUR); `relative` as a fraction (0.01 = 1 %)."""

    absolute: Decimal
    relative: Decimal

    def __post_init__(self) -> None:
        if self.absolute < 0 or self.relative < 0:
            raise ValueError("thresholds are not negative")

    def allowed(self, ours: Decimal) -> Decimal:
        return max(self.absolute, self.relative * abs(ours))


DEFAULT_THRESHOLD = Threshold(absolute=Decimal("0.05"), relative=Decimal("0.01"))


class Verdict(StrEnum):
    OK = "OK"
    DISCREPANCY = "DISCREPANCY"


@dataclass(frozen=True, slots=True)
class Difference:
    """One compared figure.  `relative` is d/|ours| (None when ours is 0)."""

    field: str
    partner: Decimal
    ours: Decimal
    difference: Decimal
    relative: Decimal | None
    allowed: Decimal
    flagged: bool


@dataclass(frozen=True)
class DiscrepancyDecision:
    verdict: Verdict
    partner_currency: str
    our_currency: str
    threshold: Threshold
    differences: tuple[Difference, ...] = ()
    not_compared: tuple[str, ...] = ()
    currency_mismatch: bool = False
    flagged: tuple[Difference, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flagged", tuple(d for d in self.differences if d.flagged))

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


def compare_totals(partner: CdrTotals, ours: CdrTotals,
                   threshold: Threshold = DEFAULT_THRESHOLD) -> DiscrepancyDecision:
    """Compare the partner's CDR totals with our re-pricing (see the module docstring for the rule)."""
    if partner.currency != ours.currency:
        return DiscrepancyDecision(Verdict.DISCREPANCY, partner.currency, ours.currency, threshold,
                                   currency_mismatch=True)
    diffs: list[Difference] = []
    skipped: list[str] = []
    _compare_price("total_cost", partner.total_cost, ours.total_cost, threshold, diffs, skipped)
    for name in COST_PARTS:
        p, o = partner.parts.get(name), ours.parts.get(name)
        if p is None and o is None:
            continue
        if p is None or o is None:
            present = p if p is not None else o
            assert present is not None
            if present.excl_vat != 0 or (present.incl_vat or ZERO) != 0:
                skipped.append(name)
            continue
        _compare_price(name, p, o, threshold, diffs, skipped)
    verdict = Verdict.DISCREPANCY if any(d.flagged for d in diffs) else Verdict.OK
    return DiscrepancyDecision(verdict, partner.currency, ours.currency, threshold, tuple(diffs), tuple(skipped))


def _compare_price(name: str, p: Price, o: Price, threshold: Threshold, out: list[Difference],
                   skipped: list[str]) -> None:
    out.append(_difference(f"{name}.excl_vat", p.excl_vat, o.excl_vat, threshold))
    if p.incl_vat is not None and o.incl_vat is not None:
        out.append(_difference(f"{name}.incl_vat", p.incl_vat, o.incl_vat, threshold))
    elif p.incl_vat is not None or o.incl_vat is not None:
        skipped.append(f"{name}.incl_vat")


def _difference(name: str, partner: Decimal, ours: Decimal, threshold: Threshold) -> Difference:
    d = partner - ours
    rel = None if ours == 0 else d / abs(ours)
    allowed = threshold.allowed(ours)
    return Difference(name, partner, ours, d, rel, allowed, abs(d) > allowed)
