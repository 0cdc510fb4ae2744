"""Payment providers: pre-authorisation hold at session start, capture at CDR, release, refund.

Why an interface: billing decides *when* and *how much*; a provider only moves card money.  Two implementations:
- `LocalProvider`: in memory and deterministic (ids derived from idempotency keys, an injectable clock), for dev,
  the demo and unit tests.  It has no notion of card data at all.
- `StripeCompatibleProvider`: the only I/O in ledger/billing — an httpx adapter for the Stripe PaymentIntents API
  with manual capture (create with `capture_method=manual` + `confirm=true`; capture with `amount_to_capture`;
  cancel to release; `/v1/refunds`), form-encoded, `Authorization: Bearer sk_...`, an `Idempotency-Key` on every
  POST, amounts in minor units, Stripe's error JSON mapped to the error types below.

Invariants:
- never card numbers in our stores: providers accept only opaque payment-method references (`pm_...`); a
  reference or metadata value that contains something shaped like a card number (13-19 digits passing Luhn) is
  refused with `InvalidPaymentMethod` *without echoing it*;
- the API secret never appears in a repr, a log line or an error message (scrubbed);
- every call takes an `idempotency_key`: the caller derives it from the event it is processing, so a retried or
  replayed call cannot hold, capture or refund twice (same key, same request -> same result; same key,
  different request -> `IdempotencyConflict`);
- amounts are Decimals with at most the currency's minor units (`NotRepresentable` otherwise): rounding is the
  caller's decision, never a side effect.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode

from ledger.billing.money import ZERO, from_minor, minor_units, to_minor

# -- errors ---------------------------------------------------------------------------------------------------


class PaymentError(Exception):
    """Base of every provider failure.  `code` is stable (stored in PaymentEvent.failure_code); `retryable`
    says whether trying again later (same idempotency key) can succeed."""

    code = "provider_error"
    retryable = False

    def __init__(self, message: str, *, provider_code: str | None = None, hold_id: str | None = None) -> None:
        super().__init__(message)
        self.provider_code = provider_code
        self.hold_id = hold_id


class PaymentDeclined(PaymentError):
    code = "declined"


class ActionRequired(PaymentError):
    """The issuer wants the customer to authenticate (3-D Secure / SCA); the hold is not usable yet."""

    code = "action_required"


class InvalidPaymentMethod(PaymentError):
    code = "invalid_payment_method"


class HoldExpired(PaymentError):
    code = "hold_expired"


class AmountAboveHold(PaymentError):
    code = "amount_above_hold"


class InvalidHoldState(PaymentError):
    """Capture/release of a hold that was already captured or released."""

    code = "invalid_hold_state"


class UnknownHold(PaymentError):
    code = "unknown_hold"


class RefundExceedsCharge(PaymentError):
    code = "refund_exceeds_charge"


class IdempotencyConflict(PaymentError):
    code = "idempotency_conflict"


class ProviderAuthError(PaymentError):
    code = "provider_auth"


class ProviderUnavailable(PaymentError):
    code = "provider_unavailable"
    retryable = True


# -- results --------------------------------------------------------------------------------------------------


class HoldStatus(StrEnum):
    AUTHORISED = "AUTHORISED"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    provider: str
    amount: Decimal
    currency: str
    status: HoldStatus
    payment_method_ref: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    """`charge_id` is what `refund` takes; `released` is the part of the hold the capture let go."""

    charge_id: str
    hold_id: str
    amount: Decimal
    currency: str
    released: Decimal


@dataclass(frozen=True, slots=True)
class Release:
    hold_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    charge_id: str
    amount: Decimal
    currency: str
    status: str


@runtime_checkable
class PaymentProvider(Protocol):
    """What billing needs from a payment provider.  All amounts in major units as Decimals."""

    name: str

    async def authorize_hold(self, amount: Decimal, currency: str, payment_method_ref: str, idempotency_key: str,
                             *, customer_ref: str | None = None,
                             metadata: Mapping[str, str] | None = None) -> Hold: ...

    async def capture(self, hold_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Capture: ...

    async def release(self, hold_id: str, *, idempotency_key: str) -> Release: ...

    async def refund(self, charge_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Refund: ...


# -- card-data guard ------------------------------------------------------------------------------------------

_PM_REF = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
_DIGIT_RUN = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when `text` contains a run of 13-19 digits (optionally space/dash separated, not part of a longer
    digit run) that passes the Luhn check: the shape of a card number (PAN).  Errs on the side of refusing."""
    return any(_luhn_ok(re.sub(r"[ -]", "", m.group())) for m in _DIGIT_RUN.finditer(text))


def check_opaque_ref(payment_method_ref: str, metadata: Mapping[str, str] | None = None) -> None:
    """Refuse anything but an opaque `pm_...` reference, and any metadata that carries card-number digits."""
    if not isinstance(payment_method_ref, str) or looks_like_card_number(payment_method_ref):
        raise InvalidPaymentMethod("payment method must be an opaque reference; card data refused")
    if not _PM_REF.match(payment_method_ref):
        raise InvalidPaymentMethod("payment method must be an opaque reference of the form pm_...")
    for k, v in (metadata or {}).items():
        if looks_like_card_number(str(k)) or looks_like_card_number(str(v)):
            raise InvalidPaymentMethod(f"metadata {k!r} looks like card data; refused")


def _positive_amount(amount: Decimal, currency: str) -> int:
    if not isinstance(amount, Decimal) or amount <= 0:
        raise ValueError(f"amount must be a positive Decimal, got {amount!r}")
    return to_minor(amount, currency)


# -- local provider -------------------------------------------------------------------------------------------


@dataclass
class _LocalHold:
    hold: Hold
    captured: Decimal = ZERO
    refunded: Decimal = ZERO
    charge_id: str | None = None


class LocalProvider:
    """A deterministic in-memory provider (dev, demo, tests).  No card data exists here: payment methods are
    opaque refs, and how a ref behaves is configured:

    - refs in `declines` (ref -> decline code) are declined; by default any ref starting `pm_decline` is declined
      (`card_declined`) and `pm_insufficient...` with `insufficient_funds`;
    - refs starting `pm_sca` need customer authentication (`ActionRequired`);
    - `limits` (ref -> max amount per hold) decline larger holds with `insufficient_funds`.

    Holds expire `hold_ttl` after authorisation by the injected clock.  A capture of less than the hold
    releases the rest (as card schemes do); one capture per hold; refunds up to the captured amount.
    """

    def __init__(self, *, name: str = "local", clock: Callable[[], datetime] | None = None,
                 hold_ttl: timedelta = timedelta(days=7), declines: Mapping[str, str] | None = None,
                 limits: Mapping[str, Decimal] | None = None) -> None:
        self.name = name
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._ttl = hold_ttl
        self._declines = dict(declines or {})
        self._limits = dict(limits or {})
        self._holds: dict[str, _LocalHold] = {}
        self._charges: dict[str, str] = {}  # charge id -> hold id
        self._idem: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def __repr__(self) -> str:
        return f"LocalProvider(name={self.name!r}, holds={len(self._holds)})"

    def _id(self, prefix: str, key: str) -> str:
        return f"{prefix}_{hashlib.sha256(f'{self.name}/{key}'.encode()).hexdigest()[:24]}"

    def _once(self, key: str, request: tuple[Any, ...], run: Callable[[], Any]) -> Any:
        """Same key + same request -> the stored outcome (result or error), replayed; different request ->
        IdempotencyConflict."""
        if not key:
            raise ValueError("an idempotency key is required")
        if key in self._idem:
            seen, outcome = self._idem[key]
            if seen != request:
                raise IdempotencyConflict(f"idempotency key {key!r} was used for a different request")
        else:
            try:
                outcome = run()
            except PaymentError as exc:
                outcome = exc
            self._idem[key] = (request, outcome)
        if isinstance(outcome, PaymentError):
            raise outcome
        return outcome

    def _decline_code(self, ref: str, amount: Decimal) -> str | None:
        if ref in self._declines:
            return self._declines[ref]
        if ref.startswith("pm_decline"):
            return "card_declined"
        if ref.startswith("pm_insufficient"):
            return "insufficient_funds"
        limit = self._limits.get(ref)
        if limit is not None and amount > limit:
            return "insufficient_funds"
        return None

    def _live(self, hold_id: str) -> _LocalHold:
        h = self._holds.get(hold_id)
        if h is None:
            raise UnknownHold(f"no hold {hold_id}")
        if h.hold.status is HoldStatus.AUTHORISED and h.hold.expires_at is not None \
                and self._clock() >= h.hold.expires_at:
            h.hold = replace(h.hold, status=HoldStatus.EXPIRED)
        return h

    def hold(self, hold_id: str) -> Hold:
        """The current state of a hold (for tests and the demo)."""
        return self._live(hold_id).hold

    async def authorize_hold(self, amount: Decimal, currency: str, payment_method_ref: str, idempotency_key: str,
                             *, customer_ref: str | None = None,
                             metadata: Mapping[str, str] | None = None) -> Hold:
        check_opaque_ref(payment_method_ref, metadata)
        _positive_amount(amount, currency)
        request = ("hold", amount, currency, payment_method_ref, customer_ref, tuple(sorted((metadata or {}).items())))

        def run() -> Hold:
            hold_id = self._id("hold", idempotency_key)
            if self._decline_code(payment_method_ref, amount) is not None:
                code = self._decline_code(payment_method_ref, amount)
                raise PaymentDeclined(f"payment method declined ({code})", provider_code=code)
            if payment_method_ref.startswith("pm_sca"):
                raise ActionRequired("the customer must authenticate this payment", hold_id=hold_id)
            hold = Hold(hold_id, self.name, amount, currency, HoldStatus.AUTHORISED, payment_method_ref,
                        self._clock() + self._ttl)
            self._holds[hold_id] = _LocalHold(hold)
            return hold

        return self._once(idempotency_key, request, run)

    async def capture(self, hold_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Capture:
        _positive_amount(amount, currency)

        def run() -> Capture:
            h = self._live(hold_id)
            if h.hold.status is HoldStatus.EXPIRED:
                raise HoldExpired(f"hold {hold_id} expired at {h.hold.expires_at}", hold_id=hold_id)
            if h.hold.status is not HoldStatus.AUTHORISED:
                raise InvalidHoldState(f"hold {hold_id} is {h.hold.status}", hold_id=hold_id)
            if currency != h.hold.currency:
                raise PaymentError(f"hold {hold_id} is in {h.hold.currency}, not {currency}", hold_id=hold_id)
            if amount > h.hold.amount:
                raise AmountAboveHold(f"capture {amount} > hold {h.hold.amount} {currency}", hold_id=hold_id)
            h.hold = replace(h.hold, status=HoldStatus.CAPTURED)
            h.captured = amount
            h.charge_id = self._id("ch", idempotency_key)
            self._charges[h.charge_id] = hold_id
            return Capture(h.charge_id, hold_id, amount, currency, h.hold.amount - amount)

        return self._once(idempotency_key, ("capture", hold_id, amount, currency), run)

    async def release(self, hold_id: str, *, idempotency_key: str) -> Release:
        def run() -> Release:
            h = self._live(hold_id)
            if h.hold.status is HoldStatus.EXPIRED:
                raise HoldExpired(f"hold {hold_id} expired (already released by the issuer)", hold_id=hold_id)
            if h.hold.status is not HoldStatus.AUTHORISED:
                raise InvalidHoldState(f"hold {hold_id} is {h.hold.status}", hold_id=hold_id)
            h.hold = replace(h.hold, status=HoldStatus.RELEASED)
            return Release(hold_id, h.hold.amount, h.hold.currency)

        return self._once(idempotency_key, ("release", hold_id), run)

    async def refund(self, charge_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Refund:
        _positive_amount(amount, currency)

        def run() -> Refund:
            hold_id = self._charges.get(charge_id)
            if hold_id is None:
                raise UnknownHold(f"no charge {charge_id}")
            h = self._holds[hold_id]
            if currency != h.hold.currency:
                raise PaymentError(f"charge {charge_id} is in {h.hold.currency}, not {currency}")
            if h.refunded + amount > h.captured:
                raise RefundExceedsCharge(
                    f"refund {amount} exceeds what is left of charge {charge_id} ({h.captured - h.refunded})")
            h.refunded += amount
            return Refund(self._id("re", idempotency_key), charge_id, amount, currency, "succeeded")

        return self._once(idempotency_key, ("refund", charge_id, amount, currency), run)


# -- Stripe-compatible adapter --------------------------------------------------------------------------------

#: currencies Stripe does not express in ISO 4217 minor units (it wants e.g. ISK/UGX in hundredths, and
#: HUF/TWD amounts divisible by 100 for some operations): refused rather than risking a factor-100 charge.
STRIPE_SPECIAL_CURRENCIES = frozenset({"ISK", "UGX", "HUF", "TWD"})


class StripeCompatibleProvider:
    """Stripe PaymentIntents with manual capture, over httpx (async).

    `base_url` defaults to Stripe; tests point it at a local server that speaks the same subset.  The API key
    is kept private and scrubbed from every message; `repr()` shows only its prefix.
    """

    def __init__(self, api_key: str, *, base_url: str = "https://api.stripe.com", name: str = "stripe",
                 timeout: float = 20.0, stripe_version: str | None = None, client: Any | None = None) -> None:
        import httpx

        if not isinstance(api_key, str) or not api_key.startswith(("sk_", "rk_")):
            raise ValueError("a Stripe secret or restricted key (sk_... / rk_...) is required")
        self.name = name
        self._key = api_key
        self._base = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"}
        if stripe_version:
            headers["Stripe-Version"] = stripe_version
        self._own_client = client is None
        self._http = client or httpx.AsyncClient(timeout=timeout)
        self._headers = headers

    def __repr__(self) -> str:
        return f"StripeCompatibleProvider(name={self.name!r}, base_url={self._base!r}, api_key={self._redacted()})"

    __str__ = __repr__

    def _redacted(self) -> str:
        return f"'{self._key.split('_')[0]}_…redacted'"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, self._redacted()) if self._key else text

    async def aclose(self) -> None:
        if self._own_client:
            await self._http.aclose()

    async def __aenter__(self) -> StripeCompatibleProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def _currency(currency: str) -> str:
        minor_units(currency)
        if currency in STRIPE_SPECIAL_CURRENCIES:
            raise ValueError(f"{currency}: Stripe's amount convention differs from ISO 4217; not supported")
        return currency.lower()

    async def _post(self, path: str, form: list[tuple[str, str]], idempotency_key: str,
                    *, hold_id: str | None = None, op: str) -> dict[str, Any]:
        import httpx

        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        headers = {**self._headers, "Idempotency-Key": idempotency_key,
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            r = await self._http.post(f"{self._base}{path}", content=urlencode(form).encode(), headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(self._scrub(f"{op}: {type(exc).__name__}: {exc}"), hold_id=hold_id) from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400 or not isinstance(body, dict):
            raise self._error(r.status_code, body, op=op, hold_id=hold_id)
        return body

    def _error(self, status: int, body: Any, *, op: str, hold_id: str | None) -> PaymentError:
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        etype, code = err.get("type"), err.get("code")
        decline = err.get("decline_code")
        msg = self._scrub(f"{op}: HTTP {status}: {err.get('message') or 'no error message'}")
        pi = err.get("payment_intent") if isinstance(err.get("payment_intent"), dict) else {}
        hold_id = hold_id or pi.get("id")
        kw = {"provider_code": decline or code or etype, "hold_id": hold_id}
        if status == 401 or etype == "authentication_error":
            return ProviderAuthError(msg, **kw)
        if status == 429 or etype == "rate_limit_error" or status >= 500 or etype == "api_error":
            return ProviderUnavailable(msg, **kw)
        if etype == "idempotency_error":
            return IdempotencyConflict(msg, **kw)
        if etype == "card_error" or status == 402:
            if code == "authentication_required":
                return ActionRequired(msg, **kw)
            return PaymentDeclined(msg, **kw)
        if code == "resource_missing" or status == 404:
            return UnknownHold(msg, **kw)
        if code == "amount_too_large":
            return RefundExceedsCharge(msg, **kw) if op == "refund" else AmountAboveHold(msg, **kw)
        if code == "charge_already_refunded":
            return RefundExceedsCharge(msg, **kw)
        if code == "payment_intent_unexpected_state":
            if pi.get("status") == "canceled" and pi.get("cancellation_reason") == "automatic":
                return HoldExpired(msg, **kw)
            return InvalidHoldState(msg, **kw)
        return PaymentError(msg, **kw)

    async def authorize_hold(self, amount: Decimal, currency: str, payment_method_ref: str, idempotency_key: str,
                             *, customer_ref: str | None = None,
                             metadata: Mapping[str, str] | None = None) -> Hold:
        check_opaque_ref(payment_method_ref, metadata)
        minor = _positive_amount(amount, currency)
        form = [("amount", str(minor)), ("currency", self._currency(currency)),
                ("payment_method", payment_method_ref), ("payment_method_types[0]", "card"),
                ("capture_method", "manual"), ("confirm", "true")]
        if customer_ref is not None:
            form.append(("customer", customer_ref))
        for k, v in sorted((metadata or {}).items()):
            form.append((f"metadata[{k}]", str(v)))
        pi = await self._post("/v1/payment_intents", form, idempotency_key, op="authorize_hold")
        status, pi_id = pi.get("status"), pi.get("id")
        if status == "requires_capture":
            capturable = pi.get("amount_capturable", minor)
            return Hold(str(pi_id), self.name, from_minor(int(capturable), currency), currency, HoldStatus.AUTHORISED,
                        payment_method_ref, None)
        if status == "requires_action":
            raise ActionRequired("authorize_hold: the customer must authenticate this payment",
                                 provider_code="requires_action", hold_id=pi_id)
        last = pi.get("last_payment_error") if isinstance(pi.get("last_payment_error"), dict) else {}
        raise PaymentDeclined(self._scrub(f"authorize_hold: payment intent is {status}: {last.get('message', '')}"),
                              provider_code=last.get("decline_code") or last.get("code") or str(status),
                              hold_id=pi_id)

    async def capture(self, hold_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Capture:
        minor = _positive_amount(amount, currency)
        self._currency(currency)
        pi = await self._post(f"/v1/payment_intents/{hold_id}/capture", [("amount_to_capture", str(minor))],
                              idempotency_key, hold_id=hold_id, op="capture")
        if pi.get("status") != "succeeded":
            raise PaymentError(f"capture: payment intent {hold_id} is {pi.get('status')} after capture",
                               provider_code=str(pi.get("status")), hold_id=hold_id)
        received = from_minor(int(pi.get("amount_received", minor)), currency)
        held = from_minor(int(pi.get("amount", minor)), currency)
        return Capture(str(pi.get("id", hold_id)), hold_id, received, currency, held - received)

    async def release(self, hold_id: str, *, idempotency_key: str) -> Release:
        pi = await self._post(f"/v1/payment_intents/{hold_id}/cancel", [], idempotency_key, hold_id=hold_id,
                              op="release")
        currency = str(pi.get("currency", "")).upper()
        return Release(hold_id, from_minor(int(pi.get("amount", 0)), currency), currency)

    async def refund(self, charge_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Refund:
        minor = _positive_amount(amount, currency)
        self._currency(currency)
        ref_field = "charge" if charge_id.startswith("ch_") else "payment_intent"
        r = await self._post("/v1/refunds", [(ref_field, charge_id), ("amount", str(minor))], idempotency_key,
                             op="refund")
        status = str(r.get("status"))
        if status in ("failed", "canceled"):
            raise PaymentError(f"refund: refund {r.get('id')} {status}: {r.get('failure_reason', '')}",
                               provider_code=str(r.get("failure_reason") or status))
        return Refund(str(r.get("id")), charge_id, from_minor(int(r.get("amount", minor)), currency), currency,
                      status)


__all__ = [
    "ActionRequired", "AmountAboveHold", "Capture", "Hold", "HoldExpired", "HoldStatus", "IdempotencyConflict",
    "InvalidHoldState", "InvalidPaymentMethod", "LocalProvider", "PaymentDeclined", "PaymentError",
    "PaymentProvider", "ProviderAuthError", "ProviderUnavailable", "Refund", "RefundExceedsCharge", "Release",
    "StripeCompatibleProvider", "UnknownHold", "check_opaque_ref", "looks_like_card_number",
]
