"""Contract test of the Stripe-compatible adapter's wire format.

`FakeStripe` below is NOT Stripe: it is a small HTTP server written for this test (a real socket on a free port,
stdlib http.server) that implements the subset of the Stripe PaymentIntents/Refunds API the adapter uses, the way
Stripe documents it (form-encoded bodies, Bearer auth, Idempotency-Key replay and mismatch, error JSON with
`type`/`code`/`decline_code`/`payment_intent`), and records every request.  The tests assert what the adapter
puts on the wire (paths, exact form fields, headers, minor units, idempotency keys) and how it maps each error
shape to billing's error types.  Whether real Stripe behaves like this fake is not tested here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

from ledger.billing.money import NotRepresentable
from ledger.billing.payments import (
    ActionRequired, AmountAboveHold, HoldExpired, HoldStatus, IdempotencyConflict, InvalidHoldState,
    InvalidPaymentMethod, PaymentDeclined, PaymentProvider, ProviderAuthError, ProviderUnavailable,
    RefundExceedsCharge, StripeCompatibleProvider, UnknownHold,
)

D = Decimal
KEY = "sk_test_51Hxx_SECRET_never_in_logs_0042"


class FakeStripe(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunded: dict[str, int] = {}
        self.idem: dict[str, tuple[str, list[tuple[str, str]], int, dict[str, Any]]] = {}
        self.fail_next: tuple[int, dict[str, Any]] | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    # -- the API subset -------------------------------------------------------------------------------------
    def handle(self, path: str, form: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        f = dict(form)
        parts = path.strip("/").split("/")
        if parts == ["v1", "payment_intents"]:
            return self.create(f)
        if len(parts) == 4 and parts[:2] == ["v1", "payment_intents"]:
            pi = self.intents.get(parts[2])
            if pi is None:
                return 404, _err("invalid_request_error", f"No such payment_intent: '{parts[2]}'",
                                 code="resource_missing")
            return self.capture(pi, f) if parts[3] == "capture" else self.cancel(pi)
        if parts == ["v1", "refunds"]:
            return self.refund(f)
        return 404, _err("invalid_request_error", "Unrecognized request URL")

    def create(self, f: dict[str, str]) -> tuple[int, dict[str, Any]]:
        pid = f"pi_{len(self.intents) + 1:04d}"
        pi = {"id": pid, "object": "payment_intent", "amount": int(f["amount"]), "currency": f["currency"],
              "capture_method": f.get("capture_method"), "payment_method": f.get("payment_method"),
              "amount_capturable": 0, "amount_received": 0, "status": "requires_payment_method",
              "cancellation_reason": None, "latest_charge": None}
        self.intents[pid] = pi
        pm = f.get("payment_method")
        if pm == "pm_card_chargeDeclined":
            return 402, _err("card_error", "Your card was declined.", code="card_declined",
                             decline_code="generic_decline", payment_intent=pi)
        if pm == "pm_card_authenticationRequired":
            pi["status"] = "requires_action"
            return 200, pi
        pi.update(status="requires_capture", amount_capturable=pi["amount"])
        return 200, pi

    def capture(self, pi: dict[str, Any], f: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if pi["status"] != "requires_capture":
            return 400, _err("invalid_request_error", f"This PaymentIntent could not be captured because it has a "
                             f"status of {pi['status']}.", code="payment_intent_unexpected_state", payment_intent=pi)
        amount = int(f.get("amount_to_capture", pi["amount_capturable"]))
        if amount > pi["amount_capturable"]:
            return 400, _err("invalid_request_error", "amount_to_capture is greater than amount_capturable",
                             code="amount_too_large", payment_intent=pi)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0, latest_charge=f"ch_{pi['id']}")
        return 200, pi

    def cancel(self, pi: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if pi["status"] not in ("requires_capture", "requires_action", "requires_payment_method"):
            return 400, _err("invalid_request_error", "cannot cancel", code="payment_intent_unexpected_state",
                             payment_intent=pi)
        pi.update(status="canceled", amount_capturable=0)
        return 200, pi

    def refund(self, f: dict[str, str]) -> tuple[int, dict[str, Any]]:
        pid = f.get("payment_intent") or f.get("charge", "").removeprefix("ch_")
        pi = self.intents.get(pid)
        if pi is None or pi["status"] != "succeeded":
            return 404, _err("invalid_request_error", "No such charge", code="resource_missing")
        amount = int(f.get("amount", pi["amount_received"]))
        if self.refunded.get(pid, 0) + amount > pi["amount_received"]:
            return 400, _err("invalid_request_error", "Refund amount is greater than unrefunded amount on charge",
                             code="amount_too_large")
        self.refunded[pid] = self.refunded.get(pid, 0) + amount
        return 200, {"id": f"re_{len(self.refunded)}_{self.refunded[pid]}", "object": "refund", "amount": amount,
                     "currency": pi["currency"], "payment_intent": pid, "status": "succeeded"}


def _err(etype: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"error": {"type": etype, "message": message, **fields}}


class _Handler(BaseHTTPRequestHandler):
    server: FakeStripe

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = parse_qsl(body, keep_blank_values=True)
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "headers": dict(self.headers), "form": form})
            status, payload, replayed = self._answer(form, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, form: list[tuple[str, str]], body: str) -> tuple[int, dict[str, Any], bool]:
        srv = self.server
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            # worst case on purpose: the error echoes the key it got, so the adapter must scrub it
            return 401, _err("invalid_request_error", f"Invalid API Key provided: {given}"), False
        if srv.fail_next is not None:
            status, payload = srv.fail_next
            srv.fail_next = None
            return status, payload, False
        key = self.headers.get("Idempotency-Key")
        if key is not None and key in srv.idem:
            path, seen, status, payload = srv.idem[key]
            if (path, seen) != (self.path, form):
                return 400, _err("idempotency_error", "Keys for idempotent requests can only be used with the same "
                                 "parameters they were first used with."), False
            return status, payload, True
        status, payload = srv.handle(self.path, form)
        if key is not None:
            srv.idem[key] = (self.path, form, status, json.loads(json.dumps(payload)))
        return status, payload, False


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    srv = FakeStripe()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
async def provider(stripe: FakeStripe) -> Any:
    p = StripeCompatibleProvider(KEY, base_url=stripe.url)
    yield p
    await p.aclose()


def last(stripe: FakeStripe) -> dict[str, Any]:
    return stripe.requests[-1]


async def test_authorize_hold_creates_a_manual_capture_payment_intent_with_exact_fields(
        provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    assert isinstance(provider, PaymentProvider)
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "start/s-1", customer_ref="cus_9",
                                         metadata={"session_id": "s-1"})
    req = last(stripe)
    assert req["path"] == "/v1/payment_intents"
    assert req["form"] == [("amount", "3000"), ("currency", "eur"), ("payment_method", "pm_card_visa"),
                           ("payment_method_types[0]", "card"), ("capture_method", "manual"), ("confirm", "true"),
                           ("customer", "cus_9"), ("metadata[session_id]", "s-1")]
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["headers"]["Idempotency-Key"] == "start/s-1"
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert (hold.hold_id, hold.amount, hold.currency, hold.status) == ("pi_0001", D("30.00"), "EUR",
                                                                       HoldStatus.AUTHORISED)


async def test_a_retry_with_the_same_key_gets_the_same_hold_and_no_second_intent(
        provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    a = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "start/s-1")
    b = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "start/s-1")
    assert a == b and len(stripe.intents) == 1 and len(stripe.requests) == 2
    with pytest.raises(IdempotencyConflict):
        await provider.authorize_hold(D("31.00"), "EUR", "pm_card_visa", "start/s-1")


async def test_capture_sends_amount_to_capture_in_minor_units_and_reports_the_release(
        provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "k-hold")
    cap = await provider.capture(hold.hold_id, D("24.20"), "EUR", idempotency_key="k-cap")
    req = last(stripe)
    assert req["path"] == f"/v1/payment_intents/{hold.hold_id}/capture"
    assert req["form"] == [("amount_to_capture", "2420")] and req["headers"]["Idempotency-Key"] == "k-cap"
    assert (cap.charge_id, cap.amount, cap.released) == (hold.hold_id, D("24.20"), D("5.80"))


async def test_capture_errors_map_to_billing_errors(provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "k1")
    with pytest.raises(AmountAboveHold):
        await provider.capture(hold.hold_id, D("30.01"), "EUR", idempotency_key="k2")
    with pytest.raises(UnknownHold):
        await provider.capture("pi_missing", D("1.00"), "EUR", idempotency_key="k3")
    stripe.intents[hold.hold_id].update(status="canceled", cancellation_reason="automatic")  # the auth lapsed
    with pytest.raises(HoldExpired) as e:
        await provider.capture(hold.hold_id, D("10.00"), "EUR", idempotency_key="k4")
    assert e.value.hold_id == hold.hold_id
    other = await provider.authorize_hold(D("5.00"), "EUR", "pm_card_visa", "k5")
    await provider.capture(other.hold_id, D("5.00"), "EUR", idempotency_key="k6")
    with pytest.raises(InvalidHoldState):
        await provider.capture(other.hold_id, D("1.00"), "EUR", idempotency_key="k7")


async def test_release_cancels_the_intent(provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "k1")
    rel = await provider.release(hold.hold_id, idempotency_key="k-rel")
    req = last(stripe)
    assert req["path"] == f"/v1/payment_intents/{hold.hold_id}/cancel" and req["form"] == []
    assert req["headers"]["Idempotency-Key"] == "k-rel"
    assert (rel.amount, rel.currency) == (D("30.00"), "EUR") and stripe.intents[hold.hold_id]["status"] == "canceled"


async def test_refund_by_payment_intent_or_charge(provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_card_visa", "k1")
    cap = await provider.capture(hold.hold_id, D("24.20"), "EUR", idempotency_key="k2")
    r = await provider.refund(cap.charge_id, D("4.20"), "EUR", idempotency_key="k-ref-1")
    assert last(stripe)["path"] == "/v1/refunds"
    assert last(stripe)["form"] == [("payment_intent", hold.hold_id), ("amount", "420")]
    assert (r.amount, r.status, r.charge_id) == (D("4.20"), "succeeded", cap.charge_id)
    await provider.refund(f"ch_{hold.hold_id}", D("1.00"), "EUR", idempotency_key="k-ref-2")
    assert last(stripe)["form"] == [("charge", f"ch_{hold.hold_id}"), ("amount", "100")]
    with pytest.raises(RefundExceedsCharge):
        await provider.refund(cap.charge_id, D("19.01"), "EUR", idempotency_key="k-ref-3")


async def test_declines_and_authentication_required(provider: StripeCompatibleProvider) -> None:
    with pytest.raises(PaymentDeclined) as e:
        await provider.authorize_hold(D("30.00"), "EUR", "pm_card_chargeDeclined", "k1")
    assert e.value.provider_code == "generic_decline" and e.value.hold_id == "pi_0001"
    with pytest.raises(ActionRequired) as a:
        await provider.authorize_hold(D("30.00"), "EUR", "pm_card_authenticationRequired", "k2")
    assert a.value.hold_id == "pi_0002"


async def test_a_wrong_key_is_an_auth_error_and_the_key_never_leaks(stripe: FakeStripe) -> None:
    wrong = "sk_test_WRONG_secret_value_123"
    async with StripeCompatibleProvider(wrong, base_url=stripe.url) as p:
        with pytest.raises(ProviderAuthError) as e:
            await p.authorize_hold(D("1.00"), "EUR", "pm_card_visa", "k1")
        assert wrong not in str(e.value) and wrong not in repr(e.value)
        assert wrong not in repr(p) and wrong not in str(p) and "redacted" in repr(p)


@pytest.mark.parametrize("status, body", [
    (500, _err("api_error", "Something went wrong on Stripe's end.")),
    (429, _err("rate_limit_error", "Too many requests")),
    (503, {}),
])
async def test_server_trouble_is_retryable(provider: StripeCompatibleProvider, stripe: FakeStripe, status: int,
                                           body: dict) -> None:
    stripe.fail_next = (status, body)
    with pytest.raises(ProviderUnavailable) as e:
        await provider.authorize_hold(D("1.00"), "EUR", "pm_card_visa", "k1")
    assert e.value.retryable
    hold = await provider.authorize_hold(D("1.00"), "EUR", "pm_card_visa", "k1")  # retry, same key: works
    assert hold.status is HoldStatus.AUTHORISED


async def test_an_unreachable_provider_is_retryable() -> None:
    srv = FakeStripe()
    url = srv.url
    srv.server_close()  # nothing listens there any more
    async with StripeCompatibleProvider(KEY, base_url=url, timeout=2) as p:
        with pytest.raises(ProviderUnavailable) as e:
            await p.authorize_hold(D("1.00"), "EUR", "pm_card_visa", "k1")
    assert e.value.retryable and KEY not in str(e.value)


async def test_minor_units_per_currency(provider: StripeCompatibleProvider, stripe: FakeStripe) -> None:
    await provider.authorize_hold(D("1500"), "JPY", "pm_card_visa", "k1")
    assert ("amount", "1500") in last(stripe)["form"] and ("currency", "jpy") in last(stripe)["form"]
    hold = await provider.authorize_hold(D("1.250"), "KWD", "pm_card_visa", "k2")
    assert ("amount", "1250") in last(stripe)["form"] and hold.amount == D("1.250")


async def test_what_is_refused_never_reaches_the_wire(provider: StripeCompatibleProvider,
                                                      stripe: FakeStripe) -> None:
    with pytest.raises(NotRepresentable):
        await provider.authorize_hold(D("30.005"), "EUR", "pm_card_visa", "k1")
    with pytest.raises(ValueError):
        await provider.authorize_hold(D("100"), "ISK", "pm_card_visa", "k2")
    with pytest.raises(InvalidPaymentMethod):
        await provider.authorize_hold(D("30.00"), "EUR", "4242424242424242", "k3")
    with pytest.raises(ValueError):
        await provider.capture("pi_x", D("1.00"), "EUR", idempotency_key="")
    assert stripe.requests == []


def test_a_publishable_key_is_not_accepted() -> None:
    with pytest.raises(ValueError):
        StripeCompatibleProvider("pk_test_abc")
