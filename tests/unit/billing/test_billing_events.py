"""Billing's event payloads match their Avro contracts: each builder's output, in an envelope, encodes and decodes
back unchanged; verbatim payloads stay verbatim; decimals travel as plain strings."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from chargeverse.avro import Codec, SchemaStore
from chargeverse.events import ENVELOPE_FIELDS, envelope
from ledger.billing import events
from ledger.billing.cdr_checks import check_cdr, read_totals
from ledger.billing.discrepancy import compare_totals
from ledger.billing.invoices import (
    ChargeLine, PricedSession, driver_invoices, energy_bill_export, fleet_invoices, month_bounds,
)
from ledger.billing.payments import Capture, Hold, HoldStatus, PaymentDeclined, Refund, Release

D = Decimal
UTC = timezone.utc
OURS = ("CdrPriced", "BillingReview", "BillingDiscrepancy", "PaymentEvent", "InvoiceIssued", "EnergyBillExported")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def round_trip(codec: Codec, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    rec = {**envelope(source="billing-test", correlation_id="s-1"), **payload}
    etype, back = codec.decode(codec.encode(event_type, rec))
    assert etype == event_type
    for k, v in payload.items():
        assert back[k] == v, k
    return back


def test_our_schemas_exist_with_the_shared_envelope() -> None:
    store = SchemaStore()
    for name in OURS:
        raw = store.schema(name).raw
        assert tuple(f["name"] for f in raw["fields"][:len(ENVELOPE_FIELDS)]) == ENVELOPE_FIELDS
        assert raw["namespace"] == "chargeverse.events" and raw["doc"]
        assert events.TOPIC_OF[name] == "billing"


def test_our_schemas_parse_with_the_apache_reference_implementation() -> None:
    """fastavro accepts a field name twice (e.g. a payload `source` beside the envelope's); Apache Avro does not,
    and the schema-history check uses it."""
    store = SchemaStore()
    for name in OURS:
        avro.schema.parse(json.dumps(store.schema(name).raw))


def test_a_new_payment_kind_stays_readable_by_old_readers() -> None:
    current = SchemaStore().schema("PaymentEvent").raw
    newer = copy.deepcopy(current)
    kind = next(f for f in newer["fields"] if f["name"] == "kind")
    kind["type"]["symbols"].insert(0, "SOMETHING_NEW")
    result = ReaderWriterCompatibilityChecker().get_compatibility(avro.schema.parse(json.dumps(current)),
                                                                  avro.schema.parse(json.dumps(newer)))
    assert result.compatibility == SchemaCompatibilityType.compatible


def test_cdr_priced_keeps_the_cdr_verbatim(codec: Codec, cdr_example: dict) -> None:
    text = json.dumps(cdr_example, default=str)
    payload = events.cdr_priced(session_id="s-1", account_id="u-1", cdr_text=text, cdr_id="12345",
                                totals=read_totals(cdr_example), origin="OWN", tariff_id="12", vat_country="BE")
    back = round_trip(codec, "CdrPriced", payload)
    assert back["cdr"] == text and back["total_cost_incl_vat"] == "4.40"
    assert back["cost_parts"] == [{"part": "total_time_cost", "excl_vat": "4.00", "incl_vat": "4.40"}]
    with pytest.raises(ValueError):
        events.cdr_priced(session_id="s", account_id="u", cdr_text="{}", cdr_id="x",
                          totals=read_totals(cdr_example), origin="PARTNER")


def test_billing_review_carries_every_reason_and_the_payload_verbatim(codec: Codec, cdr_example: dict) -> None:
    cdr_example["total_energy"] = D("-1")
    cdr_example["currency"] = "EUX"
    raw = '{"weird":  "spacing kept", "total_energy": -1}'
    payload = events.billing_review(problems=check_cdr(cdr_example), payload=raw, source_event_id="ev-1",
                                    session_id="s-1", source_topic="ocpi.inbound", source_partition=3,
                                    source_offset=42)
    back = round_trip(codec, "BillingReview", payload)
    assert back["payload"] == raw
    assert {r["code"] for r in back["reasons"]} >= {"NEGATIVE_ENERGY", "UNKNOWN_CURRENCY"}
    with pytest.raises(ValueError):
        events.billing_review(problems=(), payload=raw, source_event_id="ev")


def test_billing_discrepancy(codec: Codec, cdr_example: dict) -> None:
    partner = read_totals(cdr_example)
    ours_cdr = copy.deepcopy(cdr_example)
    ours_cdr["total_cost"] = ours_cdr["total_time_cost"] = {"excl_vat": D("3.00"), "incl_vat": D("3.30")}
    decision = compare_totals(partner, read_totals(ours_cdr))
    payload = events.billing_discrepancy(decision, session_id="s-1", cdr_id="12345", partner_country_code="BE",
                                         partner_party_id="BEC", partner_cdr_text="{...}", source_event_id="ev-1")
    back = round_trip(codec, "BillingDiscrepancy", payload)
    d0 = back["differences"][0]
    assert (d0["field"], d0["difference"], d0["relative"], d0["flagged"]) == (
        "total_cost.excl_vat", "1.00", "0.333333", True)


def test_payment_events_of_every_kind(codec: Codec) -> None:
    hold = Hold("pi_1", "stripe", D("30.00"), "EUR", HoldStatus.AUTHORISED, "pm_card_visa")
    cap = Capture("pi_1", "pi_1", D("24.20"), "EUR", D("5.80"))
    kinds = [
        events.payment_hold(hold, account_id="u-1", idempotency_key="k1", session_id="s-1"),
        events.payment_captured(cap, account_id="u-1", provider="stripe", idempotency_key="k2"),
        events.payment_released(Release("pi_2", D("30.00"), "EUR"), account_id="u-1", provider="stripe",
                                idempotency_key="k3"),
        events.payment_refunded(Refund("re_1", "pi_1", D("4.20"), "EUR", "succeeded"), account_id="u-1",
                                provider="stripe", idempotency_key="k4"),
        events.payment_charged(cap, account_id="u-1", provider="stripe", idempotency_key="k5"),
        events.payment_failed(PaymentDeclined("declined", provider_code="insufficient_funds", hold_id="pi_3"),
                              operation="authorize_hold", account_id="u-1", provider="stripe", amount=D("30.00"),
                              currency="EUR", idempotency_key="k6", payment_method_ref="pm_x"),
    ]
    backs = [round_trip(codec, "PaymentEvent", p) for p in kinds]
    assert [b["kind"] for b in backs] == ["HOLD_AUTHORISED", "CAPTURED", "RELEASED", "REFUNDED", "CHARGED", "FAILED"]
    assert backs[1]["released_amount"] == "5.80"
    assert (backs[5]["failure_code"], backs[5]["provider_code"], backs[5]["hold_id"]) == (
        "declined", "insufficient_funds", "pi_3")


def _sessions() -> list[PricedSession]:
    return [PricedSession(f"s{i}", "u-1", "EUR", datetime(2024, 5, 2 + i, 8, tzinfo=UTC),
                          datetime(2024, 5, 2 + i, 9, tzinfo=UTC), D("12.5"),
                          (ChargeLine("ENERGY", "Energy", D("5.00"), D("21"), D("1.05")),), "Loc", "f-1",
                          "CC" if i % 2 else None) for i in range(3)]


def test_invoice_issued_for_driver_and_fleet(codec: Codec) -> None:
    (fleet,) = fleet_invoices("f-1", _sessions(), year=2024, month=5, tz="Europe/Amsterdam")
    back = round_trip(codec, "InvoiceIssued", events.invoice_issued(fleet))
    assert back["kind"] == "FLEET" and back["gross"] == "18.15" and len(back["lines"]) == 3
    assert back["lines"][0]["started_at"].tzinfo is not None
    private = [PricedSession(s.session_id, s.account_id, s.currency, s.started_at, s.ended_at, s.energy_kwh,
                             s.charges) for s in _sessions()]
    (driver,) = driver_invoices("u-1", private, year=2024, month=5, tz="UTC")
    assert round_trip(codec, "InvoiceIssued", events.invoice_issued(driver))["kind"] == "DRIVER"


def test_energy_bill_exported(codec: Codec) -> None:
    start, end = month_bounds(2024, 5, "UTC")
    ex = energy_bill_export(supplier_id="eneco", customer_account="EN-1", account_id="u-1", sessions=_sessions(),
                            period_start=start, period_end=end)
    assert ex is not None
    back = round_trip(codec, "EnergyBillExported", events.energy_bill_exported(ex))
    assert back["energy_kwh"] == "37.5" and back["session_ids"] == ["s0", "s1", "s2"]
