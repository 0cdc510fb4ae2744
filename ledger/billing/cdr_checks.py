"""Validation of an OCPI 2.2.1 CDR before anything is posted: a list of typed reasons, never an exception.

Why: the issue's rule is "a CDR with inconsistent totals, unknown tariff, negative energy, end before start, or a
currency mismatch is rejected into a review queue with the reason — never posted, never lost".  So this module
only *describes* what is wrong (`Problem`s with a `Reason` code, a JSON path and a human sentence); the caller
publishes a `BillingReview` event carrying the CDR verbatim when the list is not empty, and posts nothing.

Pure: no I/O.  The caller passes what it knows from its projections (the tariffs it knows and their currency, the
account's currency).

What is checked (OCPI 2.2.1, module CDRs and Types), with `tol` = `CheckPolicy` tolerances:
- shape: required fields present with the right JSON types (`MALFORMED`); DateTimes are RFC 3339, a missing
  zone designator means UTC (OCPI 16.2);
- `currency` is an ISO 4217 code we know (`UNKNOWN_CURRENCY`), equal to the account's currency, to every tariff
  embedded in the CDR and to every known tariff it references (`CURRENCY_MISMATCH`);
- every `tariff_id` of a charging period (and the tariff the session was priced with, if given) is either
  embedded in the CDR's `tariffs` or known to us (`UNKNOWN_TARIFF`); a CDR that names no tariff at all is
  `UNKNOWN_TARIFF` too unless `CheckPolicy.require_tariff` is off (nothing to re-price it from);
- `end_date_time` >= `start_date_time` (`END_BEFORE_START`); charging periods start inside the session, in
  order (`PERIOD_OUTSIDE_SESSION`);
- `total_energy` >= 0 (`NEGATIVE_ENERGY`).  A single period's ENERGY may be negative (OCPI: V2G fed back more
  than it charged) unless `CheckPolicy.allow_negative_period_energy` is off; the session total may not;
- costs and durations are not negative (`NEGATIVE_AMOUNT`, `NEGATIVE_QUANTITY`), except `total_cost` of a
  credit CDR, which OCPI makes the negative of the original's (and only that field);
- totals agree with each other (`TOTAL_COST_MISMATCH`), per OCPI's field definitions:
      total_cost = total_fixed_cost + total_energy_cost + total_time_cost + total_parking_cost
                   + total_reservation_cost            (absent parts count as 0; excl_vat and incl_vat each)
  (`total_fixed_cost` excludes fixed parts of parking and reservation, which are inside their own totals, so
  the five parts do not overlap).  Checked only when at least one part is present (OCPI lets a CPO send just
  `total_cost`); the incl_vat sum only when `total_cost` and every present part carry incl_vat.  A credit CDR
  satisfies total_cost = -(sum of parts).  One exception: a tariff's `min_price`/`max_price` caps the session
  cost but not the parts, so total_cost may equal the min (max) price when the parts sum below (above) it;
- VAT is not negative: |incl_vat| >= |excl_vat| with the same sign (`VAT_INCONSISTENT`);
- quantities agree: `total_energy` = sum of ENERGY dimensions (when any are given, `ENERGY_MISMATCH`);
  `total_time` = end - start in hours, `total_parking_time` <= `total_time`, sum of TIME dimensions <=
  `total_time` (`TIME_MISMATCH`); `total_parking_time` = sum of PARKING_TIME dimensions when given
  (`PARKING_TIME_MISMATCH`);
- a credit CDR names the CDR it credits and has total_cost <= 0 (`CREDIT_INCONSISTENT`).

Invariant: `check_cdr` never raises on any JSON value (tested with hypothesis); an empty result means
`read_totals` succeeds on the same CDR.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ledger.billing.money import ZERO, fmt, is_known_currency, to_decimal, unit

COST_PARTS: tuple[str, ...] = (
    "total_fixed_cost", "total_energy_cost", "total_time_cost", "total_parking_cost", "total_reservation_cost",
)
_HOUR = Decimal(3600)


class Reason(StrEnum):
    """Why a CDR went to the review queue.  Stable strings: they are stored in `BillingReview` events."""

    MALFORMED = "MALFORMED"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    UNKNOWN_TARIFF = "UNKNOWN_TARIFF"
    END_BEFORE_START = "END_BEFORE_START"
    PERIOD_OUTSIDE_SESSION = "PERIOD_OUTSIDE_SESSION"
    NEGATIVE_ENERGY = "NEGATIVE_ENERGY"
    NEGATIVE_AMOUNT = "NEGATIVE_AMOUNT"
    NEGATIVE_QUANTITY = "NEGATIVE_QUANTITY"
    TOTAL_COST_MISMATCH = "TOTAL_COST_MISMATCH"
    VAT_INCONSISTENT = "VAT_INCONSISTENT"
    ENERGY_MISMATCH = "ENERGY_MISMATCH"
    TIME_MISMATCH = "TIME_MISMATCH"
    PARKING_TIME_MISMATCH = "PARKING_TIME_MISMATCH"
    CREDIT_INCONSISTENT = "CREDIT_INCONSISTENT"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a CDR cannot be posted: the code, where (a JSON path such as `total_cost.incl_vat` or
    `charging_periods[2].dimensions[0].volume`; `$` for the whole document) and a sentence for the reviewer."""

    reason: Reason
    field: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.reason.value, "field": self.field, "detail": self.detail}


@dataclass(frozen=True)
class ReviewProblem:
    """A reason billing cannot post that is not about a CDR's figures (no account, pricing failed, a credit CDR,
    an unknown location): free-form code, same shape on the review queue as `Problem`."""

    code: str
    field: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """Tolerances.  Amounts are compared within `amount_tolerance_units` minor units of the CDR's currency
    (parts are rounded independently by CPOs, so a cent of difference is rounding, not an error)."""

    amount_tolerance_units: int = 1
    energy_tolerance_kwh: Decimal = Decimal("0.01")
    time_tolerance: timedelta = timedelta(minutes=1)
    require_tariff: bool = True
    allow_negative_period_energy: bool = True


DEFAULT_POLICY = CheckPolicy()


@dataclass(frozen=True, slots=True)
class Price:
    """OCPI Price: excl_vat always, incl_vat when VAT is known."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None

    @property
    def vat(self) -> Decimal | None:
        return None if self.incl_vat is None else self.incl_vat - self.excl_vat


@dataclass(frozen=True)
class CdrTotals:
    """The money and quantity totals of a checked CDR, as Decimals (unrounded, as the CPO sent them)."""

    currency: str
    total_cost: Price
    parts: Mapping[str, Price] = field(default_factory=dict)
    total_energy: Decimal = ZERO
    total_time: Decimal = ZERO
    total_parking_time: Decimal | None = None
    credit: bool = False


class CdrRejected(ValueError):
    """`read_totals` on a CDR that fails `check_cdr`; `.problems` says why."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__("; ".join(f"{p.reason}: {p.field}: {p.detail}" for p in problems))
        self.problems = problems


def parse_cdr_json(text: str | bytes) -> Any:
    """Parse CDR text keeping every number exact (JSON floats become Decimals, never binary floats)."""
    return json.loads(text, parse_float=Decimal)


def parse_datetime(value: Any) -> datetime:
    """OCPI DateTime -> aware UTC datetime.  No zone designator means UTC (OCPI 16.2).  ValueError otherwise."""
    if not isinstance(value, str) or "T" not in value:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def check_cdr_text(text: str | bytes, **kwargs: Any) -> tuple[Problem, ...]:
    """`check_cdr` on raw text; text that is not JSON is one MALFORMED problem (nothing raised)."""
    try:
        doc = parse_cdr_json(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return (Problem(Reason.MALFORMED, "$", f"not JSON: {exc}"),)
    return check_cdr(doc, **kwargs)


def check_cdr(
    cdr: Any,
    *,
    known_tariffs: Mapping[str, str] | None = None,
    expected_currency: str | None = None,
    tariff_id: str | None = None,
    policy: CheckPolicy = DEFAULT_POLICY,
) -> tuple[Problem, ...]:
    """Every problem of `cdr` (a parsed OCPI CDR object); empty when it may be posted.

    known_tariffs: tariff id -> currency of the tariffs we know for the CDR's party (our own for an own-station
      session, the partner's pulled tariffs for a roamed one).
    expected_currency: the currency of the account that will be charged (None: not checked).
    tariff_id: the tariff the session was priced with, when the CDR itself may not name it.
    """
    return tuple(_Checker(cdr, known_tariffs or {}, expected_currency, tariff_id, policy).run())


def read_totals(cdr: Any, **kwargs: Any) -> CdrTotals:
    """The totals of a CDR that passes `check_cdr(cdr, **kwargs)`; `CdrRejected` otherwise."""
    problems = check_cdr(cdr, **kwargs)
    if problems:
        raise CdrRejected(problems)
    parts = {name: _price_of(cdr[name]) for name in COST_PARTS if cdr.get(name) is not None}
    ptime = cdr.get("total_parking_time")
    return CdrTotals(
        currency=cdr["currency"],
        total_cost=_price_of(cdr["total_cost"]),
        parts=parts,
        total_energy=to_decimal(cdr["total_energy"]),
        total_time=to_decimal(cdr["total_time"]),
        total_parking_time=None if ptime is None else to_decimal(ptime),
        credit=cdr.get("credit") is True,
    )


def cost_totals(obj: Mapping[str, Any], currency: str | None = None) -> CdrTotals:
    """Totals from an OCPI-shaped object we produced ourselves (e.g. the tariff engine's re-pricing,
    `PricedCdr.to_ocpi()`), without the full CDR checks: `total_cost` and the cost parts present, the quantities
    when present.  ValueError on a malformed figure.  For a partner's CDR use `read_totals` (checked)."""
    cur = currency or obj.get("currency")
    if not isinstance(cur, str):
        raise ValueError("a currency is required")
    try:
        parts = {name: _price_of(obj[name]) for name in COST_PARTS if obj.get(name) is not None}
        ptime = obj.get("total_parking_time")
        return CdrTotals(
            currency=cur, total_cost=_price_of(obj["total_cost"]), parts=parts,
            total_energy=to_decimal(obj.get("total_energy", 0)), total_time=to_decimal(obj.get("total_time", 0)),
            total_parking_time=None if ptime is None else to_decimal(ptime), credit=obj.get("credit") is True)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not OCPI cost totals: {exc!r}") from None


def _price_of(obj: Mapping[str, Any]) -> Price:
    incl = obj.get("incl_vat")
    return Price(to_decimal(obj["excl_vat"]), None if incl is None else to_decimal(incl))


def _hours(d: timedelta) -> Decimal:
    return Decimal(d // timedelta(microseconds=1)) / Decimal(3_600_000_000)


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        return False
    try:
        to_decimal(v)
        return True
    except ValueError:
        return False


class _Checker:
    def __init__(self, cdr: Any, known: Mapping[str, str], expected_currency: str | None,
                 tariff_id: str | None, policy: CheckPolicy) -> None:
        self.cdr = cdr
        self.known = known
        self.expected_currency = expected_currency
        self.tariff_id = tariff_id
        self.policy = policy
        self.problems: list[Problem] = []

    def add(self, reason: Reason, path: str, detail: str) -> None:
        self.problems.append(Problem(reason, path, detail))

    # -- typed field readers: record MALFORMED and return None when absent/wrong ----------------------------
    def number(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> Decimal | None:
        v = obj.get(key)
        if v is None:
            if required:
                self.add(Reason.MALFORMED, path, "required number missing")
            return None
        if not _is_number(v):
            self.add(Reason.MALFORMED, path, f"not a number: {v!r}"[:200])
            return None
        return to_decimal(v)

    def price(self, obj: Mapping[str, Any], key: str, required: bool = False) -> Price | None:
        v = obj.get(key)
        if v is None:
            if required:
                self.add(Reason.MALFORMED, key, "required Price missing")
            return None
        if not isinstance(v, Mapping):
            self.add(Reason.MALFORMED, key, "Price must be an object with excl_vat (and incl_vat)")
            return None
        excl = self.number(v, "excl_vat", f"{key}.excl_vat")
        incl = self.number(v, "incl_vat", f"{key}.incl_vat", required=False)
        if excl is None or (v.get("incl_vat") is not None and incl is None):
            return None
        return Price(excl, incl)

    def when(self, obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
        v = obj.get(key)
        if v is None:
            self.add(Reason.MALFORMED, path, "required DateTime missing")
            return None
        try:
            return parse_datetime(v)
        except (ValueError, TypeError):
            self.add(Reason.MALFORMED, path, f"not an RFC 3339 DateTime: {v!r}"[:200])
            return None

    # -- the checks -------------------------------------------------------------------------------------
    def run(self) -> list[Problem]:
        if not isinstance(self.cdr, Mapping):
            self.add(Reason.MALFORMED, "$", f"a CDR is a JSON object, got {type(self.cdr).__name__}")
            return self.problems
        try:
            currency = self.check_currency()
            start, end = self.check_times()
            self.check_tariffs(currency)
            self.check_periods(start, end)
            self.check_costs(currency)
        except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
            # absurd values (exponents beyond Decimal's range, ...): still a reason, never a crash or a loss
            self.add(Reason.MALFORMED, "$", f"could not check the CDR: {type(exc).__name__}: {exc}"[:300])
        return self.problems

    def check_currency(self) -> str | None:
        cur = self.cdr.get("currency")
        if cur is None:
            self.add(Reason.MALFORMED, "currency", "required ISO 4217 currency missing")
            return None
        if not is_known_currency(cur):
            self.add(Reason.UNKNOWN_CURRENCY, "currency", f"unknown ISO 4217 currency {cur!r}"[:200])
            return None
        if self.expected_currency is not None and cur != self.expected_currency:
            self.add(Reason.CURRENCY_MISMATCH, "currency",
                     f"CDR is in {cur}, the account is in {self.expected_currency}")
        return cur

    def check_times(self) -> tuple[datetime | None, datetime | None]:
        start = self.when(self.cdr, "start_date_time", "start_date_time")
        end = self.when(self.cdr, "end_date_time", "end_date_time")
        if start is not None and end is not None and end < start:
            self.add(Reason.END_BEFORE_START, "end_date_time",
                     f"session ends {end.isoformat()} before it starts {start.isoformat()}")
        total_time = self.number(self.cdr, "total_time", "total_time")
        ptime = self.number(self.cdr, "total_parking_time", "total_parking_time", required=False)
        for name, v in (("total_time", total_time), ("total_parking_time", ptime)):
            if v is not None and v < 0:
                self.add(Reason.NEGATIVE_QUANTITY, name, f"{name} is negative: {fmt(v)} h")
        if start is not None and end is not None and end >= start and total_time is not None and total_time >= 0:
            hours = _hours(end - start)
            if abs(hours - total_time) > self._time_tol():
                self.add(Reason.TIME_MISMATCH, "total_time",
                         f"total_time {fmt(total_time)} h but the session lasted {hours:.4f} h")
        if total_time is not None and ptime is not None and ptime >= 0 and ptime > total_time + self._time_tol():
            self.add(Reason.TIME_MISMATCH, "total_parking_time",
                     f"parked {fmt(ptime)} h of a {fmt(total_time)} h session")
        energy = self.number(self.cdr, "total_energy", "total_energy")
        if energy is not None and energy < 0:
            self.add(Reason.NEGATIVE_ENERGY, "total_energy", f"total_energy is negative: {fmt(energy)} kWh")
        return start, end

    def _time_tol(self) -> Decimal:
        return _hours(self.policy.time_tolerance)

    def check_tariffs(self, currency: str | None) -> None:
        embedded: dict[str, Any] = {}
        tariffs = self.cdr.get("tariffs")
        if tariffs is not None and not isinstance(tariffs, list):
            self.add(Reason.MALFORMED, "tariffs", "tariffs must be a list")
            tariffs = []
        for i, t in enumerate(tariffs or []):
            if not isinstance(t, Mapping) or not isinstance(t.get("id"), str):
                self.add(Reason.MALFORMED, f"tariffs[{i}]", "an embedded tariff needs a string id")
                continue
            embedded[t["id"]] = t
            tcur = t.get("currency")
            if currency is not None and tcur is not None and tcur != currency:
                self.add(Reason.CURRENCY_MISMATCH, f"tariffs[{i}].currency",
                         f"tariff {t['id']!r} is in {tcur!r}, the CDR in {currency}"[:200])
        referenced: list[tuple[str, str]] = []
        if self.tariff_id is not None:
            referenced.append(("tariff_id", self.tariff_id))
        periods = self.cdr.get("charging_periods")
        for i, p in enumerate(periods if isinstance(periods, list) else []):
            if isinstance(p, Mapping) and p.get("tariff_id") is not None:
                tid = p["tariff_id"]
                if not isinstance(tid, str):
                    self.add(Reason.MALFORMED, f"charging_periods[{i}].tariff_id", "tariff_id must be a string")
                    continue
                referenced.append((f"charging_periods[{i}].tariff_id", tid))
        seen: set[str] = set()
        for path, tid in referenced:
            if tid in seen:
                continue
            seen.add(tid)
            if tid in embedded:
                continue
            if tid not in self.known:
                self.add(Reason.UNKNOWN_TARIFF, path, f"tariff {tid!r} is neither in the CDR nor known to us"[:200])
            elif currency is not None and self.known[tid] != currency:
                self.add(Reason.CURRENCY_MISMATCH, path,
                         f"tariff {tid!r} is in {self.known[tid]}, the CDR in {currency}"[:200])
        if not referenced and not embedded and self.policy.require_tariff:
            self.add(Reason.UNKNOWN_TARIFF, "tariffs", "the CDR names no tariff: nothing to price it from")

    def check_periods(self, start: datetime | None, end: datetime | None) -> None:
        periods = self.cdr.get("charging_periods")
        if not isinstance(periods, list) or not periods:
            self.add(Reason.MALFORMED, "charging_periods", "at least one charging period is required")
            return
        sums: dict[str, Decimal] = {}
        seen: set[str] = set()
        previous: datetime | None = None
        for i, p in enumerate(periods):
            path = f"charging_periods[{i}]"
            if not isinstance(p, Mapping):
                self.add(Reason.MALFORMED, path, "a charging period is an object")
                continue
            at = self.when(p, "start_date_time", f"{path}.start_date_time")
            if at is not None:
                if (start is not None and at < start) or (end is not None and at > end):
                    self.add(Reason.PERIOD_OUTSIDE_SESSION, f"{path}.start_date_time",
                             f"period starts {at.isoformat()} outside the session")
                if previous is not None and at < previous:
                    self.add(Reason.PERIOD_OUTSIDE_SESSION, f"{path}.start_date_time",
                             "charging periods are not in time order")
                previous = at
            dims = p.get("dimensions")
            if not isinstance(dims, list) or not dims:
                self.add(Reason.MALFORMED, f"{path}.dimensions", "at least one dimension is required")
                continue
            for j, d in enumerate(dims):
                dpath = f"{path}.dimensions[{j}]"
                if not isinstance(d, Mapping) or not isinstance(d.get("type"), str):
                    self.add(Reason.MALFORMED, dpath, "a dimension needs a type and a volume")
                    continue
                vol = self.number(d, "volume", f"{dpath}.volume")
                if vol is None:
                    continue
                kind = d["type"]
                if kind == "ENERGY" and vol < 0 and not self.policy.allow_negative_period_energy:
                    self.add(Reason.NEGATIVE_ENERGY, f"{dpath}.volume", f"negative energy {fmt(vol)} kWh")
                elif kind in ("TIME", "PARKING_TIME", "RESERVATION_TIME") and vol < 0:
                    self.add(Reason.NEGATIVE_QUANTITY, f"{dpath}.volume", f"negative {kind} {fmt(vol)} h")
                sums[kind] = sums.get(kind, ZERO) + vol
                seen.add(kind)
        energy = self.cdr.get("total_energy")
        if "ENERGY" in seen and _is_number(energy):
            e = to_decimal(energy)
            if abs(e - sums["ENERGY"]) > self.policy.energy_tolerance_kwh:
                self.add(Reason.ENERGY_MISMATCH, "total_energy",
                         f"total_energy {fmt(e)} kWh but the periods add up to {fmt(sums['ENERGY'])} kWh")
        ttime = self.cdr.get("total_time")
        if "TIME" in seen and _is_number(ttime) and sums["TIME"] > to_decimal(ttime) + self._time_tol():
            self.add(Reason.TIME_MISMATCH, "total_time",
                     f"charging TIME periods add up to {fmt(sums['TIME'])} h, more than total_time {ttime}")
        ptime = self.cdr.get("total_parking_time")
        if "PARKING_TIME" in seen and _is_number(ptime):
            p_total = to_decimal(ptime)
            if abs(p_total - sums["PARKING_TIME"]) > self._time_tol():
                self.add(Reason.PARKING_TIME_MISMATCH, "total_parking_time",
                         f"total_parking_time {fmt(p_total)} h but PARKING_TIME periods add up to "
                         f"{fmt(sums['PARKING_TIME'])} h")

    def check_costs(self, currency: str | None) -> None:
        credit = self.cdr.get("credit")
        if credit is not None and not isinstance(credit, bool):
            self.add(Reason.MALFORMED, "credit", "credit must be a boolean")
            credit = None
        is_credit = credit is True
        if is_credit and not (isinstance(self.cdr.get("credit_reference_id"), str)
                              and self.cdr["credit_reference_id"]):
            self.add(Reason.CREDIT_INCONSISTENT, "credit_reference_id",
                     "a credit CDR must name the CDR it credits")
        total = self.price(self.cdr, "total_cost", required=True)
        parts = {name: self.price(self.cdr, name) for name in COST_PARTS}
        present = {k: v for k, v in parts.items() if v is not None}
        tol = unit(currency) * self.policy.amount_tolerance_units if currency else Decimal("0.01")

        for name, p in present.items():
            for which, v in (("excl_vat", p.excl_vat), ("incl_vat", p.incl_vat)):
                if v is not None and v < 0:
                    self.add(Reason.NEGATIVE_AMOUNT, f"{name}.{which}", f"{name} is negative: {fmt(v)}")
            self._vat(name, p, tol)
        if total is None:
            return
        self._vat("total_cost", total, tol)
        if is_credit:
            if total.excl_vat > 0 or (total.incl_vat is not None and total.incl_vat > 0):
                self.add(Reason.CREDIT_INCONSISTENT, "total_cost",
                         "a credit CDR carries the negative total_cost of the CDR it credits")
        else:
            for which, v in (("excl_vat", total.excl_vat), ("incl_vat", total.incl_vat)):
                if v is not None and v < 0:
                    self.add(Reason.NEGATIVE_AMOUNT, f"total_cost.{which}",
                             f"total_cost is negative ({fmt(v)}) but the CDR is not a credit CDR")
        if not present:
            return
        sign = Decimal(-1) if is_credit else Decimal(1)
        caps = self._caps()
        excl_sum = sum((p.excl_vat for p in present.values()), ZERO)
        self._sum("excl_vat", sign * total.excl_vat, excl_sum, present, caps, tol)
        if total.incl_vat is not None and all(p.incl_vat is not None for p in present.values()):
            incl_sum = sum((p.incl_vat for p in present.values() if p.incl_vat is not None), ZERO)
            self._sum("incl_vat", sign * total.incl_vat, incl_sum, present, caps, tol)

    def _vat(self, name: str, p: Price, tol: Decimal) -> None:
        if p.incl_vat is None:
            return
        if (p.excl_vat > 0 and p.incl_vat < p.excl_vat - tol) or (p.excl_vat < 0 and p.incl_vat > p.excl_vat + tol) \
                or (p.excl_vat == 0 and abs(p.incl_vat) > tol) or (p.excl_vat * p.incl_vat < 0):
            self.add(Reason.VAT_INCONSISTENT, f"{name}.incl_vat",
                     f"{name}: incl_vat {fmt(p.incl_vat)} implies negative VAT on excl_vat {fmt(p.excl_vat)}")

    def _caps(self) -> list[tuple[str, Price]]:
        """min_price/max_price of the embedded tariffs (they cap total_cost, not the parts)."""
        caps: list[tuple[str, Price]] = []
        for t in self.cdr.get("tariffs") or []:
            if not isinstance(t, Mapping):
                continue
            for kind in ("min_price", "max_price"):
                v = t.get(kind)
                if isinstance(v, Mapping) and _is_number(v.get("excl_vat")):
                    incl = v.get("incl_vat")
                    caps.append((kind, Price(to_decimal(v["excl_vat"]),
                                             to_decimal(incl) if _is_number(incl) else None)))
        return caps

    def _sum(self, which: str, total: Decimal, parts_sum: Decimal, present: Mapping[str, Price],
             caps: list[tuple[str, Price]], tol: Decimal) -> None:
        if abs(total - parts_sum) <= tol:
            return
        for kind, cap in caps:
            cap_v = cap.excl_vat if which == "excl_vat" else cap.incl_vat
            if cap_v is None or abs(total - cap_v) > tol:
                continue
            if (kind == "min_price" and parts_sum < cap_v) or (kind == "max_price" and parts_sum > cap_v):
                return
        terms = " + ".join(f"{n.removeprefix('total_').removesuffix('_cost')} "
                           f"{fmt(getattr(p, which) or ZERO)}" for n, p in present.items())
        self.add(Reason.TOTAL_COST_MISMATCH, f"total_cost.{which}",
                 f"total_cost.{which} {fmt(total)} != sum of parts {fmt(parts_sum)} ({terms})")
