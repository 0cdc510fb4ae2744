"""The payments fold's invariants (streams/payments/fold.py), driven with the real in-memory LocalProvider:
hold at start, capture at CDR with the rest released, the excess charged, refusals to review, CDR-before-start,
and re-delivery that never holds or charges twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

import pytest

from chargeverse.avro import default_codec
from chargeverse.events import derived_id, envelope
from ledger.billing.payments import HoldStatus, LocalProvider, ProviderUnavailable
from streams.payments.fold import Lookups, Policy, apply, idempotency_key
from streams.payments.port import SyncPayments

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def local(clock: Clock) -> LocalProvider:
    return LocalProvider(clock=clock, limits={"pm_small": Decimal("5.00")})


@pytest.fixture
def pay(local: LocalProvider) -> Iterator[SyncPayments]:
    p = SyncPayments(local, sleep=lambda s: None)
    yield p
    p.close()


def lookups(account: str | None = "acc-1", pm: str | None = "pm_card_ok", currency: str | None = "EUR") -> Lookups:
    return Lookups(account_of=lambda uid: account if uid == "TAG1" else None,
                   payment_method_of=lambda acc: pm if acc == account else None,
                   currency_at=lambda station, at: currency)


def started(session: str = "S1", token: str | None = "TAG1") -> dict[str, Any]:
    rec = envelope(source="t", correlation_id=session, occurred_at=T0)
    rec.update(session_id=session, charge_point_id="CP1", transaction_id="7", ocpp_version="ocpp1.6", evse_id=None,
               connector_id=1, id_token=token, id_token_type="ISO14443", authorization_status="Accepted",
               started_at=T0, meter_start_wh=0.0, reservation_id=None, remote_start_id=None, trigger_reason=None,
               offline=False, inferred_start=False, raw="[]", raw_request=None)
    return rec


def priced(session: str = "S1", excl: str = "2.50", incl: str | None = "2.75", currency: str = "EUR",
           fleet: str | None = None, origin: str = "OWN", credit: bool = False,
           account: str = "acc-1") -> dict[str, Any]:
    rec = envelope(source="t", correlation_id=session, occurred_at=T0 + timedelta(hours=1))
    rec.update(session_id=session, account_id=account, fleet_id=fleet, cost_centre=None, origin=origin,
               partner_country_code=None, partner_party_id=None, cdr_id=session, cdr="{}", currency=currency,
               tariff_id="12", total_cost_excl_vat=excl, total_cost_incl_vat=incl, cost_parts=[],
               total_energy_kwh="10", total_time_hours="1", total_parking_time_hours=None, credit=credit,
               credit_reference_id=None, vat_country="NL")
    return rec


def of(outs: list, etype: str) -> list[dict[str, Any]]:  # noqa: ANN001
    return [r for _, _, t, r in outs if t == etype]


def encodes(outs: list) -> None:  # noqa: ANN001
    codec = default_codec()
    for _, key, etype, rec in outs:
        assert key
        assert codec.decode(codec.encode(etype, rec))[0] == etype


def balanced(rec: dict[str, Any]) -> bool:
    d = sum(Decimal(e["amount"]) for e in rec["entries"] if e["direction"] == "DEBIT")
    c = sum(Decimal(e["amount"]) for e in rec["entries"] if e["direction"] == "CREDIT")
    return d == c


def test_a_session_start_places_a_hold_and_records_it_in_the_ledger(pay, local) -> None:  # noqa: ANN001
    start = started()
    st, outs = apply(None, "SessionStarted", start, lookups(), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "HOLD_AUTHORISED" and ev["amount"] == "50.00" and ev["currency"] == "EUR"
    assert ev["payment_method_ref"] == "pm_card_ok" and ev["session_id"] == "S1" and ev["account_id"] == "acc-1"
    assert ev["idempotency_key"] == idempotency_key("hold", start["event_id"])
    [ps] = of(outs, "LedgerPostingSet")
    assert ps["kind"] == "HOLD" and ps["hold_id"] == ev["hold_id"] and balanced(ps)
    assert local.hold(ev["hold_id"]).status is HoldStatus.AUTHORISED
    assert st["hold"] == {"hold_id": ev["hold_id"], "amount": "50.00", "currency": "EUR"}
    # billing is keyed by the account, the ledger by the payer's key
    assert {(t, k) for t, k, _, _ in outs} == {("billing", "acc-1"), ("ledger", "driver:acc-1")}


def test_the_hold_is_in_the_currency_of_the_stations_tariff(pay) -> None:  # noqa: ANN001
    _, outs = apply(None, "SessionStarted", started(), lookups(currency="SEK"), pay, Policy(Decimal("300")))
    assert of(outs, "PaymentEvent")[0]["amount"] == "300.00" and of(outs, "PaymentEvent")[0]["currency"] == "SEK"
    _, outs = apply(None, "SessionStarted", started("S2"), lookups(currency=None), pay,
                    Policy(Decimal("20"), default_currency="GBP"))
    assert of(outs, "PaymentEvent")[0]["currency"] == "GBP"


def test_the_cdr_captures_what_the_session_cost_and_releases_the_rest(pay, local) -> None:  # noqa: ANN001
    st, outs = apply(None, "SessionStarted", started(), lookups(), pay)
    hold_id = st["hold"]["hold_id"]
    cdr = priced()
    st2, outs = apply(st, "CdrPriced", cdr, lookups(), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "CAPTURED" and ev["amount"] == "2.75" and ev["released_amount"] == "47.25"
    assert ev["hold_id"] == hold_id and ev["charge_id"] and ev["idempotency_key"] == f"cv:capture:{cdr['event_id']}"
    [ps] = of(outs, "LedgerPostingSet")
    assert ps["kind"] == "POST_HOLD" and ps["hold_id"] == hold_id and balanced(ps)
    assert {e["amount"] for e in ps["entries"]} == {"2.75"}
    assert local.hold(hold_id).status is HoldStatus.CAPTURED
    assert st2["settled"] == "CAPTURED" and "hold" not in st2


def test_a_session_above_the_hold_captures_the_hold_and_charges_the_excess(pay, local) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay, Policy(Decimal("2.00")))
    st, outs = apply(st, "CdrPriced", priced(), lookups(), pay)
    encodes(outs)
    kinds = [(e["kind"], e["amount"]) for e in of(outs, "PaymentEvent")]
    assert kinds == [("CAPTURED", "2.00"), ("CHARGED", "0.75")]
    sets = of(outs, "LedgerPostingSet")
    assert [s["kind"] for s in sets] == ["POST_HOLD", "POSTING"] and all(balanced(s) for s in sets)
    assert len({s["source_event_id"] for s in sets}) == 2  # two postings, two ledger ids
    assert st["settled"] == "CHARGED"


@pytest.mark.parametrize("cdr", [priced(excl="0.00", incl="0.00"), priced(fleet="fleet-9")],
                         ids=["free session", "fleet pays"])
def test_a_free_or_fleet_paid_session_releases_the_hold(pay, local, cdr) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay)
    hold_id = st["hold"]["hold_id"]
    st, outs = apply(st, "CdrPriced", cdr, lookups(), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "RELEASED" and ev["released_amount"] == "50.00"
    [ps] = of(outs, "LedgerPostingSet")
    assert ps["kind"] == "VOID_HOLD" and ps["hold_id"] == hold_id and ps["entries"] == []
    assert local.hold(hold_id).status is HoldStatus.RELEASED


def test_a_declined_card_is_a_failed_payment_and_a_review_never_a_ledger_hold(pay) -> None:  # noqa: ANN001
    st, outs = apply(None, "SessionStarted", started(), lookups(pm="pm_decline_1"), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "FAILED" and ev["failure_code"] == "declined" and ev["provider_code"] == "card_declined"
    assert ev["operation"] == "authorize_hold" and ev["retryable"] is False
    [review] = of(outs, "BillingReview")
    assert review["subject"] == "PAYMENT" and review["session_id"] == "S1"
    assert [r["code"] for r in review["reasons"]] == ["PAYMENT_DECLINED"]
    assert not of(outs, "LedgerPostingSet")
    # at the CDR the amount owed is tried once more as a direct charge; declined again -> failed + review
    st, outs = apply(st, "CdrPriced", priced(), lookups(pm="pm_decline_1"), pay)
    assert [e["kind"] for e in of(outs, "PaymentEvent")] == ["FAILED"] and of(outs, "BillingReview")
    assert not of(outs, "LedgerPostingSet") and st["settled"] == "REVIEW"


def test_a_hold_too_large_for_the_card_still_lets_the_real_cost_be_charged(pay) -> None:  # noqa: ANN001
    st, outs = apply(None, "SessionStarted", started(), lookups(pm="pm_small"), pay)
    assert of(outs, "PaymentEvent")[0]["provider_code"] == "insufficient_funds"
    st, outs = apply(st, "CdrPriced", priced(), lookups(pm="pm_small"), pay)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "CHARGED" and ev["amount"] == "2.75"
    [ps] = of(outs, "LedgerPostingSet")
    assert ps["kind"] == "POSTING" and balanced(ps)


def test_a_redelivered_start_or_cdr_changes_nothing(pay, local) -> None:  # noqa: ANN001
    start, cdr = started(), priced()
    st, _ = apply(None, "SessionStarted", start, lookups(), pay)
    assert apply(st, "SessionStarted", start, lookups(), pay) == (st, [])
    st2, _ = apply(st, "CdrPriced", cdr, lookups(), pay)
    assert apply(st2, "CdrPriced", cdr, lookups(), pay) == (st2, [])
    assert apply(st2, "SessionStarted", start, lookups(), pay) == (st2, [])


def test_reprocessing_after_a_crash_repeats_the_same_calls_and_events_never_a_second_charge(pay, local) -> None:  # noqa: ANN001
    """A crash after the provider answered but before the state committed re-runs the batch from the old
    state: the same idempotency keys get the same answers, the same events get the same ids."""
    start, cdr = started(), priced()
    st_a, outs_a = apply(None, "SessionStarted", start, lookups(), pay)
    st_b, outs_b = apply(None, "SessionStarted", start, lookups(), pay)  # the state was never committed
    assert outs_a == outs_b and st_a == st_b
    assert len(local._holds) == 1
    fin_a, cap_a = apply(st_a, "CdrPriced", cdr, lookups(), pay)
    fin_b, cap_b = apply(st_a, "CdrPriced", cdr, lookups(), pay)
    assert cap_a == cap_b and fin_a == fin_b
    assert len(local._charges) == 1 and len(local._holds) == 1


def test_a_cdr_before_its_start_waits_then_is_charged_directly(pay, local) -> None:  # noqa: ANN001
    cdr = priced()
    st, outs = apply(None, "CdrPriced", cdr, lookups(), pay)
    assert outs == [] and st["cdr"]["event_id"] == cdr["event_id"]
    import json

    json.dumps(st)  # the pending CDR is kept as JSON in Postgres
    assert apply(st, "CdrPriced", cdr, lookups(), pay) == (st, [])
    st, outs = apply(st, "SessionStarted", started(), lookups(), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "CHARGED" and ev["amount"] == "2.75"
    assert ev["event_id"] == derived_id(cdr["event_id"], "payment-charge")  # as if handled when it arrived
    assert of(outs, "LedgerPostingSet")[0]["kind"] == "POSTING"
    assert len(local._holds) == 1 and st["settled"] == "CHARGED"  # the charge's own authorisation, no 50.00 hold


def test_without_account_nothing_is_held_and_without_payment_method_the_cdr_goes_to_review(pay, local) -> None:  # noqa: ANN001
    st, outs = apply(None, "SessionStarted", started(token="STRANGER"), lookups(), pay)
    assert outs == [] and st == {"start": "NO_ACCOUNT"}
    st, outs = apply(None, "SessionStarted", started(), lookups(pm=None), pay)
    assert outs == [] and st["start"] == "NO_PAYMENT_METHOD"
    st, outs = apply(st, "CdrPriced", priced(), lookups(pm=None), pay)
    [review] = of(outs, "BillingReview")
    assert review["reasons"][0]["code"] == "NO_PAYMENT_METHOD" and "2.75 EUR" in review["reasons"][0]["detail"]
    assert not of(outs, "PaymentEvent") and not local._holds


def test_a_payment_method_added_during_the_session_pays_at_the_cdr(pay) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(pm=None), pay)
    _, outs = apply(st, "CdrPriced", priced(), lookups(pm="pm_added_later"), pay)
    assert [e["kind"] for e in of(outs, "PaymentEvent")] == ["CHARGED"]


def test_a_cdr_in_another_currency_releases_the_hold_and_charges_that_currency(pay) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay)
    _, outs = apply(st, "CdrPriced", priced(currency="SEK", excl="25.00", incl="31.25"), lookups(), pay)
    assert [(e["kind"], e["amount"], e["currency"]) for e in of(outs, "PaymentEvent")] == [
        ("RELEASED", "50.00", "EUR"), ("CHARGED", "31.25", "SEK")]
    assert [s["kind"] for s in of(outs, "LedgerPostingSet")] == ["VOID_HOLD", "POSTING"]


def test_an_expired_hold_voids_the_ledger_hold_and_charges_directly(pay, clock) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay)
    clock.now = T0 + timedelta(days=8)
    _, outs = apply(st, "CdrPriced", priced(), lookups(), pay)
    encodes(outs)
    assert [(e["kind"], e["failure_code"]) for e in of(outs, "PaymentEvent")] == [
        ("FAILED", "hold_expired"), ("CHARGED", None)]
    assert [s["kind"] for s in of(outs, "LedgerPostingSet")] == ["VOID_HOLD", "POSTING"]


def test_a_credit_cdr_goes_to_review_and_touches_no_money(pay, local) -> None:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay)
    st, outs = apply(st, "CdrPriced", priced(credit=True, excl="-2.50", incl="-2.75"), lookups(), pay)
    assert [t for _, _, t, _ in outs] == ["BillingReview"] and st["settled"] == "REVIEW"
    assert all(h.hold.status is HoldStatus.AUTHORISED for h in local._holds.values())


def test_a_roamed_session_is_charged_at_its_cdr(pay) -> None:  # noqa: ANN001
    _, outs = apply(None, "CdrPriced", priced(origin="ROAMED"), lookups(), pay)
    assert [e["kind"] for e in of(outs, "PaymentEvent")] == ["CHARGED"]


def test_other_events_are_passed_over(pay) -> None:  # noqa: ANN001
    assert apply({"x": 1}, "SessionStopped", {}, lookups(), pay) == ({"x": 1}, [])
    assert apply(None, "PaymentEvent", {}, lookups(), pay) == (None, [])


def test_card_shaped_ids_never_reach_the_provider_as_metadata(pay, local) -> None:  # noqa: ANN001
    _, outs = apply(None, "SessionStarted", started(session="4111111111111111"), lookups(), pay)
    assert of(outs, "PaymentEvent")[0]["kind"] == "HOLD_AUTHORISED"
    [(request, _)] = local._idem.values()
    assert "4111111111111111" not in repr(request)


class Flaky:
    """A provider that is unavailable `fails` times, then answers like the local one (same keys)."""

    name = "local"

    def __init__(self, fails: int) -> None:
        self.fails, self.keys, self.inner = fails, [], LocalProvider()

    async def authorize_hold(self, amount, currency, pm, key, **kw):  # noqa: ANN001, ANN003, ANN201
        self.keys.append(key)
        if self.fails:
            self.fails -= 1
            raise ProviderUnavailable("503")
        return await self.inner.authorize_hold(amount, currency, pm, key, **kw)


def test_an_unavailable_provider_is_retried_with_the_same_key_then_recorded_as_retryable() -> None:
    flaky = Flaky(2)
    port = SyncPayments(flaky, retries=2, sleep=lambda s: None)  # type: ignore[arg-type]
    try:
        _, outs = apply(None, "SessionStarted", started(), lookups(), port)
        assert of(outs, "PaymentEvent")[0]["kind"] == "HOLD_AUTHORISED" and len(set(flaky.keys)) == 1
        flaky.fails = 5
        _, outs = apply(None, "SessionStarted", started("S2"), lookups(), port)
        [ev] = of(outs, "PaymentEvent")
        assert ev["kind"] == "FAILED" and ev["retryable"] is True and ev["failure_code"] == "provider_unavailable"
        assert of(outs, "BillingReview")
    finally:
        port.close()


def test_the_hold_amount_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Policy(Decimal("0"))


def refund_request(session: str = "S1", amount: str = "1.00", currency: str = "EUR") -> dict[str, Any]:
    rec = envelope(source="t", correlation_id=session, occurred_at=T0 + timedelta(hours=2))
    rec.update(session_id=session, account_id="acc-1", amount=amount, currency=currency, reason="broken cable",
               requested_by="op-1")
    return rec


def _settled(pay, excl: str = "2.50", incl: str = "2.75", hold: str = "50") -> dict[str, Any]:  # noqa: ANN001
    st, _ = apply(None, "SessionStarted", started(), lookups(), pay, Policy(Decimal(hold)))
    st, _ = apply(st, "CdrPriced", priced(excl=excl, incl=incl), lookups(), pay)
    return st


def test_a_refund_goes_back_through_the_charge_that_took_the_money_and_is_posted(pay, local) -> None:  # noqa: ANN001
    st = _settled(pay)
    req = refund_request(amount="1.00")
    st2, outs = apply(st, "RefundRequested", req, lookups(), pay)
    encodes(outs)
    [ev] = of(outs, "PaymentEvent")
    assert ev["kind"] == "REFUNDED" and ev["amount"] == "1.00" and ev["refund_id"] and ev["charge_id"]
    [ps] = of(outs, "LedgerPostingSet")
    assert balanced(ps) and {e["amount"] for e in ps["entries"]} == {"1.00"}
    # the same request again changes nothing; a second request may refund the rest, never more
    again, more = apply(st2, "RefundRequested", req, lookups(), pay)
    assert more == [] and again == st2
    st3, outs = apply(st2, "RefundRequested", refund_request(amount="1.75"), lookups(), pay)
    assert of(outs, "PaymentEvent")[0]["amount"] == "1.75"
    _, outs = apply(st3, "RefundRequested", refund_request(amount="0.01"), lookups(), pay)
    assert of(outs, "PaymentEvent") == [] and of(outs, "BillingReview")[0]["reasons"][0]["code"] == \
        "REFUND_NOT_POSSIBLE"


def test_a_refund_spanning_a_capture_and_an_excess_charge_uses_both(pay) -> None:  # noqa: ANN001
    st = _settled(pay, hold="2")  # 2.00 captured from the hold, 0.75 charged directly
    _, outs = apply(st, "RefundRequested", refund_request(amount="2.75"), lookups(), pay)
    assert sorted(e["amount"] for e in of(outs, "PaymentEvent")) == ["0.75", "2.00"]
    assert len(of(outs, "LedgerPostingSet")) == 2 and all(balanced(p) for p in of(outs, "LedgerPostingSet"))


def test_a_refund_for_an_unpaid_session_or_another_currency_goes_to_review(pay) -> None:  # noqa: ANN001
    _, outs = apply(None, "RefundRequested", refund_request(), lookups(), pay)
    assert [t for _, _, t, _ in outs] == ["BillingReview"]
    st = _settled(pay)
    _, outs = apply(st, "RefundRequested", refund_request(currency="SEK"), lookups(), pay)
    assert [t for _, _, t, _ in outs] == ["BillingReview"]


def test_a_roaming_partners_session_at_our_station_charges_no_card_and_raises_no_review(pay, local) -> None:  # noqa: ANN001
    """The eMSP owes it (booked as its receivable by billing): no card, no hold, no NO_PAYMENT_METHOD review."""
    st, outs = apply(None, "SessionStarted", started(token="PARTNER-UID"), lookups(), pay)
    assert outs == [] and st == {"start": "NO_ACCOUNT"}
    cdr = dict(priced(account="emsp:NL-EMX"), partner_country_code="NL", partner_party_id="EMX")
    st, outs = apply(st, "CdrPriced", cdr, lookups(), pay)
    assert outs == [] and st["settled"] == "PARTNER" and not local._holds
