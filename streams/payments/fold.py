"""Payments per session: a hold at SessionStarted, capture (and release of the rest) at CdrPriced.

The fold decides *what* to ask the payment provider and turns each answer into events; the provider is reached
through a synchronous port (`Payments`, implemented over the async providers by streams/payments/port.py) and
the few facts it needs from projections through `Lookups`, both injected, so the fold itself holds no I/O and
the unit tests drive it with the real in-memory `LocalProvider`.

State is keyed by SESSION ID (the key of `sessions`; CdrPriced carries it too although `billing` is keyed by
account).  Per session:

- SessionStarted (our own station; `sessions` only carries own-station sessions): when the id token belongs to
  an account with a payment-method reference (`pm_...`), place a hold of `Policy.hold_amount` in the currency of
  the station's tariff at the start (`Policy.default_currency` without one).  Success -> PaymentEvent
  HOLD_AUTHORISED on `billing` + the hold's LedgerPostingSet (HOLD) on `ledger`.  Refused -> PaymentEvent FAILED
  + a BillingReview (subject PAYMENT).  No account or no payment method -> nothing is held (remembered).
- CdrPriced: the driver owes the CDR's gross (incl. VAT, rounded to the currency).
  - with an authorised hold in the same currency: capture min(hold, gross) -> CAPTURED (its `released_amount` is
    the rest of the hold, which the provider releases with the capture, as card schemes do) + POST_HOLD posting
    (the ledger releases the rest the same way); a gross above the hold charges the excess directly -> CHARGED +
    a DIRECT_CHARGE posting.  A zero gross or a fleet-paid session releases the hold -> RELEASED + VOID_HOLD.
  - an expired hold: FAILED (hold_expired), VOID_HOLD of the ledger hold, then a direct charge of the gross;
  - no hold (hold refused, none placed, a currency other than the hold's, a roamed session): a direct charge of
    the gross with the account's payment method (the one remembered from the start, else looked up now); no
    payment method -> a BillingReview (NO_PAYMENT_METHOD): the receivable stays open, nothing is lost;
  - a credit CDR -> a BillingReview (refunds are a reviewer's decision here), the hold is left alone;
  - any refused payment step -> FAILED + BillingReview with the provider's code.
- Cross-topic order is not guaranteed (two topics, two consumers' positions): a CdrPriced of an own session whose
  start has not been seen yet is kept in the state; when the start arrives, no hold is placed and the gross is
  charged directly, with ids derived from the CdrPriced exactly as if it had been handled then.

Invariants (tests/unit/billing/test_payments_fold.py names each):
- IDEMPOTENT PROVIDER CALLS: every call's idempotency key is derived from the id of the event that caused it and
  the step (`cv:<step>:<event id>`), so re-processing a batch after a crash re-sends the same keys and the
  provider answers with the same result: a re-delivery never holds, captures or charges twice.
- DETERMINISTIC OUTPUTS: every output's event id is derived from the causing event and a fixed tag
  (chargeverse.events.derive), so a re-processed batch re-publishes identical events and the sinks drop them;
  ledger posting ids come from ledger.billing.postings_plan (unique per cause and plan kind).
- ONCE PER SESSION: a session is settled at most once; later and re-delivered events change nothing.
- NEVER card data: only `pm_...` references travel; the providers refuse anything shaped like a card number.
- NEVER float money: Decimals, formatted as plain strings on the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Protocol

from chargeverse.events import derive
from chargeverse.topics import BILLING, LEDGER
from ledger.billing.cdr_checks import Price
from ledger.billing.events import (
    billing_review, payment_captured, payment_charged, payment_failed, payment_hold, payment_refunded,
    payment_released,
)
from ledger.billing.money import ZERO, fmt, quantize
from ledger.billing.payments import (
    Capture, Hold, HoldExpired, PaymentError, Refund, Release, looks_like_card_number,
)
from ledger.billing.postings_plan import (
    DriverPayer, PostingPlan, capture_plan, direct_charge_plan, gross_net_vat, hold_plan, refund_plan,
    release_plan, settle_against_hold,
)

SOURCE = "streams.payments"
#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]


class Payments(Protocol):
    """The provider, synchronously (streams/payments/port.py): same methods and errors as PaymentProvider."""

    name: str

    def authorize_hold(self, amount: Decimal, currency: str, payment_method_ref: str, idempotency_key: str, *,
                       metadata: Mapping[str, str] | None = None) -> Hold: ...

    def capture(self, hold_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Capture: ...

    def release(self, hold_id: str, *, idempotency_key: str) -> Release: ...

    def refund(self, charge_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Refund: ...


@dataclass(frozen=True)
class Lookups:
    """What the fold asks of the projections."""

    #: id token uid -> the account it belongs to, or None
    account_of: Callable[[str], str | None]
    #: account id -> its default payment-method reference (pm_...), or None
    payment_method_of: Callable[[str], str | None]
    #: (station id, session start) -> ISO 4217 currency of the station's tariff then, or None
    currency_at: Callable[[str, datetime], str | None]


@dataclass(frozen=True)
class Policy:
    """How much to hold (in the currency of the station's tariff; `default_currency` when it has none)."""

    hold_amount: Decimal = Decimal("50.00")
    default_currency: str = "EUR"

    def __post_init__(self) -> None:
        if not isinstance(self.hold_amount, Decimal) or self.hold_amount <= 0:
            raise ValueError(f"the hold amount must be a positive Decimal, not {self.hold_amount!r}")


def idempotency_key(step: str, cause_event_id: str) -> str:
    """The provider idempotency key of one step caused by one event (stable across re-processing)."""
    return f"cv:{step}:{cause_event_id}"


# ---- envelopes kept in the state (JSON) ----------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(v: Any) -> int:
    """A timestamp-micros value (an aware datetime as decoded, or already an int) as int microseconds."""
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        return (dt - _EPOCH) // timedelta(microseconds=1)
    return int(v)


def _dt(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


_CDR_FIELDS = ("session_id", "account_id", "fleet_id", "origin", "currency", "total_cost_excl_vat",
               "total_cost_incl_vat", "credit", "cdr_id", "partner_party_id")


def _pack_cdr(rec: Mapping[str, Any]) -> dict[str, Any]:
    """What settling needs of a CdrPriced, JSON-safe (kept in the state when it arrives before the start)."""
    out = {k: rec.get(k) for k in _CDR_FIELDS}
    out.update(event_id=rec["event_id"], correlation_id=rec["correlation_id"],
               occurred_at=_micros(rec["occurred_at"]), recorded_at=_micros(rec["recorded_at"]))
    return out


def _cause(packed: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope of a packed event, for `derive`."""
    return {"event_id": packed["event_id"], "correlation_id": packed["correlation_id"],
            "occurred_at": _dt(packed["occurred_at"]), "recorded_at": _dt(packed["recorded_at"])}


def _payload(rec: Mapping[str, Any]) -> str:
    return json.dumps({k: (_dt(_micros(v)).isoformat() if isinstance(v, datetime) else v) for k, v in rec.items()},
                      sort_keys=True, default=str)


def _gross(cdr: Mapping[str, Any]) -> Decimal:
    incl = cdr.get("total_cost_incl_vat")
    price = Price(Decimal(cdr["total_cost_excl_vat"]), None if incl is None else Decimal(incl))
    return gross_net_vat(price, cdr["currency"])[0]


def _safe_metadata(**kv: str | None) -> dict[str, str]:
    """Provider metadata without anything a card-data guard could mistake for a card number."""
    return {k: v for k, v in kv.items() if v and not looks_like_card_number(v)}


# ---- the fold ------------------------------------------------------------------------------------------------

class _Run:
    """One event's processing: the outputs it emits, in order, each derived from `cause` with a unique tag."""

    def __init__(self, cause: Mapping[str, Any], session_id: str, pay: Payments) -> None:
        self.cause, self.session_id, self.pay = cause, session_id, pay
        self.outs: list[Output] = []

    def event(self, key: str, etype: str, tag: str, payload: Mapping[str, Any]) -> None:
        self.outs.append((BILLING.name, key, etype, derive(dict(self.cause), tag=tag, source=SOURCE, **payload)))

    def posting(self, plan: PostingPlan, tag: str) -> None:
        rec = derive(dict(self.cause), tag=tag, source=SOURCE, **plan.ledger_fields())
        self.outs.append((LEDGER.name, plan.ledger_key, "LedgerPostingSet", rec))

    def review(self, account_id: str | None, tag: str, code: str, field: str, detail: str, payload: str,
               payload_type: str) -> None:
        rec = billing_review(problems=[_Reason(code, field, detail)], payload=payload, source_event_id=
                             self.cause["event_id"], subject="PAYMENT", payload_type=payload_type,
                             session_id=self.session_id, account_id=account_id)
        self.event(account_id or self.session_id, "BillingReview", tag, rec)

    def failed(self, err: PaymentError, *, tag: str, operation: str, account_id: str, amount: Decimal,
               currency: str, key: str, payment_method_ref: str | None = None, hold_id: str | None = None,
               payload: str, payload_type: str) -> None:
        self.event(account_id, "PaymentEvent", tag, payment_failed(
            err, operation=operation, account_id=account_id, provider=self.pay.name, amount=amount,
            currency=currency, idempotency_key=key, session_id=self.session_id,
            payment_method_ref=payment_method_ref, hold_id=hold_id))
        self.review(account_id, f"{tag}/review", f"PAYMENT_{err.code.upper()}", operation,
                    f"{operation} of {fmt(amount)} {currency} through {self.pay.name} failed: {err}"
                    + (f" (provider code {err.provider_code})" if err.provider_code else ""),
                    payload, payload_type)


@dataclass(frozen=True)
class _Reason:
    code: str
    field: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "detail": self.detail[:2000]}


def apply(state: dict[str, Any] | None, event_type: str, rec: Mapping[str, Any], lookups: Lookups,
          pay: Payments, policy: Policy = Policy()) -> tuple[dict[str, Any] | None, list[Output]]:
    """Fold one event of a session into its payment state; return (new state, outputs)."""
    if event_type == "SessionStarted":
        return _started(state, rec, lookups, pay, policy)
    if event_type == "CdrPriced":
        return _priced(state, rec, lookups, pay)
    if event_type == "RefundRequested":
        return _refund(state, rec, pay)
    return state, []


def _started(state: dict[str, Any] | None, rec: Mapping[str, Any], lookups: Lookups, pay: Payments,
             policy: Policy) -> tuple[dict[str, Any] | None, list[Output]]:
    st = dict(state or {})
    if "start" in st or st.get("settled"):
        return state, []  # a re-delivered start, or a session already settled
    session_id = str(rec["session_id"])
    if "cdr" in st:  # the CDR came first: the session is over, nothing to hold; charge what it cost
        st["start"] = "AFTER_CDR"
        cdr = st.pop("cdr")
        st["account_id"] = cdr["account_id"]
        return _settle(st, cdr, lookups, pay)
    account = lookups.account_of(rec["id_token"]) if rec.get("id_token") else None
    if account is None:
        return {"start": "NO_ACCOUNT"}, []
    pm = lookups.payment_method_of(account)
    if pm is None:
        return {"start": "NO_PAYMENT_METHOD", "account_id": account}, []
    started_at = _dt(_micros(rec["started_at"]))
    currency = lookups.currency_at(rec["charge_point_id"], started_at) or policy.default_currency
    amount = quantize(policy.hold_amount, currency)
    key = idempotency_key("hold", rec["event_id"])
    run = _Run(rec, session_id, pay)
    try:
        hold = pay.authorize_hold(amount, currency, pm, key,
                                  metadata=_safe_metadata(session_id=session_id, account_id=account))
    except PaymentError as err:
        run.failed(err, tag="payment-hold-failed", operation="authorize_hold", account_id=account, amount=amount,
                   currency=currency, key=key, payment_method_ref=pm, payload=_payload(rec),
                   payload_type="chargeverse/SessionStarted")
        return {"start": "HOLD_FAILED", "account_id": account, "pm": pm}, run.outs
    run.event(account, "PaymentEvent", "payment-hold",
              payment_hold(hold, account_id=account, idempotency_key=key, session_id=session_id))
    run.posting(hold_plan(source_event_id=rec["event_id"], session_id=session_id, account_id=account,
                          provider=pay.name, amount=hold.amount, currency=hold.currency, hold_id=hold.hold_id),
                "ledger-payment-hold")
    return {"start": "HELD", "account_id": account, "pm": pm,
            "hold": {"hold_id": hold.hold_id, "amount": fmt(hold.amount), "currency": hold.currency}}, run.outs


def _priced(state: dict[str, Any] | None, rec: Mapping[str, Any], lookups: Lookups,
            pay: Payments) -> tuple[dict[str, Any] | None, list[Output]]:
    st = dict(state or {})
    if st.get("settled") or "cdr" in st:
        return state, []  # settled already, or a re-delivered early CDR
    cdr = _pack_cdr(rec)
    if "start" not in st and cdr["origin"] == "OWN" and not cdr["credit"]:
        st["cdr"] = cdr  # the start is still on its way (see the module docstring)
        return st, []
    return _settle(st, cdr, lookups, pay)


def _settle(st: dict[str, Any], cdr: Mapping[str, Any], lookups: Lookups,
            pay: Payments) -> tuple[dict[str, Any] | None, list[Output]]:
    session_id, currency = str(cdr["session_id"]), str(cdr["currency"])
    run = _Run(_cause(cdr), session_id, pay)
    payload, ptype = json.dumps(dict(cdr), sort_keys=True), "chargeverse/CdrPriced"
    hold = st.get("hold")
    holder = st.get("account_id") or cdr["account_id"]  # whose receivable the ledger hold sits on
    if cdr["origin"] == "OWN" and cdr.get("partner_party_id"):
        # a roaming partner's driver at our station: the eMSP owes it (streams/billing/partner.py), no card is charged
        if hold:
            _release(run, hold, holder, cdr)
        return _done(st, "PARTNER"), run.outs
    if cdr["credit"]:
        run.review(cdr["account_id"], "payment-review-credit", "CREDIT_CDR", "credit",
                   "a credit CDR: refund the driver by review (no automatic refund)", payload, ptype)
        return {**st, "settled": "REVIEW"}, run.outs
    gross = _gross(cdr)
    if cdr.get("fleet_id") or gross == ZERO:
        if hold:
            _release(run, hold, holder, cdr)
        return _done(st, "FLEET" if cdr.get("fleet_id") else "NOTHING_OWED"), run.outs
    owed = gross
    if hold and hold["currency"] == currency:
        held = Decimal(hold["amount"])
        s = settle_against_hold(held, gross)
        key = idempotency_key("capture", cdr["event_id"])
        try:
            cap = pay.capture(hold["hold_id"], s.capture, currency, idempotency_key=key)
        except HoldExpired as err:
            run.failed(err, tag="payment-capture-failed", operation="capture", account_id=holder,
                       amount=s.capture, currency=currency, key=key, hold_id=hold["hold_id"], payload=payload,
                       payload_type=ptype)
            run.posting(release_plan(source_event_id=cdr["event_id"], session_id=session_id, account_id=holder,
                                     provider=pay.name, hold_id=hold["hold_id"]), "ledger-payment-release")
        except PaymentError as err:
            run.failed(err, tag="payment-capture-failed", operation="capture", account_id=holder,
                       amount=s.capture, currency=currency, key=key, hold_id=hold["hold_id"], payload=payload,
                       payload_type=ptype)
            return _done(st, "REVIEW"), run.outs  # the hold stays pending in the ledger for the reviewer
        else:
            run.event(holder, "PaymentEvent", "payment-capture",
                      payment_captured(cap, account_id=holder, provider=pay.name, idempotency_key=key,
                                       session_id=session_id))
            run.posting(capture_plan(source_event_id=cdr["event_id"], session_id=session_id, account_id=holder,
                                     provider=pay.name, hold_amount=held, captured=cap.amount, currency=currency,
                                     hold_id=hold["hold_id"], charge_id=cap.charge_id), "ledger-payment-capture")
            st.setdefault("charges", []).append({"charge_id": cap.charge_id, "amount": fmt(cap.amount),
                                                 "currency": currency, "account_id": holder})
            owed = s.excess
    elif hold:  # priced in another currency than the hold: let the hold go, charge the CDR's currency
        _release(run, hold, holder, cdr)
    if owed > 0:
        outcome = _direct_charge(run, st, cdr, owed, lookups, payload, ptype)
    else:
        outcome = "CAPTURED"
    return _done(st, outcome), run.outs


def _done(st: Mapping[str, Any], outcome: str) -> dict[str, Any]:
    """The settled state: what blocks a second settlement (and says how it ended), and the charges a refund may
    go back through."""
    done = {"start": st.get("start", "NOT_SEEN"), "account_id": st.get("account_id"), "settled": outcome}
    if st.get("charges"):
        done["charges"] = list(st["charges"])
    return done


def _refund(state: dict[str, Any] | None, rec: Mapping[str, Any],
            pay: Payments) -> tuple[dict[str, Any] | None, list[Output]]:
    """An operator's refund: back through the charges that took the money, newest first, never more than was
    charged (less what was refunded already).  A refund request seen before is a no-op; one that cannot be
    honoured goes to the review queue with the reason."""
    st = dict(state or {})
    done_ids = st.get("refund_requests", [])
    if rec["event_id"] in done_ids:
        return state, []
    session_id, account = str(rec["session_id"]), str(rec["account_id"])
    run = _Run(rec, session_id, pay)
    payload, ptype = _payload(rec), "chargeverse/RefundRequested"
    amount, currency = Decimal(str(rec["amount"])), str(rec["currency"])
    charges = [c for c in st.get("charges", []) if c["currency"] == currency]
    refunded = {c["charge_id"]: Decimal(c.get("refunded", "0")) for c in charges}
    available = sum((Decimal(c["amount"]) - refunded[c["charge_id"]] for c in charges), ZERO)
    st["refund_requests"] = [*done_ids, rec["event_id"]]
    if amount <= 0 or amount > available:
        run.review(account, "payment-refund-review", "REFUND_NOT_POSSIBLE", "amount",
                   f"refund of {fmt(amount)} {currency} asked; {fmt(available)} {currency} was charged through "
                   f"{pay.name} for this session and not refunded yet", payload, ptype)
        return st, run.outs
    left = amount
    new_charges = [dict(c) for c in st.get("charges", [])]
    for c in reversed(new_charges):
        if left <= 0 or c["currency"] != currency:
            continue
        part = min(left, Decimal(c["amount"]) - Decimal(c.get("refunded", "0")))
        if part <= 0:
            continue
        key = idempotency_key(f"refund:{c['charge_id']}", rec["event_id"])
        try:
            ref = pay.refund(c["charge_id"], part, currency, idempotency_key=key)
        except PaymentError as err:
            run.failed(err, tag=f"payment-refund-failed/{c['charge_id']}", operation="refund",
                       account_id=c.get("account_id") or account, amount=part, currency=currency, key=key,
                       payload=payload, payload_type=ptype)
            break
        payer = DriverPayer(c.get("account_id") or account)
        run.event(payer.account_id, "PaymentEvent", f"payment-refund/{c['charge_id']}",
                  payment_refunded(ref, account_id=payer.account_id, provider=pay.name, idempotency_key=key,
                                   session_id=session_id))
        run.posting(refund_plan(source_event_id=f"{rec['event_id']}:{c['charge_id']}", session_id=session_id,
                                payer=payer, provider=pay.name, amount=ref.amount, currency=currency,
                                charge_id=c["charge_id"], refund_id=ref.refund_id),
                    f"ledger-payment-refund/{c['charge_id']}")
        c["refunded"] = fmt(Decimal(c.get("refunded", "0")) + ref.amount)
        left -= ref.amount
    st["charges"] = new_charges
    return st, run.outs


def _release(run: _Run, hold: Mapping[str, Any], holder: str, cdr: Mapping[str, Any]) -> None:
    key = idempotency_key("release", cdr["event_id"])
    try:
        rel = run.pay.release(hold["hold_id"], idempotency_key=key)
    except HoldExpired:  # the issuer let it go already: the money is free, only the ledger hold is left
        rel = None
    except PaymentError as err:
        run.failed(err, tag="payment-release-failed", operation="release", account_id=holder,
                   amount=Decimal(hold["amount"]), currency=hold["currency"], key=key, hold_id=hold["hold_id"],
                   payload=json.dumps(dict(cdr), sort_keys=True), payload_type="chargeverse/CdrPriced")
        return
    if rel is not None:
        run.event(holder, "PaymentEvent", "payment-release",
                  payment_released(rel, account_id=holder, provider=run.pay.name, idempotency_key=key,
                                   session_id=run.session_id))
    run.posting(release_plan(source_event_id=cdr["event_id"], session_id=run.session_id, account_id=holder,
                             provider=run.pay.name, hold_id=hold["hold_id"]), "ledger-payment-release")


def _direct_charge(run: _Run, st: Mapping[str, Any], cdr: Mapping[str, Any], amount: Decimal, lookups: Lookups,
                   payload: str, ptype: str) -> str:
    """Charge `amount` without an existing hold: authorise exactly the amount and capture it at once."""
    account, currency = str(cdr["account_id"]), str(cdr["currency"])
    pm = st.get("pm") if st.get("account_id") == account else None
    pm = pm or lookups.payment_method_of(account)
    if pm is None:
        run.review(account, "payment-review-no-method", "NO_PAYMENT_METHOD", "account_id",
                   f"{fmt(amount)} {currency} is owed but account {account} has no payment method; the receivable "
                   "stays open (invoice or collect it)", payload, ptype)
        return "REVIEW"
    hold_key, cap_key = idempotency_key("charge-hold", cdr["event_id"]), idempotency_key("charge", cdr["event_id"])
    try:
        hold = run.pay.authorize_hold(amount, currency, pm, hold_key,
                                      metadata=_safe_metadata(session_id=run.session_id, account_id=account))
    except PaymentError as err:
        run.failed(err, tag="payment-charge-failed", operation="charge", account_id=account, amount=amount,
                   currency=currency, key=hold_key, payment_method_ref=pm, payload=payload, payload_type=ptype)
        return "REVIEW"
    try:
        cap = run.pay.capture(hold.hold_id, amount, currency, idempotency_key=cap_key)
    except PaymentError as err:
        run.failed(err, tag="payment-charge-failed", operation="charge", account_id=account, amount=amount,
                   currency=currency, key=cap_key, payment_method_ref=pm, hold_id=hold.hold_id, payload=payload,
                   payload_type=ptype)
        try:  # do not leave the authorisation hanging on the driver's card
            run.pay.release(hold.hold_id, idempotency_key=idempotency_key("charge-release", cdr["event_id"]))
        except PaymentError:
            pass
        return "REVIEW"
    run.event(account, "PaymentEvent", "payment-charge",
              payment_charged(cap, account_id=account, provider=run.pay.name, idempotency_key=cap_key,
                              session_id=run.session_id))
    run.posting(direct_charge_plan(source_event_id=cdr["event_id"], session_id=run.session_id,
                                   payer=DriverPayer(account), provider=run.pay.name, amount=cap.amount,
                                   currency=currency, charge_id=cap.charge_id), "ledger-payment-charge")
    if isinstance(st, dict):
        st.setdefault("charges", []).append({"charge_id": cap.charge_id, "amount": fmt(cap.amount),
                                             "currency": currency, "account_id": account})
    return "CHARGED"
