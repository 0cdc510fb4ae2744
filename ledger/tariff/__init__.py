"""Pure OCPI 2.2.1 tariff engine: price a charging session into CDR totals, with no I/O.

What it is for: billing (issue 5) prices our own OCPP sessions and re-checks partners' OCPI
CDRs; the driver API shows tariffs in human terms.  Everything here is deterministic maths on
immutable inputs -- no clock, no network, no database, no global state -- so it is tested
exhaustively and can run inside a stream processor or a replay alike.

Public API (all re-exported here):

* :func:`parse_tariff` ``(raw: Mapping | Tariff) -> Tariff`` -- validate + compile once, cache it.
* :func:`price_session` ``(tariff, charging_periods, *, start=None, end=None, time_zone="UTC",
  reservation_expired=None, check_validity=True) -> PricedCdr`` -- the engine.
* :func:`build_charging_periods` ``(samples, *, tariff=None, time_zone="UTC",
  reservation_start=None) -> BuiltSession`` -- OCPP meter samples -> OCPI periods, split where
  the tariff can change; :func:`price_samples` does both steps.
* :func:`reprice_cdr` ``(cdr, tariff=None, *, time_zone="UTC", threshold="0.01", ...) ->
  Repricing`` -- re-price a partner CDR and list differences per total.
* :func:`describe_tariff` ``(tariff, *, include_vat=True) -> str`` -- the tariff in words.

Rounding rule (money is Decimal, never float): amounts are computed exactly, ``min_price`` /
``max_price`` are applied to the exact session total, then **each CDR total is rounded on its
own, half-up, to the currency's ISO 4217 minor units**.  This is what the OCPI 2.2.1 worked
examples do (complex tariff: 2.875 + 3.30 + 4.125 reported as 10.30, not the 10.31 that
rounding the parts first would give; 5.625 -> 5.63 is half-up, not banker's).  Component
totals are therefore an analysis: post ``total_cost``.  The full rule set (element choice,
restriction bounds, step_size, reservations, FLAT) is documented in :mod:`ledger.tariff.engine`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.tariff.builder import BuiltSession, MeterSample, build_charging_periods
from ledger.tariff.describe import alt_text, describe_tariff, format_money
from ledger.tariff.engine import (
    COST_TOTALS,
    QUANTITY_TOTALS,
    BilledComponent,
    PricedCdr,
    PricedPeriod,
    price_session,
)
from ledger.tariff.errors import (
    InvalidSessionError,
    InvalidTariffError,
    TariffEngineError,
    TariffNotApplicableError,
    UnknownCurrencyError,
)
from ledger.tariff.model import Dimension, Phase, Tariff, parse_tariff
from ledger.tariff.money import MINOR_UNITS, Price, minor_units, round_money
from ledger.tariff.periods import ChargingPeriod, parse_charging_periods
from ledger.tariff.reconcile import Repricing, TotalDifference, reprice_cdr


def price_samples(
    tariff: Tariff | Mapping[str, Any],
    samples: Sequence[MeterSample | Mapping[str, Any]],
    *,
    time_zone: str | dt.tzinfo | None = "UTC",
    reservation_start: dt.datetime | None = None,
    reservation_expired: bool | None = None,
    check_validity: bool = True,
) -> PricedCdr:
    """Price an OCPP session from its meter samples (build the periods, then price them)."""
    parsed = parse_tariff(tariff)
    built = build_charging_periods(samples, tariff=parsed, time_zone=time_zone, reservation_start=reservation_start)
    return price_session(
        parsed,
        built.periods,
        start=built.start,
        end=built.end,
        time_zone=time_zone,
        reservation_expired=reservation_expired,
        check_validity=check_validity,
    )


__all__ = [
    "COST_TOTALS",
    "MINOR_UNITS",
    "QUANTITY_TOTALS",
    "BilledComponent",
    "BuiltSession",
    "ChargingPeriod",
    "Dimension",
    "InvalidSessionError",
    "InvalidTariffError",
    "MeterSample",
    "Phase",
    "Price",
    "PricedCdr",
    "PricedPeriod",
    "Repricing",
    "Tariff",
    "TariffEngineError",
    "TariffNotApplicableError",
    "TotalDifference",
    "UnknownCurrencyError",
    "alt_text",
    "build_charging_periods",
    "describe_tariff",
    "format_money",
    "minor_units",
    "parse_charging_periods",
    "parse_tariff",
    "price_samples",
    "price_session",
    "reprice_cdr",
    "round_money",
]
