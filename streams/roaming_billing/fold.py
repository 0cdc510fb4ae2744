"""Billing of roamed sessions: a partner CPO's OCPI CDR (`OcpiObjectReceived`, module cdrs, on `ocpi.inbound`)
-> a priced CDR and its ledger postings, or a review entry; plus a discrepancy report when the CDR disagrees with
the partner's own tariff.

Why the partner's CDR is posted as it is: on a roamed session the CPO's CDR is authoritative (it is what the CPO
invoices us).  We still re-price it from the tariff it references, as the partner published it to us (Tariffs
module, kept by the `ocpi_objects` projection), or the copy embedded in the CDR when we hold none; a difference
above the threshold (ledger.billing.discrepancy) becomes a `BillingDiscrepancy` for a human -- it never blocks
posting.  What the CDR checks refuse (ledger.billing.cdr_checks: inconsistent totals, unknown tariff, negative
energy, end before start, currency mismatch, ...), a driver token no account owns, and credit CDRs (which need
a reversal of the original, a human decision today) go to the review queue instead: never posted, never lost
(the CDR travels verbatim in the review).

Pure: no I/O.  What the fold needs from the projections (the partner's tariffs, the location's time zone, the
account behind the token) comes through `Lookups`, is asked once when the CDR is first seen and is kept in the
state with the outcome.

Per CDR (the state key is partner id + country code + party id + CDR id, upper-cased as OCPI CiStrings):

Invariants (tests/unit/billing/test_roaming_billing_fold.py names each):
- ONLY OUR VALID CDRs: events of other platforms, other modules, refused pushes (`valid` false) and DELETEs are
  passed over without output or state.
- EXACTLY ONE OUTCOME per CDR: PRICED -- CdrPriced (origin ROAMED) + LedgerPostingSet, plus a BillingDiscrepancy
  when the re-pricing disagrees, or a `NOT_REPRICED` BillingReview (reason says "posted unchecked") when it could
  not be re-priced at all -- or REVIEW -- one BillingReview, nothing posted.  Never neither.
- IDEMPOTENT by partner + CDR id: a re-sent CDR (a retry, a pull of a CDR that was pushed) changes nothing.
- DETERMINISTIC: output ids derive from the inbound event's id (chargeverse.events.derive), the posting id from
  the same id (postings_plan), so a re-processed batch re-emits identical events and the ledger drops the copy.
- BALANCED: postings come from ledger.billing.postings_plan.roamed_session_plan, which balances or raises.
- NEVER float money: the CDR is parsed with Decimals; amounts are strings on the wire.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from chargeverse import exactjson
from chargeverse.events import derive
from chargeverse.topics import BILLING, LEDGER
from ledger.billing.cdr_checks import (CheckPolicy, Problem, Reason, ReviewProblem, check_cdr, cost_totals,
                                       parse_cdr_json, read_totals)
from ledger.billing.discrepancy import DEFAULT_THRESHOLD, DiscrepancyDecision, Threshold, compare_totals
from ledger.billing.events import billing_discrepancy, billing_review, cdr_priced
from ledger.billing.postings_plan import DriverPayer, RoamingFee, roamed_session_plan
from ledger.tariff import TariffEngineError, price_session

SOURCE = "streams.roaming_billing"
EVENT = "OcpiObjectReceived"
#: methods that carry a whole CDR (CDRs are never PATCHed or replaced in OCPI 2.2.1)
WHOLE = frozenset({"POST", "PUT", "PULL"})
#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]


@dataclass(frozen=True)
class Policy:
    """Who we are and how roamed CDRs are judged and charged."""

    #: our OCPI platform: events of other platforms sharing the log are not ours to bill
    platform_id: str = "chargeverse"
    #: where VAT on our roaming fee is due
    vat_country: str = "NL"
    #: above this a re-pricing difference is reported (ledger.billing.discrepancy)
    threshold: Threshold = DEFAULT_THRESHOLD
    #: our fee on top of the partner's cost (None: pass-through at cost)
    fee: RoamingFee | None = None
    checks: CheckPolicy = field(default_factory=CheckPolicy)


@dataclass(frozen=True)
class Lookups:
    """What the processor looks up when a CDR first arrives; pure functions from the fold's point of view."""

    #: (partner id, COUNTRY, PARTY, tariff id) -> the partner's OCPI Tariff as received, or None
    tariff_of: Callable[[str, str, str, str], Mapping[str, Any] | None]
    #: id token uid -> {"account_id": str, ...} or None
    payer_of: Callable[[str], Mapping[str, Any] | None]
    #: (partner id, COUNTRY, PARTY, location id) -> the Location's IANA time zone, or None
    time_zone_of: Callable[[str, str, str, str], str | None] = lambda *_: None


def is_partner_cdr(event_type: str, rec: Mapping[str, Any], platform_id: str) -> bool:
    """True for a valid whole CDR of our platform (what this processor bills)."""
    return (event_type == EVENT and rec.get("module") == "cdrs" and rec.get("valid") is True
            and rec.get("method") in WHOLE and rec.get("platform_id") == platform_id)


def state_key(rec: Mapping[str, Any]) -> str:
    """partner|COUNTRY|PARTY|ID: a CDR's identity (OCPI: country code + party id + id) under one connection."""
    return "|".join((str(rec.get("partner_id")), str(rec.get("country_code", "")).upper(),
                     str(rec.get("party_id", "")).upper(), str(rec.get("object_id", "")).upper()))


def apply(state: dict[str, Any] | None, event_type: str, rec: Mapping[str, Any], lookups: Lookups,
          policy: Policy = Policy()) -> tuple[dict[str, Any] | None, list[Output]]:
    """Fold one `ocpi.inbound` event into its CDR's billing state; return (new state, outputs)."""
    if not is_partner_cdr(event_type, rec, policy.platform_id):
        return state, []
    if state and state.get("outcome"):
        return state, []  # billed (or queued for review) already: a re-sent CDR changes nothing
    digest = hashlib.sha256(str(rec.get("raw", "")).encode()).hexdigest()
    try:
        cdr = parse_cdr_json(rec["raw"])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        outs = [_review(rec, [Problem(Reason.MALFORMED, "$", f"not JSON: {exc}"[:300])], None, None)]
        return {"outcome": "REVIEW", "event_id": rec["event_id"], "raw_sha256": digest}, outs
    if not isinstance(cdr, dict):
        outs = [_review(rec, [Problem(Reason.MALFORMED, "$", "a CDR is a JSON object")], None, None)]
        return {"outcome": "REVIEW", "event_id": rec["event_id"], "raw_sha256": digest}, outs
    ctx = _context(rec, cdr, lookups)
    outs, outcome = _bill(rec, cdr, ctx, policy)
    return {"outcome": outcome, "event_id": rec["event_id"], "raw_sha256": digest, "ctx": ctx}, outs


def _tariff_ids(cdr: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for p in cdr.get("charging_periods") or []:
        if isinstance(p, Mapping) and isinstance(p.get("tariff_id"), str) and p["tariff_id"] not in ids:
            ids.append(p["tariff_id"])
    for t in cdr.get("tariffs") or []:
        if isinstance(t, Mapping) and isinstance(t.get("id"), str) and t["id"] not in ids:
            ids.append(t["id"])
    return ids


def _context(rec: Mapping[str, Any], cdr: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """Everything looked up for this CDR, as plain JSON (it is kept in the state)."""
    partner, cc, party = rec["partner_id"], str(rec["country_code"]).upper(), str(rec["party_id"]).upper()
    received: dict[str, Any] = {}
    for tid in _tariff_ids(cdr):
        t = lookups.tariff_of(partner, cc, party, tid)
        if isinstance(t, Mapping):
            received[tid] = exactjson.dumps(t)  # text: the state is JSON, and the tariff keeps its exact numbers
    token = cdr.get("cdr_token")
    uid = token.get("uid") if isinstance(token, Mapping) and isinstance(token.get("uid"), str) else None
    payer = lookups.payer_of(uid) if uid else None
    loc = cdr.get("cdr_location")
    loc_id = loc.get("id") if isinstance(loc, Mapping) and isinstance(loc.get("id"), str) else None
    tz = lookups.time_zone_of(partner, cc, party, loc_id) if loc_id else None
    return {"tariffs": received, "uid": uid, "payer": dict(payer) if payer else None, "time_zone": tz}


def _session_id(rec: Mapping[str, Any], cdr: Mapping[str, Any]) -> str:
    """Our id of a roamed session: the partner's session id (or CDR id when it sent none) under its party, so two
    partners' ids never collide with each other or with our own sessions'."""
    sid = cdr.get("session_id") if isinstance(cdr.get("session_id"), str) and cdr.get("session_id") else None
    return f"roamed:{str(rec['country_code']).upper()}:{str(rec['party_id']).upper()}:{sid or rec['object_id']}"


def _review(rec: Mapping[str, Any], problems: list[Any], session_id: str | None,
            account_id: str | None) -> Output:
    r = derive(dict(rec), tag="roamed-billing-review", source=SOURCE,
               **billing_review(problems=problems, payload=rec.get("raw") or "", source_event_id=rec["event_id"],
                                subject="CDR", payload_type="ocpi-2.2.1/CDR", session_id=session_id,
                                account_id=account_id, source_topic="ocpi.inbound"))
    return (BILLING.name, account_id or session_id or rec["event_id"], "BillingReview", r)


def _pick_tariff(cdr: Mapping[str, Any], received: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    """The tariff to re-price with: the one the charging periods name (a single id), as the partner published it
    to us, else the copy embedded in the CDR; a lone embedded/received tariff when the periods name none."""
    period_ids = {p.get("tariff_id") for p in cdr.get("charging_periods") or []
                  if isinstance(p, Mapping) and isinstance(p.get("tariff_id"), str)}
    embedded = {t["id"]: t for t in cdr.get("tariffs") or [] if isinstance(t, Mapping) and isinstance(t.get("id"), str)}
    if len(period_ids) > 1:
        return None, f"the charging periods name {len(period_ids)} tariffs; one tariff re-prices a session"
    if period_ids:
        tid = next(iter(period_ids))
    elif len(received) == 1 or len(embedded) == 1:
        tid = next(iter(received)) if len(received) == 1 else next(iter(embedded))
    else:
        return None, "cannot tell which tariff priced the CDR"
    if tid in received:
        return received[tid], "received"
    if tid in embedded:
        return embedded[tid], "embedded"
    return None, f"tariff {tid!r} is unknown"


def _bill(rec: Mapping[str, Any], cdr: dict[str, Any], ctx: Mapping[str, Any],
          policy: Policy) -> tuple[list[Output], str]:
    session_id = _session_id(rec, cdr)
    payer_info = ctx.get("payer")
    account_id = payer_info.get("account_id") if payer_info else None
    received: dict[str, Any] = {tid: parse_cdr_json(text) for tid, text in (ctx.get("tariffs") or {}).items()}
    known = {tid: t.get("currency") for tid, t in received.items() if isinstance(t.get("currency"), str)}
    problems: list[Any] = list(check_cdr(cdr, known_tariffs=known, policy=policy.checks))
    if cdr.get("credit") is True:
        problems.append(ReviewProblem("CREDIT_CDR", "credit",
                                   f"credit CDR for {cdr.get('credit_reference_id')!r}: reverse the original's "
                                   "posting by hand (not automated yet)"))
    if not account_id:
        problems.append(ReviewProblem("NO_ACCOUNT", "cdr_token.uid",
                                   f"id token {ctx.get('uid')!r} is not linked to an account"))
    if problems:
        return [_review(rec, problems, session_id, account_id)], "REVIEW"
    totals = read_totals(cdr, known_tariffs=known, policy=policy.checks)
    cc, party = str(rec["country_code"]).upper(), str(rec["party_id"]).upper()
    cdr_text = rec["raw"]
    tariff, tariff_source = _pick_tariff(cdr, received)
    outs: list[Output] = []
    decision: DiscrepancyDecision | None = None
    unpriced: str | None = None
    if tariff is None:
        unpriced = tariff_source
    else:
        try:
            ours = price_session(tariff, cdr.get("charging_periods") or [], start=cdr.get("start_date_time"),
                                 end=cdr.get("end_date_time"), time_zone=ctx.get("time_zone") or "UTC",
                                 check_validity=False)
            decision = compare_totals(totals, cost_totals(ours.to_ocpi()), policy.threshold)
        except (TariffEngineError, ValueError, ArithmeticError) as exc:
            unpriced = f"{type(exc).__name__}: {exc}"[:300]
    tariff_id = tariff.get("id") if tariff is not None else None
    payer = DriverPayer(account_id)
    plan = roamed_session_plan(source_event_id=rec["event_id"], session_id=session_id, payer=payer,
                               partner_cost=totals.total_cost, currency=totals.currency, cpo_country_code=cc,
                               cpo_party_id=party, vat_country=policy.vat_country, fee=policy.fee,
                               extra={"partner_id": str(rec["partner_id"]), "cdr_id": str(cdr.get("id")),
                                      **({"tariff_source": tariff_source} if tariff is not None else {})})
    outs.append((BILLING.name, account_id, "CdrPriced", derive(
        dict(rec), tag="roamed-cdr-priced", source=SOURCE,
        **cdr_priced(session_id=session_id, account_id=account_id, cdr_id=str(cdr.get("id")), cdr_text=cdr_text,
                     totals=totals, origin="ROAMED", tariff_id=tariff_id, partner_country_code=cc,
                     partner_party_id=party, vat_country=policy.vat_country))))
    if decision is not None and not decision.ok:
        outs.append((BILLING.name, account_id, "BillingDiscrepancy", derive(
            dict(rec), tag="roamed-billing-discrepancy", source=SOURCE,
            **billing_discrepancy(decision, session_id=session_id, cdr_id=str(cdr.get("id")),
                                  partner_country_code=cc, partner_party_id=party, partner_cdr_text=cdr_text,
                                  source_event_id=rec["event_id"], account_id=account_id, tariff_id=tariff_id))))
    if unpriced is not None:
        # posted anyway (the partner's CDR is authoritative), but a human should know we could not check it
        outs.append(_review(rec, [ReviewProblem("NOT_REPRICED", "tariffs", f"posted unchecked: {unpriced}")],
                            session_id, account_id))
    if not plan.is_empty:
        outs.append((LEDGER.name, plan.ledger_key, "LedgerPostingSet",
                     derive(dict(rec), tag="roamed-ledger-charge", source=SOURCE, **plan.ledger_fields())))
    return outs, "PRICED"
