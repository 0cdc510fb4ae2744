"""Re-price a partner's OCPI CDR and report, per total, how far their figures are from ours.

Used by billing to check roaming CDRs before they reach the ledger: a CPO's CDR carries its
charging periods and (usually) the tariff as it was at session start; we price the same
periods with the same tariff and compare every total.  A difference above ``threshold`` (in
currency units, absolute, default one cent) on any cost total -- or above
``quantity_threshold`` on a quantity total -- makes the CDR a discrepancy for a human or a
dispute flow; the engine never "corrects" the partner's CDR.

Missing cost totals in their CDR count as zero (OCPI: optional totals are omitted when
nothing was charged); a missing ``incl_vat`` is compared on ``excl_vat`` only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.tariff.engine import COST_TOTALS, QUANTITY_TOTALS, PricedCdr, price_session
from ledger.tariff.errors import InvalidSessionError, TariffNotApplicableError
from ledger.tariff.model import Tariff, parse_tariff
from ledger.tariff.money import ZERO, to_decimal


@dataclass(frozen=True, slots=True)
class TotalDifference:
    """One CDR total: theirs, ours, ours - theirs, and whether it exceeds the threshold."""

    name: str
    theirs_excl_vat: Decimal | None
    theirs_incl_vat: Decimal | None
    ours_excl_vat: Decimal
    ours_incl_vat: Decimal | None  # None for quantity totals
    delta_excl_vat: Decimal
    delta_incl_vat: Decimal | None
    reported: bool  # the partner's CDR had this field
    exceeds: bool


@dataclass(frozen=True, slots=True)
class Repricing:
    """Our pricing of a partner CDR and the per-total comparison."""

    cdr_id: str | None
    ours: PricedCdr
    differences: tuple[TotalDifference, ...]

    @property
    def has_discrepancy(self) -> bool:
        return any(d.exceeds for d in self.differences)

    @property
    def discrepancies(self) -> tuple[TotalDifference, ...]:
        return tuple(d for d in self.differences if d.exceeds)

    def difference(self, name: str) -> TotalDifference:
        for d in self.differences:
            if d.name == name:
                return d
        raise KeyError(name)


def _theirs(raw: Any, where: str) -> Decimal | None:
    if raw is None:
        return None
    try:
        return to_decimal(raw, where)
    except (TypeError, ValueError) as exc:
        raise InvalidSessionError(f"{where}: {exc}") from None


def _pick_tariff(cdr: Mapping[str, Any], tariff: Tariff | Mapping[str, Any] | None) -> Tariff:
    if tariff is not None:
        return parse_tariff(tariff)
    embedded = cdr.get("tariffs") or []
    if not isinstance(embedded, Sequence) or not embedded:
        raise TariffNotApplicableError("the CDR carries no tariff and none was given")
    ids = {p.get("tariff_id") for p in cdr.get("charging_periods") or () if isinstance(p, Mapping)} - {None}
    if len(embedded) == 1:
        return parse_tariff(embedded[0])
    matching = [t for t in embedded if isinstance(t, Mapping) and t.get("id") in ids]
    if len(matching) != 1:
        raise TariffNotApplicableError(
            f"cannot tell which of the CDR's {len(embedded)} tariffs priced it (period tariff ids {sorted(ids)})"
        )
    return parse_tariff(matching[0])


def reprice_cdr(
    cdr: Mapping[str, Any],
    tariff: Tariff | Mapping[str, Any] | None = None,
    *,
    time_zone: str | dt.tzinfo | None = "UTC",
    threshold: Decimal | str | int = "0.01",
    quantity_threshold: Decimal | str | int = "0.001",
    reservation_expired: bool | None = None,
    check_validity: bool = True,
) -> Repricing:
    """Price ``cdr``'s charging periods with ``tariff`` (default: the tariff embedded in the CDR)
    and compare every OCPI total.  ``time_zone`` is the Location's ``time_zone``.
    """
    if not isinstance(cdr, Mapping):
        raise InvalidSessionError("a CDR must be a JSON object")
    parsed = _pick_tariff(cdr, tariff)
    currency = cdr.get("currency")
    if currency is not None and currency != parsed.currency:
        raise TariffNotApplicableError(f"CDR is in {currency}, tariff {parsed.id} in {parsed.currency}")
    limit = to_decimal(threshold, "threshold")
    qty_limit = to_decimal(quantity_threshold, "quantity_threshold")
    ours = price_session(
        parsed,
        cdr.get("charging_periods") or [],
        start=cdr.get("start_date_time"),
        end=cdr.get("end_date_time"),
        time_zone=time_zone,
        reservation_expired=reservation_expired,
        check_validity=check_validity,
    )
    differences: list[TotalDifference] = []
    for name in COST_TOTALS:
        raw = cdr.get(name)
        mine = getattr(ours, name)
        if raw is not None and not isinstance(raw, Mapping):
            raise InvalidSessionError(f"{name} must be a Price object")
        excl = _theirs(None if raw is None else raw.get("excl_vat"), f"{name}.excl_vat")
        incl = _theirs(None if raw is None else raw.get("incl_vat"), f"{name}.incl_vat")
        delta_excl = mine.excl_vat - (ZERO if excl is None else excl)
        delta_incl = None if raw is not None and incl is None else mine.incl_vat - (ZERO if incl is None else incl)
        exceeds = abs(delta_excl) > limit or (delta_incl is not None and abs(delta_incl) > limit)
        differences.append(
            TotalDifference(name, excl, incl, mine.excl_vat, mine.incl_vat, delta_excl, delta_incl, raw is not None, exceeds)
        )
    for name in QUANTITY_TOTALS:
        theirs = _theirs(cdr.get(name), name)
        mine_q: Decimal = getattr(ours, name)
        delta = mine_q - (ZERO if theirs is None else theirs)
        differences.append(
            TotalDifference(name, theirs, None, mine_q, None, delta, None, theirs is not None, abs(delta) > qty_limit)
        )
    cdr_id = cdr.get("id")
    return Repricing(cdr_id=cdr_id if isinstance(cdr_id, str) else None, ours=ours, differences=tuple(differences))
