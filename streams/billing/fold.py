"""Billing of our own stations' sessions: `sessions` events -> a priced CDR, its ledger postings, or a review.

Pure: no I/O.  What the fold needs from the outside world (the tariff in effect when a session started, the account
an identification token belongs to) is looked up by the processor once, at the session's start, and kept in the
state, so a tariff change never reprices a running session and a replay prices exactly as before.

Per session (the state key is the session id, the key of `sessions`):
- SessionStarted: remember the session, the tariff snapshot and the payer: a driver account (or its fleet), or,
  when the token is no account's but a roaming partner's (an eMSP's Token pushed to our OCPI Tokens receiver),
  that partner with a snapshot of the station for the partner's CDR (streams/billing/partner.py);
- SessionMeterSample: keep (time, energy so far, power, current) — the charging periods come from these;
- SessionStopped: build the charging periods, price them with the tariff engine (ledger.tariff — the same engine
  the API uses for the live cost), build the OCPI CDR, check it (ledger.billing.cdr_checks), then emit
  `CdrPriced` on `billing` and the `LedgerPostingSet` of the charge on `ledger`; or, when anything is wrong (no
  tariff, no account behind the token, a CDR the checks refuse), a `BillingReview` with every reason and the
  session verbatim.  Never both, never neither.
- A partner's session is priced the same way; its CDR is the one the partner receives (the partner's cdr_token,
  a full cdr_location, our tariff as our party's), its CdrPriced is keyed by and names the payer `emsp:CC-PARTY`
  (`partner_country_code`/`partner_party_id` say which eMSP owes it) and its postings are "receivable from the
  partner / revenue / VAT".  The OCPI push processor (streams/ocpi_push) posts that CDR to the partner and the
  CDRs sender serves it.

Invariants (tests/unit/billing/test_billing_fold.py names each):
- EXACTLY ONE OUTCOME per stopped session: a priced CDR with its postings, or a review entry; a re-delivered stop
  changes nothing (the state remembers the outcome).
- DETERMINISTIC: output ids derive from the SessionStopped event id, so a replay re-emits identical events and
  the ledger's unique source-event key makes a second posting impossible.
- BALANCED: the postings come from ledger.billing.postings_plan, which balances per currency or raises.
- NEVER float money: every amount is a Decimal, formatted as a string on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

from chargeverse import exactjson
from chargeverse.events import derive
from chargeverse.topics import BILLING, LEDGER
from ledger.billing.cdr_checks import CdrTotals, Problem, Reason, ReviewProblem, check_cdr, cost_totals
from ledger.billing.events import billing_review, cdr_priced
from ledger.billing.postings_plan import DriverPayer, FleetPayer, own_session_plan
from ledger.tariff import MeterSample, TariffEngineError, price_samples
from streams.billing import partner

SOURCE = "streams.billing"
#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]


@dataclass(frozen=True)
class Operator:
    """Who we are on a CDR (OCPI country code and party id) and where VAT on our sessions is due."""

    country_code: str = "NL"
    party_id: str = "CVS"
    vat_country: str = "NL"
    #: ISO 3166-1 alpha-3 country of our stations, for a CDR's cdr_location (OCPI wants alpha-3 there)
    location_country: str = "NLD"


@dataclass(frozen=True)
class Lookups:
    """What the processor looks up at a session's start; pure functions from the fold's point of view."""

    #: (station id, instant) -> {"tariff": OCPI Tariff dict, "time_zone": str, "currency": str} or None
    tariff_at: Callable[[str, datetime], Mapping[str, Any] | None]
    #: id token uid -> {"account_id": str, "fleet_id": str|None, "cost_centre": str|None} or None
    payer_of: Callable[[str], Mapping[str, Any] | None]
    #: id token uid no account holds -> the roaming partner that gave it to us, or None:
    #: {"partner_id", "country_code", "party_id" (the token's eMSP party), "uid", "type", "contract_id"}
    partner_of: Callable[[str], Mapping[str, Any] | None] | None = None
    #: station id -> {"name", "address", "city", "latitude", "longitude",
    #:                "connectors": {"<connector id>": {"standard", "max_power_kw"}}} or None
    location_of: Callable[[str], Mapping[str, Any] | None] | None = None


def _iso(v: Any) -> str:
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return datetime.fromtimestamp(int(v) / 1e6, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _context(rec: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    started = _dt(_iso(rec["started_at"]))
    tariff = lookups.tariff_at(rec["charge_point_id"], started)
    payer = lookups.payer_of(rec["id_token"]) if rec.get("id_token") else None
    ctx = {"charge_point_id": rec["charge_point_id"], "connector_id": rec.get("connector_id"),
           "evse_id": rec.get("evse_id"), "id_token": rec.get("id_token"),
           "id_token_type": rec.get("id_token_type"), "started_at": _iso(rec["started_at"]),
           "tariff": dict(tariff) if tariff else None, "payer": dict(payer) if payer else None}
    if payer is None and rec.get("id_token") and lookups.partner_of is not None:
        owner = lookups.partner_of(rec["id_token"])
        if owner is not None:
            location = lookups.location_of(rec["charge_point_id"]) if lookups.location_of is not None else None
            ctx["partner"] = dict(owner)
            ctx["location"] = dict(location) if location is not None else None
    return ctx


def apply(state: dict[str, Any] | None, event_type: str, rec: Mapping[str, Any], lookups: Lookups,
          operator: Operator = Operator()) -> tuple[dict[str, Any] | None, list[Output]]:
    """Fold one `sessions` event into the session's billing state; return (new state, outputs)."""
    st = dict(state) if state else {"samples": []}
    if st.get("outcome"):
        return state, []  # billed (or queued for review) already: re-deliveries and late events change nothing
    if event_type == "SessionStarted":
        if "ctx" not in st:
            st["ctx"] = _context(rec, lookups)
        return st, []
    if event_type == "SessionMeterSample":
        st["samples"] = [*st["samples"], [_iso(rec["at"]), rec["energy_wh"], rec.get("power_w"),
                                          rec.get("current_a")]]
        return st, []
    if event_type != "SessionStopped":
        return state, []
    ctx = st.get("ctx") or _context(rec, lookups)  # a stop without a seen start: look up from the stop itself
    outs, outcome = _bill(ctx, st["samples"], rec, operator)
    return {"outcome": outcome, "ctx": {"charge_point_id": ctx["charge_point_id"]}}, outs


def _samples(ctx: Mapping[str, Any], samples: list[list[Any]], stop: Mapping[str, Any]) -> list[MeterSample]:
    """Meter samples for the tariff engine: from 0 Wh at the start to the final energy at the stop; a sample is
    'charging' when energy flowed since the one before (else the EV is parked).

    Points at the same instant are one point (the most energy, the first power/current given): OCPP 2.0.1
    chargers stamp their Transaction.Begin and Transaction.End samples with the start and stop times themselves,
    and the tariff engine rightly refuses two samples at one time.  Samples outside [start, stop] are dropped: the
    session's span is what is billed."""
    start = _dt(ctx["started_at"])
    end = max(_dt(_iso(stop["stopped_at"])), start)
    raw: list[tuple[datetime, Decimal, Any, Any]] = [(start, Decimal(0), None, None)]
    for at, wh, p, a in samples:
        t = _dt(at)
        if start <= t <= end:
            raw.append((t, Decimal(str(wh)), p, a))
    raw.append((end, Decimal(str(stop["energy_wh"])), None, None))
    raw.sort(key=lambda x: x[0])  # stable: at one instant the start point stays first, the stop point last
    merged: list[list[Any]] = []
    for t, wh, p, a in raw:
        if merged and merged[-1][0] == t:
            last = merged[-1]
            last[1] = max(last[1], wh)
            last[2] = last[2] if last[2] is not None else p
            last[3] = last[3] if last[3] is not None else a
        else:
            merged.append([t, wh, p, a])
    out: list[MeterSample] = []
    prev = Decimal(0)
    for t, wh, p, a in merged:
        wh = max(wh, prev)  # energy never goes back within a session (the session fold guarantees it)
        out.append(MeterSample(timestamp=t, energy_wh=wh, power_w=p, current_a=a, charging=wh > prev or not out))
        prev = wh
    return out


def _bill(ctx: Mapping[str, Any], samples: list[list[Any]], stop: Mapping[str, Any],
          operator: Operator) -> tuple[list[Output], str]:
    session_id = stop["session_id"]
    payer_info = ctx.get("payer")
    tariff_info = ctx.get("tariff")
    reasons: list[Problem | ReviewProblem] = []
    if tariff_info is None:
        reasons.append(Problem(Reason.UNKNOWN_TARIFF, "tariffs",
                               f"no tariff in effect for {ctx['charge_point_id']} at {ctx['started_at']}"))
    partner_info = ctx.get("partner") if payer_info is None else None
    if payer_info is None and partner_info is None:
        reasons.append(ReviewProblem("NO_ACCOUNT", "cdr_token.uid",
                                      f"id token {ctx.get('id_token')!r} is not linked to an account"))
    emsp: partner.EmspPayer | None = None
    if partner_info is not None:
        try:
            emsp = partner.payer_of(partner_info)
        except (ValueError, KeyError) as exc:
            reasons.append(ReviewProblem("BAD_PARTNER", "cdr_token.party_id", f"{type(exc).__name__}: {exc}"))
        if ctx.get("location") is None:
            reasons.append(ReviewProblem("UNKNOWN_LOCATION", "cdr_location",
                                          f"station {ctx['charge_point_id']} is not in the stations projection: "
                                          "no location for the partner's CDR"))
    cdr: dict[str, Any] | None = None
    if tariff_info is not None:
        try:
            priced = price_samples(tariff_info["tariff"], _samples(ctx, samples, stop),
                                   time_zone=tariff_info.get("time_zone") or "UTC")
            cdr = _cdr(ctx, stop, priced.to_ocpi(), tariff_info["tariff"], operator)
            if partner_info is not None and ctx.get("location") is not None:
                cdr = _partner_cdr(cdr, ctx, tariff_info["tariff"], operator)
            reasons.extend(check_cdr(exactjson.loads(exactjson.dumps(cdr)),
                                     known_tariffs={tariff_info["tariff"]["id"]: tariff_info["tariff"]["currency"]},
                                     tariff_id=tariff_info["tariff"]["id"]))
        except (TariffEngineError, ValueError, KeyError) as exc:
            reasons.append(ReviewProblem("PRICING_FAILED", "charging_periods", f"{type(exc).__name__}: {exc}"))
    account_id = payer_info["account_id"] if payer_info else None
    if reasons:
        payload = exactjson.dumps({"session": _plain(stop), "context": _plain(ctx), "cdr": cdr}, default=str)
        rec = derive(stop, tag="billing-review", source=SOURCE,
                     **billing_review(problems=reasons, payload=payload, source_event_id=stop["event_id"],
                                      subject="SESSION", payload_type="chargeverse/SessionStopped",
                                      session_id=session_id, account_id=account_id))
        return [(BILLING.name, account_id or session_id, "BillingReview", rec)], "REVIEW"
    assert cdr is not None and tariff_info is not None
    totals = cost_totals(exactjson.loads(exactjson.dumps(cdr)))
    if emsp is not None:
        return _bill_partner(emsp, ctx, stop, cdr, totals, tariff_info, operator), "PRICED"
    assert payer_info is not None
    payer = (FleetPayer(payer_info["fleet_id"], payer_info.get("cost_centre"), account_id)
             if payer_info.get("fleet_id") else DriverPayer(account_id))
    plan = own_session_plan(source_event_id=stop["event_id"], session_id=session_id, payer=payer,
                            total_cost=totals.total_cost, currency=totals.currency, vat_country=operator.vat_country)
    priced_rec = derive(stop, tag="cdr-priced", source=SOURCE,
                        **cdr_priced(session_id=session_id, account_id=account_id, cdr_id=cdr["id"],
                                     cdr_text=exactjson.dumps(cdr, sort_keys=True), totals=totals,
                                     origin="OWN", tariff_id=tariff_info["tariff"]["id"],
                                     fleet_id=payer_info.get("fleet_id"), cost_centre=payer_info.get("cost_centre"),
                                     vat_country=operator.vat_country))
    outs: list[Output] = [(BILLING.name, account_id, "CdrPriced", priced_rec)]
    if not plan.is_empty:
        outs.append((LEDGER.name, plan.ledger_key, "LedgerPostingSet",
                     derive(stop, tag="ledger-charge", source=SOURCE, **plan.ledger_fields())))
    return outs, "PRICED"


def _cdr(ctx: Mapping[str, Any], stop: Mapping[str, Any], priced: Mapping[str, Any], tariff: Mapping[str, Any],
         operator: Operator) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR of an own-station session (what a roaming partner or an auditor would receive)."""
    cdr = {
        "country_code": operator.country_code, "party_id": operator.party_id,
        "id": stop["session_id"][:36], "session_id": stop["session_id"][:36],
        "cdr_token": {"country_code": operator.country_code, "party_id": operator.party_id,
                      "uid": ctx.get("id_token") or "", "type": _token_type(ctx.get("id_token_type")),
                      "contract_id": ctx.get("id_token") or ""},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": ctx["charge_point_id"], "evse_uid": f"{ctx['charge_point_id']}*"
                                                                   f"{ctx.get('evse_id') or 1}",
                         "evse_id": f"{ctx['charge_point_id']}*{ctx.get('evse_id') or 1}",
                         "connector_id": str(ctx.get("connector_id") or 1)},
        "tariffs": [tariff],
        "last_updated": _iso(stop["stopped_at"]),
        **priced,
    }
    return cdr


def _partner_cdr(cdr: Mapping[str, Any], ctx: Mapping[str, Any], tariff: Mapping[str, Any],
                 operator: Operator) -> dict[str, Any]:
    """The own-station CDR as the partner receives it: its token, the station snapshot, our tariff as ours."""
    started = _dt(ctx["started_at"])
    return {**cdr,
            "cdr_token": partner.cdr_token(ctx["partner"], ctx.get("id_token") or ""),
            "cdr_location": partner.cdr_location(ctx["location"], ctx["charge_point_id"],
                                                 int(ctx.get("connector_id") or ctx.get("evse_id") or 1),
                                                 country=operator.location_country, stamp=started),
            "tariffs": [partner.partner_tariff(tariff, country_code=operator.country_code,
                                               party_id=operator.party_id, last_updated=started)]}


def _bill_partner(emsp: partner.EmspPayer, ctx: Mapping[str, Any], stop: Mapping[str, Any],
                  cdr: Mapping[str, Any], totals: CdrTotals, tariff_info: Mapping[str, Any],
                  operator: Operator) -> list[Output]:
    """CdrPriced (keyed by the partner's `emsp:CC-PARTY`) + the receivable-from-partner postings."""
    session_id = stop["session_id"]
    plan = partner.partner_session_plan(source_event_id=stop["event_id"], session_id=session_id, payer=emsp,
                                        total_cost=totals.total_cost, currency=totals.currency,
                                        vat_country=operator.vat_country)
    priced_rec = derive(stop, tag="cdr-priced", source=SOURCE,
                        **cdr_priced(session_id=session_id, account_id=emsp.key, cdr_id=cdr["id"],
                                     cdr_text=exactjson.dumps(cdr, sort_keys=True), totals=totals, origin="OWN",
                                     tariff_id=tariff_info["tariff"]["id"], partner_country_code=emsp.country_code,
                                     partner_party_id=emsp.party_id, vat_country=operator.vat_country))
    outs: list[Output] = [(BILLING.name, emsp.key, "CdrPriced", priced_rec)]
    if not plan.is_empty:
        outs.append((LEDGER.name, plan.ledger_key, "LedgerPostingSet",
                     derive(stop, tag="ledger-charge", source=SOURCE, **plan.ledger_fields())))
    return outs


def _token_type(t: str | None) -> str:
    return {"ISO14443": "RFID", "ISO15693": "RFID", "eMAID": "APP_USER", "KeyCode": "OTHER",
            "Central": "APP_USER"}.get(t or "", "RFID")


def _plain(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in m.items()}
