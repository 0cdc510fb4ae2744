"""Our own objects (CPO role) as OCPI pushes to connected eMSPs: `stations`, `sessions` and `billing` events ->
`OcpiPushRequested` on `ocpi.outbound`, one per partner.  Pure: no I/O.

What is pushed, and to whom (OCPI 2.2.1: a CPO pushes changes to the eMSPs it is connected with):
- Locations - our own stations (StationRegistered own=true, ...), mapped by edges/ocpi/cpo_locations.py exactly
  as the Locations sender serves them: a PUT of the whole Location to every registered eMSP with a Locations
  receiver, whenever the Location changed in anything but its timestamps (a connector's status, the station going
  offline, a new connector).  Heartbeats change nothing an eMSP sees, so they push nothing.
- Tariffs - StationTariffSet: a PUT of the tariff (as our party's) to every such eMSP, when its content changed.
- Sessions - SessionStarted / SessionMeterSample / SessionStopped of a session whose driver token an eMSP gave
  us (its Tokens, pushed to our Tokens receiver): a PUT of the whole Session to that eMSP only, never to others.
- CDRs - CdrPriced (origin OWN) of such a session: a POST of the priced CDR, verbatim, to that eMSP only.  Billing
  prices these sessions with our tariff and books them as a receivable from the eMSP (streams/billing/partner.py);
  the CDR's `cdr_token` names the eMSP's party, and the push goes only to a connection whose token of that uid
  is that party's (a uid is unique only within one eMSP: a CDR is never sent to another party holding the same
  uid).
Partners that registered after a change do not get it pushed: their first pull brings them everything up to then
(OCPI's rule for a new connection).

Invariants (tests/unit/ocpi/test_push_fold.py names each):
- OWN ONLY: roamed stations (own=false) and roamed sessions are never pushed back out.
- PRIVATE: a session or CDR goes only to the eMSP owning the driver's token, nowhere when no partner owns it.
- CHANGES ONLY: a re-delivered event, a heartbeat, an unchanged tariff push nothing.
- ORDERED PER PARTNER: pushes are keyed by partner id (one partition), in the order of the changes of one object.
- DETERMINISTIC: ids and times derive from the cause (chargeverse.events.derive); what partners exist and which
  partner owns a token are looked up once per change (`Lookups`) - the only inputs that are not events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chargeverse.events import derive
from chargeverse.topics import OCPI_OUTBOUND
from edges.ocpi.cpo_locations import ConnectorRow, StationRow, location_doc
from edges.ocpi.cpo_objects import session_doc, tariff_doc
from projections.postgres.ocpi_fold import dumps, loads

SOURCE = "streams.ocpi_push"
Output = tuple[str, str, str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """A partner to push to: its connection id, the party addressed (OCPI-to), when it registered."""

    partner_id: str
    country_code: str
    party_id: str
    registered_at: datetime | None = None


@dataclass(frozen=True)
class Lookups:
    #: module -> the registered eMSP connections with a RECEIVER endpoint for it
    emsps: Callable[[str], list[Target]]
    #: driver token uid -> the eMSP connection that gave it to us (its Tokens module), or None
    token_owner: Callable[[str], Target | None]


@dataclass(frozen=True)
class Policy:
    platform_id: str = "chargeverse"
    country_code: str = "NL"
    party_id: str = "CVS"
    #: what our station registration does not record (see edges/ocpi/cpo_locations.py)
    location_country: str = "NLD"
    time_zone: str = "Europe/Amsterdam"
    #: OCPI Sessions need a currency; our sessions are priced in it
    currency: str = "EUR"


STATION_EVENTS = frozenset({"StationRegistered", "StationBooted", "StationHeartbeat", "StationConnectionChanged",
                            "ConnectorStatusChanged"})
SESSION_EVENTS = frozenset({"SessionStarted", "SessionMeterSample", "SessionStopped"})


def state_key(event_type: str, rec: Mapping[str, Any]) -> str | None:
    """The state an event folds into, or None when this processor passes it over."""
    if event_type in STATION_EVENTS:
        return f"station:{rec['station_id']}"
    if event_type == "StationTariffSet":
        return f"tariff:{rec['tariff_id']}"
    if event_type in SESSION_EVENTS:
        return f"session:{rec['session_id']}"
    if event_type == "CdrPriced" and rec.get("origin") == "OWN":
        return f"cdr:{rec['session_id']}"
    return None


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
    return str(v)


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def _digest(obj: Any) -> str:
    """A content digest without timestamps: what decides whether a partner would see a change."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "last_updated"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return hashlib.sha256(dumps(strip(obj)).encode()).hexdigest()


def _push(cause: Mapping[str, Any], policy: Policy, target: Target, *, module: str, method: str, object_id: str,
          body: str) -> Output:
    rec = derive(dict(cause), tag=f"push:{target.partner_id}:{module}:{object_id}", source=SOURCE,
                 platform_id=policy.platform_id, partner_id=target.partner_id, module=module, method=method,
                 country_code=policy.country_code, party_id=policy.party_id, object_id=object_id,
                 to_country_code=target.country_code or None, to_party_id=target.party_id or None, body=body)
    return (OCPI_OUTBOUND.name, target.partner_id, "OcpiPushRequested", rec)


def _to_all(cause: Mapping[str, Any], policy: Policy, lookups: Lookups, module: str, object_id: str,
            body: str) -> list[Output]:
    at = cause["occurred_at"]
    return [_push(cause, policy, t, module=module, method="PUT", object_id=object_id, body=body)
            for t in lookups.emsps(module) if t.registered_at is None or t.registered_at <= at]


def apply(state: dict[str, Any] | None, event_type: str, rec: Mapping[str, Any], lookups: Lookups,
          policy: Policy = Policy()) -> tuple[dict[str, Any] | None, list[Output]]:
    key = state_key(event_type, rec)
    if key is None:
        return state, []
    if key.startswith("station:"):
        return _station(state or {"conns": {}}, event_type, rec, lookups, policy)
    if key.startswith("tariff:"):
        return _tariff(state or {}, rec, lookups, policy)
    if key.startswith("session:"):
        return _session(state or {}, event_type, rec, lookups, policy)
    return _cdr(state or {}, rec, lookups, policy)


# ---- Locations -------------------------------------------------------------------------------------------------


def _station(st: dict[str, Any], t: str, r: Mapping[str, Any], lookups: Lookups,
             policy: Policy) -> tuple[dict[str, Any], list[Output]]:
    st = {**st, "conns": dict(st.get("conns") or {})}
    st["updated_at"] = _iso(r["occurred_at"])
    if t == "StationRegistered":
        st.update(own=bool(r["own"]), name=r["name"], operator=r["operator"], address=r["address"],
                  latitude=r["latitude"], longitude=r["longitude"])
        for c in r["connectors"]:
            prev = st["conns"].get(str(c["connector_id"]), {})
            st["conns"][str(c["connector_id"])] = {**prev, "standard": c["standard"],
                                                   "max_power_kw": c["max_power_kw"]}
    elif t == "StationConnectionChanged":
        st["online"] = bool(r["online"])
    elif t == "ConnectorStatusChanged":
        prev = st["conns"].get(str(r["connector_id"]), {})
        st["conns"][str(r["connector_id"])] = {**prev, "status": r["status"], "status_at": _iso(r["occurred_at"])}
    if not st.get("own"):
        return st, []
    row = StationRow(str(r["station_id"]), st.get("name"), st.get("operator"), st.get("address"),
                     st.get("latitude"), st.get("longitude"), bool(st.get("online")), _dt(st["updated_at"]))
    conns = [ConnectorRow(int(cid), c.get("standard"), c.get("max_power_kw"), c.get("status"),
                          _dt(c.get("status_at"))) for cid, c in st["conns"].items()]
    doc = location_doc(row, conns, country_code=policy.country_code, party_id=policy.party_id,
                       country=policy.location_country, time_zone=policy.time_zone)
    digest = _digest(doc)
    if digest == st.get("sent"):
        return st, []
    st["sent"] = digest
    return st, _to_all(r, policy, lookups, "locations", doc["id"], dumps(doc))


# ---- Tariffs ---------------------------------------------------------------------------------------------------


def _tariff(st: dict[str, Any], r: Mapping[str, Any], lookups: Lookups,
            policy: Policy) -> tuple[dict[str, Any], list[Output]]:
    try:
        tariff = loads(r["tariff"])
    except ValueError:
        return st, []
    if not isinstance(tariff, dict):
        return st, []
    tariff = tariff_doc(tariff, country_code=policy.country_code, party_id=policy.party_id,
                        tariff_id=r["tariff_id"], last_updated=r["occurred_at"])
    digest = _digest(tariff)
    if digest == st.get("sent"):
        return st, []
    return {"sent": digest}, _to_all(r, policy, lookups, "tariffs", r["tariff_id"], dumps(tariff))


# ---- Sessions and CDRs -----------------------------------------------------------------------------------------


def _session(st: dict[str, Any], t: str, r: Mapping[str, Any], lookups: Lookups,
             policy: Policy) -> tuple[dict[str, Any], list[Output]]:
    st = dict(st)
    if st.get("roamed") or str(r["session_id"]).startswith("roamed:"):
        return {"roamed": True}, []
    if t == "SessionStarted" or "cp" not in st:
        st.update(cp=r["charge_point_id"], connector=r.get("connector_id") or r.get("evse_id") or 1,
                  uid=r.get("id_token") or st.get("uid"), token_type=r.get("id_token_type"),
                  started=_iso(r["started_at"]) if r.get("started_at") is not None else st.get("started"),
                  wh=st.get("wh", 0.0))
        if "to" not in st:
            owner = lookups.token_owner(st["uid"]) if st.get("uid") else None
            st["to"] = [owner.partner_id, owner.country_code, owner.party_id] if owner else None
    if t == "SessionMeterSample":
        st["wh"] = max(float(r["energy_wh"]), float(st.get("wh") or 0))
    elif t == "SessionStopped":
        st.update(wh=float(r["energy_wh"]), stopped=_iso(r["stopped_at"]), status="COMPLETED")
    if not st.get("to"):
        return st, []
    target = Target(*st["to"])
    doc = session_doc(country_code=policy.country_code, party_id=policy.party_id, session_id=str(r["session_id"]),
                      charge_point_id=st["cp"], connector_id=int(st["connector"]),
                      started_at=_dt(st["started"]) or r["occurred_at"], stopped_at=_dt(st.get("stopped")),
                      energy_wh=float(st["wh"]), uid=st["uid"], id_token_type=st.get("token_type"),
                      token_party=(target.country_code, target.party_id), currency=policy.currency,
                      status=st.get("status") or "ACTIVE", last_updated=r["occurred_at"])
    digest = _digest(doc)
    if digest == st.get("sent"):
        return st, []
    st["sent"] = digest
    return st, [_push(r, policy, target, module="sessions", method="PUT", object_id=doc["id"], body=dumps(doc))]


def _same_party(owner: Target, token: Mapping[str, Any]) -> bool:
    """The token owner is the party the CDR's cdr_token names (when it names one; CiStrings: case-insensitive)."""
    cc, party = token.get("country_code"), token.get("party_id")
    if not isinstance(cc, str) or not isinstance(party, str):
        return True
    return (cc.upper(), party.upper()) == ((owner.country_code or "").upper(), (owner.party_id or "").upper())


def _cdr(st: dict[str, Any], r: Mapping[str, Any], lookups: Lookups,
         policy: Policy) -> tuple[dict[str, Any], list[Output]]:
    if st.get("done") or str(r["session_id"]).startswith("roamed:"):
        return st, []
    try:
        cdr = loads(r["cdr"])
    except ValueError:
        return {"done": True}, []
    token = cdr.get("cdr_token") if isinstance(cdr, dict) and isinstance(cdr.get("cdr_token"), dict) else {}
    owner = lookups.token_owner(token["uid"]) if isinstance(token.get("uid"), str) else None
    if owner is None or not _same_party(owner, token):
        return {"done": True}, []
    return {"done": True}, [_push(r, policy, owner, module="cdrs", method="POST", object_id=str(cdr.get("id")),
                                  body=r["cdr"])]
