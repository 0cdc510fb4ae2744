"""The monthly invoice run: `cv billing invoices --month 2026-11` -> InvoiceIssued per driver and per fleet, and
EnergyBillExported (+ its ledger forwarding) for accounts whose charges go on an energy supplier's bill.

Reads the priced CDRs of the `cdrs` projection (projections/postgres/billing.py) whose session ENDED in the month
in `tz` (the same rule as ledger/billing/invoices.py), turns each into a `PricedSession`, builds the invoices with
the pure builders and publishes them.  `month_outputs` is the pure part (tested in
tests/unit/billing/test_invoice_job.py); `run_month` adds the one read and the publish.

Invariants:
- RE-RUNNABLE: invoice numbers come from (kind, account, month, currency) and every event id is derived from the
  invoice number (or export id) and a digest of the content; occurred_at and recorded_at are the period's end.
  Re-running a month over the same CDRs publishes byte-identical events, which every sink drops.  A CDR priced
  after a first run changes the content, so the re-run publishes a NEW event under the SAME invoice number: the
  corrected issue of that invoice (consumers keep the latest per number).
- CLOSED MONTHS ONLY: a month that has not ended in `tz` is refused (its invoices would change).
- ONE BILL PER SESSION: a session of an account configured for the energy bill goes on the supplier export and
  not on a driver invoice; fleet-paid sessions are on the fleet's invoice only (driver_invoices leaves them out).
- NOTHING LOST: a CDR the invoice builders refuse is listed in `MonthResult.skipped` with its reason (the CLI
  prints them and exits 1); the rest of the month is still invoiced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chargeverse.events import derived_id
from ledger.billing.cdr_checks import parse_cdr_json
from ledger.billing.events import energy_bill_exported, invoice_issued
from ledger.billing.invoices import (
    EnergyBillExport, Invoice, PricedSession, driver_invoices, energy_bill_export, fleet_invoices, month_bounds,
    priced_session_from_cdr,
)
from ledger.billing.postings_plan import DriverPayer, energy_bill_forward_plan

SOURCE = "ledger.billing.invoice_job"
#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]


@dataclass(frozen=True)
class EnergyBillLink:
    """An account whose charges go on its energy supplier's bill."""

    supplier_id: str
    customer_account: str


@dataclass(frozen=True)
class CdrRow:
    """What the job reads of a `cdrs` row (the CDR as text, so its numbers stay exact)."""

    session_id: str
    account_id: str
    fleet_id: str | None
    cost_centre: str | None
    origin: str
    cdr_text: str


@dataclass
class MonthResult:
    period: str
    invoices: list[Invoice] = field(default_factory=list)
    exports: list[EnergyBillExport] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (session id, why)
    outputs: list[Output] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.period}: {len(self.invoices)} invoices "
                f"({sum(1 for i in self.invoices if i.kind.value == 'DRIVER')} driver, "
                f"{sum(1 for i in self.invoices if i.kind.value == 'FLEET')} fleet), "
                f"{len(self.exports)} energy-bill exports, {len(self.skipped)} sessions skipped")


def sessions_from_rows(rows: Iterable[CdrRow]) -> tuple[list[PricedSession], list[tuple[str, str]]]:
    """PricedSessions of the rows; the rows the builders refuse as (session id, reason)."""
    sessions, skipped = [], []
    for r in rows:
        try:
            sessions.append(priced_session_from_cdr(parse_cdr_json(r.cdr_text), session_id=r.session_id,
                                                    account_id=r.account_id, fleet_id=r.fleet_id,
                                                    cost_centre=r.cost_centre, source=r.origin))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            skipped.append((r.session_id, f"{type(exc).__name__}: {exc}"[:500]))
    return sessions, skipped


def _digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _envelope(subject: str, payload: Mapping[str, Any], at: datetime, correlation_id: str) -> dict[str, Any]:
    return {"event_id": derived_id(subject, _digest(payload)), "occurred_at": at, "recorded_at": at,
            "source": SOURCE, "correlation_id": correlation_id, "causation_id": None}


def month_outputs(sessions: Sequence[PricedSession], *, year: int, month: int, tz: str,
                  energy_bill: Mapping[str, EnergyBillLink] | None = None) -> MonthResult:
    """Every invoice, export and event of a month, from priced sessions (pure)."""
    links = dict(energy_bill or {})
    start, end = month_bounds(year, month, tz)
    at = end.astimezone(timezone.utc)
    res = MonthResult(f"{year:04d}-{month:02d}")
    corr = f"invoices/{res.period}/{tz}"
    personal = [s for s in sessions if s.fleet_id is None]
    for account in sorted({s.account_id for s in personal} - set(links)):
        res.invoices.extend(driver_invoices(account, personal, year=year, month=month, tz=tz))
    for fleet in sorted({s.fleet_id for s in sessions if s.fleet_id is not None}):  # type: ignore[type-var]
        res.invoices.extend(fleet_invoices(fleet, sessions, year=year, month=month, tz=tz))
    for inv in res.invoices:
        payload = invoice_issued(inv)
        rec = {**_envelope(f"invoice/{inv.number}", payload, at, corr), **payload}
        res.outputs.append(("billing", inv.account_id, "InvoiceIssued", rec))
    for account in sorted(links):
        link = links[account]
        mine = [s for s in personal if s.account_id == account]
        for cur in sorted({s.currency for s in mine}):
            exp = energy_bill_export(supplier_id=link.supplier_id, customer_account=link.customer_account,
                                     account_id=account, sessions=[s for s in mine if s.currency == cur],
                                     period_start=start, period_end=end)
            if exp is None:
                continue
            res.exports.append(exp)
            payload = energy_bill_exported(exp)
            rec = {**_envelope(f"energy-bill/{exp.export_id}", payload, at, corr), **payload}
            res.outputs.append(("billing", account, "EnergyBillExported", rec))
            if exp.gross > 0:
                plan = energy_bill_forward_plan(source_event_id=rec["event_id"], payer=DriverPayer(account),
                                                supplier_id=link.supplier_id, amount=exp.gross,
                                                currency=exp.currency, export_id=exp.export_id)
                fwd = {"event_id": derived_id(rec["event_id"], "ledger-energy-bill-forward"), "occurred_at": at,
                       "recorded_at": at, "source": SOURCE, "correlation_id": corr,
                       "causation_id": rec["event_id"], **plan.ledger_fields()}
                res.outputs.append(("ledger", plan.ledger_key, "LedgerPostingSet", fwd))
    return res


# ---- I/O: read the projection, publish --------------------------------------------------------------------------

_READ = ("SELECT session_id, account_id, fleet_id, cost_centre, origin, cdr::text FROM cdrs "
         "WHERE (cdr->>'end_date_time')::timestamptz >= %s AND (cdr->>'end_date_time')::timestamptz < %s "
         "AND account_id NOT LIKE 'emsp:%%' "  # a roaming partner's sessions at our stations: settled by OCPI CDR
         "ORDER BY session_id")


def read_month(conn: Any, year: int, month: int, tz: str) -> list[CdrRow]:
    start, end = month_bounds(year, month, tz)
    return [CdrRow(*row) for row in conn.execute(_READ, (start, end)).fetchall()]


def run_month(dsn: str, producer: Any, year: int, month: int, tz: str, *,
              energy_bill: Mapping[str, EnergyBillLink] | None = None, schema: str = "public",
              now: datetime | None = None, publish: bool = True) -> MonthResult:
    """Invoice a closed month: read its priced CDRs, publish every InvoiceIssued / EnergyBillExported (and the
    forwarding postings), waiting for the broker's acknowledgements.  ValueError for an open month or an
    unknown time zone."""
    from projections.postgres.migrate import connect

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (an IANA name such as Europe/Amsterdam)") from None
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not 1..12")
    _, end = month_bounds(year, month, tz)
    if end > (now or datetime.now(timezone.utc)):
        raise ValueError(f"{year:04d}-{month:02d} has not ended in {tz} yet: only closed months are invoiced")
    with connect(dsn, schema, autocommit=True) as conn:
        rows = read_month(conn, year, month, tz)
    sessions, skipped = sessions_from_rows(rows)
    res = month_outputs(sessions, year=year, month=month, tz=tz, energy_bill=energy_bill)
    res.skipped = skipped + res.skipped
    if publish and res.outputs:
        producer.publish_many_sync(res.outputs)
    return res


# ---- CLI: `cv billing invoices` ---------------------------------------------------------------------------------

def _month(text: str) -> tuple[int, int]:
    try:
        y, m = text.split("-")
        year, month = int(y), int(m)
        if len(y) != 4 or not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month such as 2026-11") from None
    return year, month


def load_energy_bill_links(path: Path) -> dict[str, EnergyBillLink]:
    """`{"<account id>": {"supplier_id": "...", "customer_account": "..."}, ...}` -> links; ValueError says
    which entry is wrong."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of account id -> {{supplier_id, customer_account}}")
    out = {}
    for account, v in raw.items():
        if not (isinstance(v, dict) and isinstance(v.get("supplier_id"), str) and v["supplier_id"]
                and isinstance(v.get("customer_account"), str) and v["customer_account"]):
            raise ValueError(f"{path}: entry {account!r} needs non-empty supplier_id and customer_account")
        out[str(account)] = EnergyBillLink(v["supplier_id"], v["customer_account"])
    return out


def cmd_invoices(a: argparse.Namespace) -> int:
    from chargeverse.kafka import EventProducer
    from chargeverse.settings import get_settings

    year, month = a.month
    try:
        links = load_energy_bill_links(a.energy_bill) if a.energy_bill else {}
        producer = None if a.dry_run else EventProducer()
        try:
            res = run_month(get_settings().postgres_dsn.get_secret_value(), producer, year, month, a.tz,
                            energy_bill=links, schema=a.schema, publish=not a.dry_run)
        finally:
            if producer is not None:
                producer.close()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for inv in res.invoices:
        print(f"{inv.number}  {inv.kind.value:6}  {inv.account_id}  {len(inv.session_ids)} sessions  "
              f"{inv.gross} {inv.currency}")
    for exp in res.exports:
        print(f"{exp.export_id}  ENERGY  {exp.account_id} -> {exp.supplier_id}/{exp.customer_account}  "
              f"{exp.gross} {exp.currency}")
    for sid, why in res.skipped:
        print(f"skipped {sid}: {why}", file=sys.stderr)
    print(res.summary() + (" (dry run: nothing published)" if a.dry_run else ""))
    return 1 if res.skipped else 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `billing` and its sub-commands to `cv`'s sub-parsers."""
    bp = sub.add_parser("billing", help="monthly invoices and energy-bill exports")
    bsub = bp.add_subparsers(dest="billing_cmd", required=True)
    sp = bsub.add_parser("invoices", help="issue the invoices of a closed month (InvoiceIssued per driver and "
                                          "fleet; EnergyBillExported where configured); re-running is harmless")
    sp.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    sp.add_argument("--tz", default="Europe/Amsterdam", help="IANA zone of the month's boundaries")
    sp.add_argument("--energy-bill", type=Path, help="JSON file: account id -> {supplier_id, customer_account}")
    sp.add_argument("--dry-run", action="store_true", help="build and print, publish nothing")
    sp.add_argument("--schema", default="public", help="Postgres schema of the cdrs projection")
    sp.set_defaults(fn=cmd_invoices)
    return bp
