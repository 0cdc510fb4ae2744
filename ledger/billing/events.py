"""Payloads of the billing events (schemas/avro: CdrPriced, BillingReview, BillingDiscrepancy, PaymentEvent,
InvoiceIssued, EnergyBillExported), built from billing's pure results.

Why here: the processor that publishes them should not re-spell field names or decimal formatting; it merges a
payload into an envelope (`chargeverse.events.derive(cause, tag=..., source=..., **payload)`) and publishes.
Decimals become plain strings (`money.fmt`: '4.40', never floats or exponents); verbatim payloads stay verbatim.
Pure: builds dicts, nothing else.  Every builder is round-tripped through the Avro codec in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ledger.billing.cdr_checks import CdrTotals, Problem
from ledger.billing.discrepancy import DiscrepancyDecision
from ledger.billing.invoices import EnergyBillExport, Invoice
from ledger.billing.money import fmt
from ledger.billing.payments import Capture, Hold, PaymentError, Refund, Release

#: event type -> the topic it goes to (all on `billing`, keyed by the paying account)
TOPIC_OF: dict[str, str] = {name: "billing" for name in (
    "CdrPriced", "BillingReview", "BillingDiscrepancy", "PaymentEvent", "InvoiceIssued", "EnergyBillExported")}


def _opt(v: Decimal | None) -> str | None:
    return None if v is None else fmt(v)


def cdr_priced(*, session_id: str, account_id: str, cdr_text: str, cdr_id: str, totals: CdrTotals, origin: str,
               tariff_id: str | None = None, fleet_id: str | None = None, cost_centre: str | None = None,
               partner_country_code: str | None = None, partner_party_id: str | None = None,
               credit_reference_id: str | None = None, vat_country: str | None = None) -> dict[str, Any]:
    if origin not in ("OWN", "ROAMED"):
        raise ValueError(f"origin is OWN or ROAMED, not {origin!r}")
    return {
        "session_id": session_id, "account_id": account_id, "fleet_id": fleet_id, "cost_centre": cost_centre,
        "origin": origin, "partner_country_code": partner_country_code, "partner_party_id": partner_party_id,
        "cdr_id": cdr_id, "cdr": cdr_text, "currency": totals.currency, "tariff_id": tariff_id,
        "total_cost_excl_vat": fmt(totals.total_cost.excl_vat), "total_cost_incl_vat": _opt(totals.total_cost.incl_vat),
        "cost_parts": [{"part": k, "excl_vat": fmt(p.excl_vat), "incl_vat": _opt(p.incl_vat)}
                       for k, p in totals.parts.items()],
        "total_energy_kwh": fmt(totals.total_energy), "total_time_hours": fmt(totals.total_time),
        "total_parking_time_hours": _opt(totals.total_parking_time), "credit": totals.credit,
        "credit_reference_id": credit_reference_id, "vat_country": vat_country,
    }


def billing_review(*, problems: Sequence[Problem], payload: str, source_event_id: str, subject: str = "CDR",
                   payload_type: str = "ocpi-2.2.1/CDR", session_id: str | None = None,
                   account_id: str | None = None, source_topic: str | None = None,
                   source_partition: int | None = None, source_offset: int | None = None) -> dict[str, Any]:
    """The review-queue entry: every reason and the payload verbatim (so nothing is lost)."""
    if not problems:
        raise ValueError("a review needs at least one reason")
    return {
        "subject": subject, "session_id": session_id, "account_id": account_id,
        "reasons": [p.as_dict() for p in problems], "payload": payload, "payload_type": payload_type,
        "source_event_id": source_event_id, "source_topic": source_topic, "source_partition": source_partition,
        "source_offset": source_offset,
    }


def billing_discrepancy(decision: DiscrepancyDecision, *, session_id: str, cdr_id: str, partner_country_code: str,
                        partner_party_id: str, partner_cdr_text: str, source_event_id: str,
                        account_id: str | None = None, tariff_id: str | None = None) -> dict[str, Any]:
    return {
        "session_id": session_id, "account_id": account_id, "cdr_id": cdr_id,
        "partner_country_code": partner_country_code, "partner_party_id": partner_party_id, "tariff_id": tariff_id,
        "partner_currency": decision.partner_currency, "our_currency": decision.our_currency,
        "currency_mismatch": decision.currency_mismatch,
        "threshold_absolute": fmt(decision.threshold.absolute), "threshold_relative": fmt(decision.threshold.relative),
        "differences": [{"field": d.field, "partner": fmt(d.partner), "ours": fmt(d.ours),
                         "difference": fmt(d.difference),
                         "relative": None if d.relative is None else fmt(d.relative.quantize(Decimal("0.000001"))),
                         "allowed": fmt(d.allowed), "flagged": d.flagged} for d in decision.differences],
        "not_compared": list(decision.not_compared), "partner_cdr": partner_cdr_text,
        "source_event_id": source_event_id,
    }


def _payment(kind: str, *, operation: str, account_id: str, provider: str, amount: Decimal, currency: str,
             idempotency_key: str, session_id: str | None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": kind, "account_id": account_id, "session_id": session_id, "provider": provider,
        "operation": operation, "amount": fmt(amount), "currency": currency, "payment_method_ref": None,
        "hold_id": None, "charge_id": None, "refund_id": None, "released_amount": None,
        "idempotency_key": idempotency_key, "failure_code": None, "provider_code": None, "failure_message": None,
        "retryable": False,
    }
    base.update(fields)
    return base


def payment_hold(hold: Hold, *, account_id: str, idempotency_key: str, session_id: str | None = None) -> dict[str, Any]:
    return _payment("HOLD_AUTHORISED", operation="authorize_hold", account_id=account_id, provider=hold.provider,
                    amount=hold.amount, currency=hold.currency, idempotency_key=idempotency_key,
                    session_id=session_id, payment_method_ref=hold.payment_method_ref, hold_id=hold.hold_id)


def payment_captured(capture: Capture, *, account_id: str, provider: str, idempotency_key: str,
                     session_id: str | None = None) -> dict[str, Any]:
    return _payment("CAPTURED", operation="capture", account_id=account_id, provider=provider,
                    amount=capture.amount, currency=capture.currency, idempotency_key=idempotency_key,
                    session_id=session_id, hold_id=capture.hold_id, charge_id=capture.charge_id,
                    released_amount=fmt(capture.released))


def payment_released(release: Release, *, account_id: str, provider: str, idempotency_key: str,
                     session_id: str | None = None) -> dict[str, Any]:
    return _payment("RELEASED", operation="release", account_id=account_id, provider=provider,
                    amount=release.amount, currency=release.currency, idempotency_key=idempotency_key,
                    session_id=session_id, hold_id=release.hold_id, released_amount=fmt(release.amount))


def payment_refunded(refund: Refund, *, account_id: str, provider: str, idempotency_key: str,
                     session_id: str | None = None) -> dict[str, Any]:
    return _payment("REFUNDED", operation="refund", account_id=account_id, provider=provider, amount=refund.amount,
                    currency=refund.currency, idempotency_key=idempotency_key, session_id=session_id,
                    charge_id=refund.charge_id, refund_id=refund.refund_id)


def payment_charged(capture: Capture, *, account_id: str, provider: str, idempotency_key: str,
                    session_id: str | None = None) -> dict[str, Any]:
    """A charge without a hold (the excess above a hold)."""
    return _payment("CHARGED", operation="charge", account_id=account_id, provider=provider, amount=capture.amount,
                    currency=capture.currency, idempotency_key=idempotency_key, session_id=session_id,
                    charge_id=capture.charge_id)


def payment_failed(error: PaymentError, *, operation: str, account_id: str, provider: str, amount: Decimal,
                   currency: str, idempotency_key: str, session_id: str | None = None,
                   payment_method_ref: str | None = None, hold_id: str | None = None) -> dict[str, Any]:
    return _payment("FAILED", operation=operation, account_id=account_id, provider=provider, amount=amount,
                    currency=currency, idempotency_key=idempotency_key, session_id=session_id,
                    payment_method_ref=payment_method_ref, hold_id=hold_id or error.hold_id,
                    failure_code=error.code, provider_code=error.provider_code,
                    failure_message=str(error)[:1000], retryable=error.retryable)


def invoice_issued(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_number": invoice.number, "kind": invoice.kind.value, "account_id": invoice.account_id,
        "period": invoice.period, "time_zone": invoice.time_zone, "period_start": invoice.period_start,
        "period_end": invoice.period_end, "currency": invoice.currency, "net": fmt(invoice.net),
        "vat": fmt(invoice.vat), "gross": fmt(invoice.gross), "energy_kwh": fmt(invoice.energy_kwh),
        "session_ids": list(invoice.session_ids),
        "lines": [{"session_id": ln.session_id, "account_id": ln.account_id, "cost_centre": ln.cost_centre,
                   "started_at": ln.started_at, "ended_at": ln.ended_at, "location": ln.location,
                   "energy_kwh": fmt(ln.energy_kwh), "component": ln.component, "description": ln.description,
                   "net": fmt(ln.net), "vat_rate": fmt(ln.vat_rate), "vat": fmt(ln.vat), "gross": fmt(ln.gross)}
                  for ln in invoice.lines],
        "vat_breakdown": [{"rate": fmt(b.rate), "net": fmt(b.net), "vat": fmt(b.vat), "gross": fmt(b.gross)}
                          for b in invoice.vat_breakdown],
    }


def energy_bill_exported(export: EnergyBillExport) -> dict[str, Any]:
    return {
        "export_id": export.export_id, "supplier_id": export.supplier_id,
        "customer_account": export.customer_account, "account_id": export.account_id,
        "period_start": export.period_start, "period_end": export.period_end, "currency": export.currency,
        "energy_kwh": fmt(export.energy_kwh), "net": fmt(export.net), "vat": fmt(export.vat),
        "gross": fmt(export.gross), "session_ids": list(export.session_ids),
    }

