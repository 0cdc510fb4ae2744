"""Monthly invoices (per driver, per fleet), the fleet CSV report and the energy-bill export: pure builders.

Why pure: an invoice is a *view* of priced sessions for a calendar month.  Built from the same sessions it is the
same invoice, byte for byte, so replaying the log re-issues identical `InvoiceIssued` events (same numbers, same
totals) and the sink's dedup holds.

Rules and invariants (tested):
- a session belongs to the month in which it *ended*, in the account's time zone (a session that ends at
  00:30 on 1 April in Europe/Amsterdam is an April session although it is still March in UTC);
- one invoice per (account, month, currency); a month without sessions has no invoice;
- the invoice number is deterministic: `CV-{D|F}-{YYYYMM}-{10 base32 chars of sha256(kind, account, currency)}-{CUR}`.
  Each account is its own series and the month is its sequence, so numbers are unique per account and month
  and a replay produces the same number without a counter;
- amounts are what the driver was charged: each session's lines are in minor units and add up to the session's
  rounded gross and net (`priced_session_from_cdr` puts any rounding cent on the largest line and a min/max-price
  cap on its own adjustment line);
- VAT breakdown per rate = sum of the lines at that rate (line-level VAT, as charged per session); the
  breakdown adds up to the invoice totals; gross = net + VAT on every line, group, rate and invoice;
- the fleet invoice groups lines by (cost centre, driver), each group with subtotals that add up to the invoice;
- the energy-bill export totals the sessions forwarded to one energy-supplier customer account in a period.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from ledger.billing.cdr_checks import COST_PARTS, CdrTotals, Price, parse_datetime, read_totals
from ledger.billing.money import ZERO, fmt, quantize, unit

_RATE_Q = Decimal("0.01")


class InvoiceKind(StrEnum):
    DRIVER = "DRIVER"
    FLEET = "FLEET"


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One priced component of a session, in whole minor units: net + vat = gross."""

    component: str  # ENERGY | TIME | PARKING | FIXED | RESERVATION | ROAMING_FEE | ADJUSTMENT | SESSION
    description: str
    net: Decimal
    vat_rate: Decimal  # percent, e.g. 21
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


@dataclass(frozen=True)
class PricedSession:
    """What invoices need of a priced session.  Times are aware datetimes; `account_id` is the driver account
    that used the session; `fleet_id` set means the fleet pays (then `cost_centre` groups it)."""

    session_id: str
    account_id: str
    currency: str
    started_at: datetime
    ended_at: datetime
    energy_kwh: Decimal
    charges: tuple[ChargeLine, ...]
    location: str = ""
    fleet_id: str | None = None
    cost_centre: str | None = None
    source: str = "OWN"

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None or self.ended_at.tzinfo is None:
            raise ValueError("session times must be time-zone aware")
        for c in self.charges:
            if quantize(c.net, self.currency) != c.net or quantize(c.vat, self.currency) != c.vat:
                raise ValueError(f"charge line {c.description!r} is not in whole {self.currency} minor units")

    @property
    def net(self) -> Decimal:
        return sum((c.net for c in self.charges), ZERO)

    @property
    def vat(self) -> Decimal:
        return sum((c.vat for c in self.charges), ZERO)

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


# -- from a CDR to charge lines -------------------------------------------------------------------------------

_PART_COMPONENT = {
    "total_fixed_cost": ("FIXED", "Start/fixed fee", "FLAT"),
    "total_energy_cost": ("ENERGY", "Energy", "ENERGY"),
    "total_time_cost": ("TIME", "Charging time", "TIME"),
    "total_parking_cost": ("PARKING", "Parking time", "PARKING_TIME"),
    "total_reservation_cost": ("RESERVATION", "Reservation", None),
}


def _tariff_vat_rates(tariffs: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """OCPI price-component type -> VAT %, where all tariffs agree on one rate for that type."""
    seen: dict[str, set[Decimal]] = {}
    for t in tariffs:
        for el in t.get("elements") or []:
            for pc in (el or {}).get("price_components") or []:
                if isinstance(pc, Mapping) and isinstance(pc.get("type"), str) and pc.get("vat") is not None:
                    try:
                        seen.setdefault(pc["type"], set()).add(Decimal(str(pc["vat"])).quantize(_RATE_Q))
                    except ArithmeticError:
                        continue
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def _derived_rate(net: Decimal, vat: Decimal) -> Decimal:
    return ZERO.quantize(_RATE_Q) if net == 0 else (vat / net * 100).quantize(Decimal("0.1")).quantize(_RATE_Q)


def charge_lines(totals: CdrTotals, *, vat_rates: Mapping[str, Decimal] | None = None,
                 roaming_fee: tuple[Decimal, Decimal, Decimal] | None = None,
                 charged: Price | None = None) -> tuple[ChargeLine, ...]:
    """Charge lines of a session from its CDR totals.

    vat_rates: OCPI price-component type (FLAT, ENERGY, TIME, PARKING_TIME) -> VAT % (from the tariff); where
      missing, the rate is derived from the part's incl/excl (to 0.1 %).
    roaming_fee: (net, vat, rate %) of our fee on a roamed session, as posted.
    charged: what the session's posting used as total (default: `totals.total_cost`); lines are reconciled to it.

    The lines add up exactly to the rounded charged net and gross (see the module docstring)."""
    cur = totals.currency
    rates = dict(vat_rates or {})
    charged = charged or totals.total_cost
    target_net = quantize(charged.excl_vat, cur)
    target_gross = quantize(charged.incl_vat, cur) if charged.incl_vat is not None else target_net
    sign = Decimal(-1) if totals.credit else Decimal(1)  # a credit CDR negates total_cost only (OCPI)
    lines: list[ChargeLine] = []
    for name in COST_PARTS:
        p = totals.parts.get(name)
        if p is None:
            continue
        component, label, ptype = _PART_COMPONENT[name]
        net = sign * quantize(p.excl_vat, cur)
        gross = sign * quantize(p.incl_vat, cur) if p.incl_vat is not None else net
        if net == 0 and gross == 0:
            continue
        rate = rates.get(ptype) if ptype else None
        lines.append(ChargeLine(component, label, net, rate if rate is not None else _derived_rate(net, gross - net),
                                gross - net))
    if not lines:
        lines.append(ChargeLine("SESSION", "Charging session", target_net,
                                _derived_rate(target_net, target_gross - target_net), target_gross - target_net))
    else:
        d_net = target_net - sum((ln.net for ln in lines), ZERO)
        d_gross = target_gross - sum((ln.gross for ln in lines), ZERO)
        if d_net or d_gross:
            small = abs(d_net) <= unit(cur) * len(lines) and abs(d_gross) <= unit(cur) * len(lines)
            if small:  # independent rounding of the parts: the cent goes on the largest line
                i = max(range(len(lines)), key=lambda k: (abs(lines[k].gross), -k))
                ln = lines[i]
                lines[i] = ChargeLine(ln.component, ln.description, ln.net + d_net, ln.vat_rate,
                                      ln.vat + d_gross - d_net)
            else:  # a tariff's min/max price capped the session: say so on its own line
                lines.append(ChargeLine("ADJUSTMENT", "Minimum/maximum price adjustment", d_net,
                                        _derived_rate(d_net, d_gross - d_net), d_gross - d_net))
    if roaming_fee is not None and (roaming_fee[0] or roaming_fee[1]):
        fee_net, fee_vat, fee_rate = roaming_fee
        lines.append(ChargeLine("ROAMING_FEE", "Roaming service fee", fee_net, fee_rate.quantize(_RATE_Q), fee_vat))
    return tuple(lines)


def priced_session_from_cdr(cdr: Mapping[str, Any], *, session_id: str, account_id: str,
                            tariffs: Iterable[Mapping[str, Any]] = (), fleet_id: str | None = None,
                            cost_centre: str | None = None, source: str = "OWN",
                            roaming_fee: tuple[Decimal, Decimal, Decimal] | None = None,
                            check_kwargs: Mapping[str, Any] | None = None) -> PricedSession:
    """A `PricedSession` from a CDR that passes `check_cdr` (CdrRejected otherwise).  VAT rates come from the
    CDR's embedded tariffs plus `tariffs` (our known tariff objects)."""
    totals = read_totals(cdr, **dict(check_kwargs or {}))
    rates = _tariff_vat_rates([*(cdr.get("tariffs") or []), *tariffs])
    loc = cdr.get("cdr_location") or {}
    label = ", ".join(str(x) for x in (loc.get("name"), loc.get("address"), loc.get("city")) if x)
    return PricedSession(
        session_id=session_id, account_id=account_id, currency=totals.currency,
        started_at=parse_datetime(cdr["start_date_time"]), ended_at=parse_datetime(cdr["end_date_time"]),
        energy_kwh=totals.total_energy, charges=charge_lines(totals, vat_rates=rates, roaming_fee=roaming_fee),
        location=label, fleet_id=fleet_id, cost_centre=cost_centre, source=source)


# -- invoices -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InvoiceLine:
    session_id: str
    account_id: str
    cost_centre: str | None
    started_at: datetime  # in the invoice's time zone
    ended_at: datetime
    location: str
    energy_kwh: Decimal
    component: str
    description: str
    net: Decimal
    vat_rate: Decimal
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    rate: Decimal
    net: Decimal
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


@dataclass(frozen=True, slots=True)
class LineGroup:
    """Fleet invoices: the lines of one (cost centre, driver) with subtotals."""

    cost_centre: str | None
    account_id: str
    lines: tuple[InvoiceLine, ...]
    net: Decimal
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


@dataclass(frozen=True)
class Invoice:
    number: str
    kind: InvoiceKind
    account_id: str  # driver account or fleet id
    year: int
    month: int
    time_zone: str
    period_start: datetime  # aware, local midnight on the 1st
    period_end: datetime  # exclusive
    currency: str
    lines: tuple[InvoiceLine, ...]
    vat_breakdown: tuple[VatBreakdown, ...]
    net: Decimal
    vat: Decimal
    groups: tuple[LineGroup, ...] = ()

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat

    @property
    def session_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ln.session_id for ln in self.lines))

    @property
    def energy_kwh(self) -> Decimal:
        seen: dict[str, Decimal] = {}
        for ln in self.lines:
            seen.setdefault(ln.session_id, ln.energy_kwh)
        return sum(seen.values(), ZERO)

    @property
    def period(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def month_bounds(year: int, month: int, tz: str) -> tuple[datetime, datetime]:
    """[local midnight on the 1st, local midnight on the 1st of the next month) in `tz`, aware."""
    zone = ZoneInfo(tz)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start, end


def invoice_number(kind: InvoiceKind, account_id: str, year: int, month: int, currency: str) -> str:
    digest = hashlib.sha256(f"{kind.value}\x1f{account_id}\x1f{currency}".encode()).digest()
    code = base64.b32encode(digest).decode()[:10]
    return f"CV-{kind.value[0]}-{year:04d}{month:02d}-{code}-{currency}"


def _in_month(s: PricedSession, start: datetime, end: datetime) -> bool:
    return start <= s.ended_at < end


def _lines(sessions: Sequence[PricedSession], zone: ZoneInfo) -> list[InvoiceLine]:
    out = []
    for s in sessions:
        for c in s.charges:
            out.append(InvoiceLine(s.session_id, s.account_id, s.cost_centre, s.started_at.astimezone(zone),
                                   s.ended_at.astimezone(zone), s.location, s.energy_kwh, c.component,
                                   c.description, c.net, c.vat_rate, c.vat))
    return out


def _breakdown(lines: Sequence[InvoiceLine]) -> tuple[VatBreakdown, ...]:
    per: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for ln in lines:
        n, v = per.get(ln.vat_rate, (ZERO, ZERO))
        per[ln.vat_rate] = (n + ln.net, v + ln.vat)
    return tuple(VatBreakdown(rate, n, v) for rate, (n, v) in sorted(per.items()))


def _build(kind: InvoiceKind, account_id: str, sessions: Sequence[PricedSession], year: int, month: int,
           tz: str) -> list[Invoice]:
    start, end = month_bounds(year, month, tz)
    zone = ZoneInfo(tz)
    chosen = [s for s in sessions if _in_month(s, start, end)]
    invoices = []
    for cur in sorted({s.currency for s in chosen}):
        mine = sorted((s for s in chosen if s.currency == cur),
                      key=lambda s: ((s.cost_centre or "") if kind is InvoiceKind.FLEET else "",
                                     s.account_id if kind is InvoiceKind.FLEET else "", s.ended_at, s.session_id))
        lines = _lines(mine, zone)
        groups: tuple[LineGroup, ...] = ()
        if kind is InvoiceKind.FLEET:
            by: dict[tuple[str | None, str], list[InvoiceLine]] = {}
            for ln in lines:
                by.setdefault((ln.cost_centre, ln.account_id), []).append(ln)
            groups = tuple(LineGroup(cc, acc, tuple(g), sum((x.net for x in g), ZERO), sum((x.vat for x in g), ZERO))
                           for (cc, acc), g in by.items())
        invoices.append(Invoice(
            number=invoice_number(kind, account_id, year, month, cur), kind=kind, account_id=account_id,
            year=year, month=month, time_zone=tz, period_start=start, period_end=end, currency=cur,
            lines=tuple(lines), vat_breakdown=_breakdown(lines), net=sum((ln.net for ln in lines), ZERO),
            vat=sum((ln.vat for ln in lines), ZERO), groups=groups))
    return invoices


def driver_invoices(account_id: str, sessions: Iterable[PricedSession], *, year: int, month: int,
                    tz: str) -> list[Invoice]:
    """The driver's invoices for a month (one per currency): the sessions the driver paid personally
    (`fleet_id is None`).  Sessions of other accounts, fleet-paid sessions and other months are left out."""
    mine = [s for s in sessions if s.account_id == account_id and s.fleet_id is None]
    return _build(InvoiceKind.DRIVER, account_id, mine, year, month, tz)


def fleet_invoices(fleet_id: str, sessions: Iterable[PricedSession], *, year: int, month: int,
                   tz: str) -> list[Invoice]:
    """The fleet's invoices for a month (one per currency), lines grouped by cost centre and driver."""
    mine = [s for s in sessions if s.fleet_id == fleet_id]
    return _build(InvoiceKind.FLEET, fleet_id, mine, year, month, tz)


FLEET_CSV_COLUMNS = (
    "invoice_number", "period", "cost_centre", "driver_account", "session_id", "started_at", "ended_at",
    "location", "energy_kwh", "component", "description", "net", "vat_rate", "vat", "gross", "currency",
)


def fleet_report_csv(invoice: Invoice) -> str:
    """The fleet report: one row per invoice line in group order, then one subtotal row per group and a total
    row (component SUBTOTAL / TOTAL).  Times in the invoice's time zone, ISO 8601; amounts as plain decimals."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FLEET_CSV_COLUMNS)
    groups = invoice.groups or (LineGroup(None, invoice.account_id, invoice.lines, invoice.net, invoice.vat),)
    for g in groups:
        for ln in g.lines:
            w.writerow([invoice.number, invoice.period, ln.cost_centre or "", ln.account_id, ln.session_id,
                        ln.started_at.isoformat(), ln.ended_at.isoformat(), ln.location, fmt(ln.energy_kwh),
                        ln.component, ln.description, fmt(ln.net), fmt(ln.vat_rate), fmt(ln.vat), fmt(ln.gross),
                        invoice.currency])
        if invoice.groups:
            w.writerow([invoice.number, invoice.period, g.cost_centre or "", g.account_id, "", "", "", "", "",
                        "SUBTOTAL", "", fmt(g.net), "", fmt(g.vat), fmt(g.gross), invoice.currency])
    w.writerow([invoice.number, invoice.period, "", "", "", "", "", "", fmt(invoice.energy_kwh), "TOTAL", "",
                fmt(invoice.net), "", fmt(invoice.vat), fmt(invoice.gross), invoice.currency])
    return buf.getvalue()


# -- energy-bill export ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnergyBillExport:
    """Charges forwarded to an energy supplier's customer account (the supplier puts them on that customer's
    energy bill and owes us the gross)."""

    export_id: str
    supplier_id: str
    customer_account: str
    account_id: str
    period_start: datetime
    period_end: datetime
    currency: str
    energy_kwh: Decimal
    net: Decimal
    vat: Decimal
    session_ids: tuple[str, ...]

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


def energy_bill_export(*, supplier_id: str, customer_account: str, account_id: str,
                       sessions: Iterable[PricedSession], period_start: datetime,
                       period_end: datetime) -> EnergyBillExport | None:
    """The export of `account_id`'s sessions that ended in [period_start, period_end); None when there are none.
    One currency per export (ValueError when the sessions mix currencies).  The export id is deterministic."""
    if period_start.tzinfo is None or period_end.tzinfo is None or period_end <= period_start:
        raise ValueError("the period needs aware start < end")
    chosen = sorted((s for s in sessions if s.account_id == account_id and period_start <= s.ended_at < period_end),
                    key=lambda s: (s.ended_at, s.session_id))
    if not chosen:
        return None
    currencies = {s.currency for s in chosen}
    if len(currencies) > 1:
        raise ValueError(f"sessions in several currencies {sorted(currencies)}: export each separately")
    cur = currencies.pop()
    key = "\x1f".join([supplier_id, customer_account, account_id, period_start.astimezone(timezone.utc).isoformat(),
                       period_end.astimezone(timezone.utc).isoformat(), cur])
    export_id = "EBX-" + hashlib.sha256(key.encode()).hexdigest()[:20]
    return EnergyBillExport(
        export_id=export_id, supplier_id=supplier_id, customer_account=customer_account, account_id=account_id,
        period_start=period_start, period_end=period_end, currency=cur,
        energy_kwh=sum((s.energy_kwh for s in chosen), ZERO), net=sum((s.net for s in chosen), ZERO),
        vat=sum((s.vat for s in chosen), ZERO), session_ids=tuple(s.session_id for s in chosen))
