"""The accounting plan: pure functions that turn one billing fact into a balanced set of ledger entries.

Why separate from the ledger: the ledger (ledger/accounts.py, postings.py, engine.py) stores, chains and enforces;
this module decides *which* accounts move, by how much and as which kind of posting set, from facts billing has
already checked.  Plain data in, plain data out, so every rule is tested to exhaustion without a database.  A plan
maps one-to-one onto a `LedgerPostingSet` event (`PostingPlan.ledger_fields()`).

Invariants (each has a test; the balance one is a hypothesis property over every builder):
- every plan balances per currency: sum of DEBIT legs = sum of CREDIT legs (checked when a `PostingPlan` is
  built: an unbalanced plan cannot exist);
- every leg amount is > 0 with at most the currency's minor units (zero legs are dropped).  Rounding happens here,
  once, ROUND_HALF_UP, and VAT is gross - net so the pair adds up;
- a plan's ledger id (`posting_id`) is derived from (cause event id, plan kind), so re-processing an event
  yields the same id and the ledger's (ledger_key, source_event_id) dedup makes it a no-op; one event may yield
  several plans (a charge and a wallet spend) without colliding;
- `ledger_key` is the owner key of a limited account the plan touches (a wallet), else the payer's key, as the
  ledger requires;
- plans never read a clock or a store: the same fact gives the same plan (replay-safe).

The accounting model (names: ledger/billing/account_names.py):
(a) own-station session (POSTING): Dr payer receivable (gross) / Cr platform:charging:revenue (net),
    Cr tax:CC:vat_payable (VAT).
(b) roamed session (POSTING, pass-through of the partner's cost): Dr payer receivable (partner gross + fee gross)
    / Cr cpo:CC-PARTY:payable (partner gross: what the CPO invoices us), Cr platform:roaming:revenue (fee net),
    Cr tax:CC:vat_payable (VAT on our fee).  Input-VAT recovery on the CPO's invoice (a "resale" VAT model) is a
    tax decision left out on purpose: the CPO's VAT stays inside the payable.
(c) payments: hold at start = ledger HOLD with pending entries Dr psp:P:clearing / Cr driver:A:receivable; capture
    at CDR = POST_HOLD of the same hold with the captured amount (<= the hold; the ledger releases the rest, as
    card schemes and Stripe do on a partial capture); release = VOID_HOLD; an amount above the hold is a separate
    charge (`direct_charge_plan`, POSTING Dr psp clearing / Cr receivable); refund = POSTING Dr payer receivable /
    Cr psp clearing (cash goes back; pair it with `reversal_plan` of the charge when the charge itself is
    cancelled, e.g. by a credit CDR).
(d) prepaid wallet: top-up = Dr psp:P:clearing / Cr driver:A:wallet; spend = Dr driver:A:wallet /
    Cr driver:A:receivable.  The ledger refuses a spend that would take the wallet below zero;
    `split_wallet_payment` sizes it first.
(e) fleet sessions: (a)/(b) with the fleet's receivable as payer; cost centre and driver go in metadata.
(f) energy-bill forwarding: Dr supplier:S:receivable / Cr payer receivable (the supplier collects it now).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Union

from chargeverse.events import derived_id
from ledger.billing import account_names as names
from ledger.billing.account_names import (  # re-exported: the scheme is part of this contract
    REVENUE_CHARGING, REVENUE_ROAMING, cpo_payable, driver_receivable, driver_wallet, fleet_receivable,
    psp_clearing, supplier_receivable, vat_payable,
)
from ledger.billing.cdr_checks import Price
from ledger.billing.money import ZERO, fmt, quantize


class Side(StrEnum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"

    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class LedgerKind(StrEnum):
    """The ledger's posting-set kinds (ledger/postings.py SetKind)."""

    POSTING = "POSTING"
    HOLD = "HOLD"
    POST_HOLD = "POST_HOLD"
    VOID_HOLD = "VOID_HOLD"
    REVERSAL = "REVERSAL"


class PlanKind(StrEnum):
    """The billing fact a plan records (goes in the memo; also the tag of the derived posting id)."""

    OWN_SESSION_CHARGE = "OWN_SESSION_CHARGE"
    ROAMED_SESSION_CHARGE = "ROAMED_SESSION_CHARGE"
    PAYMENT_HOLD = "PAYMENT_HOLD"
    PAYMENT_CAPTURE = "PAYMENT_CAPTURE"
    PAYMENT_RELEASE = "PAYMENT_RELEASE"
    PAYMENT_REFUND = "PAYMENT_REFUND"
    DIRECT_CHARGE = "DIRECT_CHARGE"
    WALLET_TOP_UP = "WALLET_TOP_UP"
    WALLET_SPEND = "WALLET_SPEND"
    ENERGY_BILL_FORWARD = "ENERGY_BILL_FORWARD"
    REVERSAL = "REVERSAL"


_LEDGER_KIND = {
    PlanKind.PAYMENT_HOLD: LedgerKind.HOLD,
    PlanKind.PAYMENT_CAPTURE: LedgerKind.POST_HOLD,
    PlanKind.PAYMENT_RELEASE: LedgerKind.VOID_HOLD,
    PlanKind.REVERSAL: LedgerKind.REVERSAL,
}


class UnbalancedPlan(ValueError):
    """Debits and credits differ in some currency (a bug in a builder, never valid input)."""


class AmountAboveHold(ValueError):
    """A capture larger than its hold: capture the hold and charge the excess with `direct_charge_plan`."""


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    side: Side
    amount: Decimal
    currency: str

    def as_row(self) -> tuple[str, str, Decimal, str]:
        return (self.account, self.side.value, self.amount, self.currency)


@dataclass(frozen=True)
class PostingPlan:
    """A balanced set of legs for one billing fact.  Construction checks the invariants."""

    kind: PlanKind
    source_event_id: str  # the event that caused it
    session_id: str | None
    ledger_key: str
    legs: tuple[Leg, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    hold_id: str | None = None
    reverses: str | None = None  # REVERSAL: posting_id of the plan it reverses
    ledger_kind: LedgerKind = field(init=False)
    posting_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.source_event_id:
            raise ValueError("a plan needs the id of the event it comes from")
        lk = _LEDGER_KIND.get(self.kind, LedgerKind.POSTING)
        object.__setattr__(self, "ledger_kind", lk)
        tag = f"billing/{self.kind.value}" + (f"/{self.reverses}" if self.reverses else "")
        object.__setattr__(self, "posting_id", derived_id(self.source_event_id, tag))
        if (lk in (LedgerKind.HOLD, LedgerKind.POST_HOLD, LedgerKind.VOID_HOLD)) != bool(self.hold_id):
            raise ValueError(f"{self.kind}: a hold id is required for, and only for, hold kinds")
        if (lk is LedgerKind.REVERSAL) != bool(self.reverses):
            raise ValueError(f"{self.kind}: `reverses` is required for, and only for, a reversal")
        if lk is LedgerKind.VOID_HOLD and self.legs:
            raise ValueError("a release (VOID_HOLD) carries no legs")
        for leg in self.legs:
            if not isinstance(leg.amount, Decimal) or leg.amount <= 0:
                raise ValueError(f"leg amounts are positive Decimals: {leg}")
            if quantize(leg.amount, leg.currency) != leg.amount:
                raise ValueError(f"leg amount has more than the currency's minor units: {leg}")
            names.purpose_of(leg.account)
            if names.is_limited(leg.account) and names.owner_key(leg.account) != self.ledger_key:
                raise ValueError(f"{leg.account} is limited: the plan must go under its key, not {self.ledger_key}")
        for cur, (dr, cr) in self.totals().items():
            if dr != cr:
                raise UnbalancedPlan(f"{self.kind} {self.source_event_id}: {cur} debits {dr} != credits {cr}")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (sum of debits, sum of credits)."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for leg in self.legs:
            dr, cr = out.get(leg.currency, (ZERO, ZERO))
            out[leg.currency] = (dr + leg.amount, cr) if leg.side is Side.DEBIT else (dr, cr + leg.amount)
        return out

    @property
    def is_empty(self) -> bool:
        """Nothing to post (a free session): skip the ledger.  Never true of a VOID_HOLD's meaning."""
        return not self.legs and self.ledger_kind is not LedgerKind.VOID_HOLD

    def rows(self) -> list[tuple[str, str, Decimal, str]]:
        """(account, DEBIT|CREDIT, amount, currency) per leg."""
        return [leg.as_row() for leg in self.legs]

    def balance_changes(self) -> dict[tuple[str, str], Decimal]:
        """(account, currency) -> debit minus credit of this plan."""
        out: dict[tuple[str, str], Decimal] = {}
        for leg in self.legs:
            sign = 1 if leg.side is Side.DEBIT else -1
            out[(leg.account, leg.currency)] = out.get((leg.account, leg.currency), ZERO) + sign * leg.amount
        return out

    @property
    def memo(self) -> str:
        extras = ", ".join(f"{k}={v}" for k, v in sorted(self.metadata.items()))
        return f"{self.kind.value} from event {self.source_event_id}" + (f" ({extras})" if extras else "")

    def ledger_fields(self) -> dict[str, Any]:
        """The payload fields of a `LedgerPostingSet` event (schemas/avro/LedgerPostingSet.avsc), without the
        envelope: merge into `derive(cause, tag=..., source=..., **plan.ledger_fields())`."""
        return {
            "ledger_key": self.ledger_key, "source_event_id": self.posting_id, "kind": self.ledger_kind.value,
            "session_id": self.session_id, "hold_id": self.hold_id, "reverses": self.reverses, "memo": self.memo,
            "entries": [{"account": leg.account, "direction": leg.side.value, "amount": fmt(leg.amount),
                         "currency": leg.currency} for leg in self.legs],
        }


# -- payers ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DriverPayer:
    account_id: str

    @property
    def receivable(self) -> str:
        return names.driver_receivable(self.account_id)

    @property
    def key(self) -> str:
        return names.owner_key(self.receivable)

    def metadata(self) -> dict[str, str]:
        return {"payer": "DRIVER", "account_id": self.account_id}


@dataclass(frozen=True, slots=True)
class FleetPayer:
    fleet_id: str
    cost_centre: str | None = None
    driver_id: str | None = None

    @property
    def receivable(self) -> str:
        return names.fleet_receivable(self.fleet_id)

    @property
    def key(self) -> str:
        return names.owner_key(self.receivable)

    def metadata(self) -> dict[str, str]:
        md = {"payer": "FLEET", "fleet_id": self.fleet_id}
        if self.cost_centre is not None:
            md["cost_centre"] = self.cost_centre
        if self.driver_id is not None:
            md["driver_id"] = self.driver_id
        return md


Payer = Union[DriverPayer, FleetPayer]


@dataclass(frozen=True, slots=True)
class RoamingFee:
    """Our fee on a roamed session: `fixed` + `percent` % of the partner's cost excl. VAT (both excl. VAT), with
    VAT at `vat_rate` % on top."""

    fixed: Decimal = ZERO
    percent: Decimal = ZERO
    vat_rate: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.fixed < 0 or self.percent < 0 or self.vat_rate < 0:
            raise ValueError("a roaming fee is not negative")


def roaming_fee(partner_cost_excl_vat: Decimal, fee: RoamingFee | None, currency: str) -> tuple[Decimal, Decimal]:
    """(fee net, fee VAT), each rounded to the currency.  No fee configured -> (0, 0)."""
    if fee is None:
        return ZERO, ZERO
    net = quantize(fee.fixed + partner_cost_excl_vat * fee.percent / 100, currency)
    return net, quantize(net * fee.vat_rate / 100, currency)


def gross_net_vat(price: Price, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(gross, net, VAT) of an OCPI Price in whole minor units: gross and net rounded, VAT = gross - net.
    Without incl_vat the VAT is unknown and taken as zero (gross = net)."""
    net = quantize(price.excl_vat, currency)
    gross = quantize(price.incl_vat, currency) if price.incl_vat is not None else net
    return gross, net, gross - net


def _legs(currency: str, *triples: tuple[str, Side, Decimal]) -> tuple[Leg, ...]:
    return tuple(Leg(acc, side, amt, currency) for acc, side, amt in triples if amt != 0)


def _not_negative(amount: Decimal, what: str) -> None:
    if not isinstance(amount, Decimal):
        raise ValueError(f"{what} must be a Decimal, got {amount!r}")
    if amount < 0:
        raise ValueError(f"{what} is negative ({fmt(amount)}); post a reversal instead")


def _money(amount: Decimal, currency: str, what: str) -> Decimal:
    _not_negative(amount, what)
    if quantize(amount, currency) != amount:
        raise ValueError(f"{what} {amount} has more than {currency}'s minor units: round it first")
    return amount


# -- (a), (b), (e): charging sessions -------------------------------------------------------------------------

def own_session_plan(*, source_event_id: str, session_id: str, payer: Payer, total_cost: Price, currency: str,
                     vat_country: str, extra: Mapping[str, str] | None = None) -> PostingPlan:
    """(a)/(e) A session at one of our stations: the payer owes the gross, we earn the net, VAT is due."""
    gross, net, vat = gross_net_vat(total_cost, currency)
    _not_negative(net, "net cost")
    if vat < 0:
        raise ValueError(f"negative VAT ({fmt(vat)}): check_cdr should have rejected this CDR")
    legs = _legs(currency,
                 (payer.receivable, Side.DEBIT, gross),
                 (REVENUE_CHARGING, Side.CREDIT, net),
                 (names.vat_payable(vat_country), Side.CREDIT, vat))
    md = {**payer.metadata(), "vat_country": names.vat_country(vat_country), **(extra or {})}
    return PostingPlan(PlanKind.OWN_SESSION_CHARGE, source_event_id, session_id, payer.key, legs, md)


def roamed_session_plan(*, source_event_id: str, session_id: str, payer: Payer, partner_cost: Price, currency: str,
                        cpo_country_code: str, cpo_party_id: str, vat_country: str, fee: RoamingFee | None = None,
                        extra: Mapping[str, str] | None = None) -> PostingPlan:
    """(b)/(e) A session at a partner's station, priced by the partner's (authoritative) CDR."""
    p_gross, p_net, p_vat = gross_net_vat(partner_cost, currency)
    _not_negative(p_net, "partner cost")
    if p_vat < 0:
        raise ValueError(f"negative VAT ({fmt(p_vat)}) in the partner's cost")
    fee_net, fee_vat = roaming_fee(partner_cost.excl_vat, fee, currency)
    legs = _legs(currency,
                 (payer.receivable, Side.DEBIT, p_gross + fee_net + fee_vat),
                 (names.cpo_payable(cpo_country_code, cpo_party_id), Side.CREDIT, p_gross),
                 (REVENUE_ROAMING, Side.CREDIT, fee_net),
                 (names.vat_payable(vat_country), Side.CREDIT, fee_vat))
    md = {**payer.metadata(), "cpo": names.cpo_party(cpo_country_code, cpo_party_id),
          "vat_country": names.vat_country(vat_country), "partner_gross": fmt(p_gross),
          "fee_net": fmt(fee_net), "fee_vat": fmt(fee_vat), **(extra or {})}
    return PostingPlan(PlanKind.ROAMED_SESSION_CHARGE, source_event_id, session_id, payer.key, legs, md)


def session_charge(plan: PostingPlan) -> Decimal:
    """What a session plan charges its payer (the receivable debit), in the plan's currency."""
    return sum((leg.amount for leg in plan.legs if leg.side is Side.DEBIT
                and names.purpose_of(leg.account) == "receivable"), ZERO)


# -- (c) payments ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Settlement:
    """How a charge meets a hold: capture up to the hold, the rest of the hold is released, any excess is
    charged separately."""

    capture: Decimal
    release: Decimal
    excess: Decimal


def settle_against_hold(hold_amount: Decimal, charge_amount: Decimal) -> Settlement:
    """capture = min(charge, hold); release = hold - capture; excess = charge - capture (all >= 0)."""
    _not_negative(hold_amount, "hold")
    _not_negative(charge_amount, "charge")
    capture = min(hold_amount, charge_amount)
    return Settlement(capture, hold_amount - capture, charge_amount - capture)


def hold_plan(*, source_event_id: str, session_id: str | None, account_id: str, provider: str, amount: Decimal,
              currency: str, hold_id: str) -> PostingPlan:
    """A pre-authorisation at session start: a ledger HOLD (pending; nothing is posted yet)."""
    amount = _money(amount, currency, "hold")
    payer = DriverPayer(account_id)
    legs = _legs(currency, (names.psp_clearing(provider), Side.DEBIT, amount), (payer.receivable, Side.CREDIT, amount))
    return PostingPlan(PlanKind.PAYMENT_HOLD, source_event_id, session_id, payer.key, legs,
                       {"account_id": account_id, "provider": provider}, hold_id=hold_id)


def capture_plan(*, source_event_id: str, session_id: str | None, account_id: str, provider: str,
                 hold_amount: Decimal, captured: Decimal, currency: str, hold_id: str,
                 charge_id: str) -> PostingPlan:
    """Capture at CDR (POST_HOLD of `hold_id`): cash arrives at the provider and settles the driver's receivable;
    the rest of the hold is released by the same resolution.  `AmountAboveHold` when captured > hold.  A zero
    capture is a release: use `release_plan`."""
    hold_amount = _money(hold_amount, currency, "hold")
    captured = _money(captured, currency, "capture")
    if captured > hold_amount:
        raise AmountAboveHold(f"capture {fmt(captured)} > hold {fmt(hold_amount)} {currency}")
    if captured == 0:
        raise ValueError("a zero capture is a release: use release_plan")
    payer = DriverPayer(account_id)
    legs = _legs(currency, (names.psp_clearing(provider), Side.DEBIT, captured),
                 (payer.receivable, Side.CREDIT, captured))
    md = {"account_id": account_id, "provider": provider, "charge_id": charge_id,
          "released": fmt(hold_amount - captured)}
    return PostingPlan(PlanKind.PAYMENT_CAPTURE, source_event_id, session_id, payer.key, legs, md, hold_id=hold_id)


def release_plan(*, source_event_id: str, session_id: str | None, account_id: str, provider: str,
                 hold_id: str) -> PostingPlan:
    """Release a hold without capturing (VOID_HOLD: no legs)."""
    return PostingPlan(PlanKind.PAYMENT_RELEASE, source_event_id, session_id, DriverPayer(account_id).key, (),
                       {"account_id": account_id, "provider": provider}, hold_id=hold_id)


def direct_charge_plan(*, source_event_id: str, session_id: str | None, payer: Payer, provider: str,
                       amount: Decimal, currency: str, charge_id: str) -> PostingPlan:
    """A charge without a hold (e.g. the part of a session above its hold)."""
    amount = _money(amount, currency, "charge")
    legs = _legs(currency, (names.psp_clearing(provider), Side.DEBIT, amount), (payer.receivable, Side.CREDIT, amount))
    return PostingPlan(PlanKind.DIRECT_CHARGE, source_event_id, session_id, payer.key, legs,
                       {**payer.metadata(), "provider": provider, "charge_id": charge_id})


def refund_plan(*, source_event_id: str, session_id: str | None, payer: Payer, provider: str, amount: Decimal,
                currency: str, charge_id: str, refund_id: str) -> PostingPlan:
    """Cash back to the payer through the provider."""
    amount = _money(amount, currency, "refund")
    legs = _legs(currency, (payer.receivable, Side.DEBIT, amount), (names.psp_clearing(provider), Side.CREDIT, amount))
    return PostingPlan(PlanKind.PAYMENT_REFUND, source_event_id, session_id, payer.key, legs,
                       {**payer.metadata(), "provider": provider, "charge_id": charge_id, "refund_id": refund_id})


# -- (d) prepaid wallet ---------------------------------------------------------------------------------------

def wallet_top_up_plan(*, source_event_id: str, account_id: str, provider: str, amount: Decimal, currency: str,
                       charge_id: str) -> PostingPlan:
    amount = _money(amount, currency, "top-up")
    wallet = names.driver_wallet(account_id)
    legs = _legs(currency, (names.psp_clearing(provider), Side.DEBIT, amount), (wallet, Side.CREDIT, amount))
    return PostingPlan(PlanKind.WALLET_TOP_UP, source_event_id, None, names.owner_key(wallet), legs,
                       {"account_id": account_id, "provider": provider, "charge_id": charge_id})


def wallet_spend_plan(*, source_event_id: str, session_id: str | None, account_id: str, amount: Decimal,
                      currency: str) -> PostingPlan:
    """Pay (part of) a driver's receivable from their wallet.  The ledger refuses it if the wallet would go below
    zero; size it with `split_wallet_payment` first."""
    amount = _money(amount, currency, "wallet spend")
    wallet = names.driver_wallet(account_id)
    legs = _legs(currency, (wallet, Side.DEBIT, amount), (names.driver_receivable(account_id), Side.CREDIT, amount))
    return PostingPlan(PlanKind.WALLET_SPEND, source_event_id, session_id, names.owner_key(wallet), legs,
                       {"account_id": account_id})


def split_wallet_payment(wallet_balance: Decimal, amount: Decimal) -> tuple[Decimal, Decimal]:
    """(paid from the wallet, left to pay otherwise) for a charge of `amount` with `wallet_balance` available."""
    _not_negative(amount, "amount")
    from_wallet = min(max(wallet_balance, ZERO), amount)
    return from_wallet, amount - from_wallet


# -- (f) energy-bill forwarding, reversals --------------------------------------------------------------------

def energy_bill_forward_plan(*, source_event_id: str, payer: Payer, supplier_id: str, amount: Decimal,
                             currency: str, export_id: str) -> PostingPlan:
    """Charges forwarded to an energy supplier's bill: the supplier owes us instead of the payer."""
    amount = _money(amount, currency, "forwarded amount")
    legs = _legs(currency, (names.supplier_receivable(supplier_id), Side.DEBIT, amount),
                 (payer.receivable, Side.CREDIT, amount))
    return PostingPlan(PlanKind.ENERGY_BILL_FORWARD, source_event_id, None, payer.key, legs,
                       {**payer.metadata(), "supplier_id": supplier_id, "export_id": export_id})


def reversal_plan(original: PostingPlan, *, source_event_id: str, reason: str) -> PostingPlan:
    """The exact mirror of `original` (a credit CDR, a credit note, a correction), under the same key.  Posting
    both nets every account to zero; the original is never edited (the ledger is append-only).  Only a POSTING or
    a POST_HOLD can be reversed (void a hold instead of reversing it)."""
    if original.ledger_kind not in (LedgerKind.POSTING, LedgerKind.POST_HOLD) or not original.legs:
        raise ValueError(f"a {original.ledger_kind} plan cannot be reversed")
    legs = tuple(Leg(leg.account, leg.side.opposite(), leg.amount, leg.currency) for leg in original.legs)
    md = {**original.metadata, "reverses_kind": original.kind.value, "reason": reason}
    return PostingPlan(PlanKind.REVERSAL, source_event_id, original.session_id, original.ledger_key, legs, md,
                       reverses=original.posting_id)


__all__ = [
    # the account scheme (re-exported from account_names)
    "REVENUE_CHARGING", "REVENUE_ROAMING", "cpo_payable", "driver_receivable", "driver_wallet", "fleet_receivable",
    "psp_clearing", "supplier_receivable", "vat_payable",
    # plans
    "AmountAboveHold", "DriverPayer", "FleetPayer", "LedgerKind", "Leg", "Payer", "PlanKind", "PostingPlan",
    "RoamingFee", "Settlement", "Side", "UnbalancedPlan", "capture_plan", "direct_charge_plan",
    "energy_bill_forward_plan", "gross_net_vat", "hold_plan", "own_session_plan", "refund_plan", "release_plan",
    "reversal_plan", "roamed_session_plan", "roaming_fee", "session_charge", "settle_against_hold",
    "split_wallet_payment", "wallet_spend_plan", "wallet_top_up_plan",
]
