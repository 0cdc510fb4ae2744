"""Roamed Locations and Sessions (partner CPOs' OCPI objects on `ocpi.inbound`) -> our station directory and our
drivers' live sessions.  Pure: no I/O.

Why a processor and not a projection: the station directory (PostGIS `stations`/`connectors`, Redis live
status) is built from the `stations` topic by the existing projections (projections/postgres/stations.py,
projections/redis_status.py); translating a partner's Location into station events puts roamed stations through
exactly the same path as our own, so the app's search, the live status and a rebuild treat both alike.  Likewise
a partner's Session becomes an `OcpiSessionUpdated` on `sessions`, keyed by the same session id roaming billing
gives that session's CDR.

Per object (the state key is partner + module + COUNTRY + PARTY + ID, the identity of `ocpi.inbound`'s key):
- Location (PUT, PULL, PATCH; EVSE/Connector PUT and PATCH): the merged document is kept in the state (the same
  merge rules as the OCPI objects projection: projections/postgres/ocpi_fold.py).  What the directory shows of
  it - name, operator, address, point, connectors, each connector's status, online - is compared with what was
  last emitted, and only the difference goes out: `StationRegistered` (own=false) when the station itself
  changed, `ConnectorStatusChanged` per connector whose status changed, `StationConnectionChanged` when online
  changed.  A status PATCH therefore costs one small event, not a re-registration.
- Session (PUT, PULL, PATCH): the merged Session goes out whole as `OcpiSessionUpdated`.

Invariants (tests/unit/ocpi/test_directory_fold.py names each):
- ONLY OUR VALID OBJECTS: other platforms' events, refused pushes (`valid` false), other modules, a PATCH or an
  EVSE PUT with nothing to apply to: no output, state unchanged (a partner's garbage leaves its good data shown).
- STABLE IDS: station id `roamed:<COUNTRY>:<PARTY>:<LOCATION ID>` (OCPI ids are case-insensitive: upper-cased),
  never colliding with an own station (OCPP ids cannot contain ':' ... and ours are never prefixed so); every
  connector (EVSE uid + connector id) keeps the number it was first given, whatever the partner later adds or
  reorders.
- NEVER A CHARGER LOGIN: a roamed station is registered revoked and Rejected, with no password, so no OCPP
  charger can ever connect under its id.
- DETERMINISTIC: outputs derive their ids and times from the inbound event (chargeverse.events.derive); a
  re-processed batch re-emits identical events, and a re-delivered push emits nothing new (no difference).
- NOT PUBLISHED, NOT SHOWN: a Location with `publish` false is not put in the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from chargeverse.events import derive
from chargeverse.topics import SESSIONS, STATIONS
from projections.postgres.ocpi_fold import (dumps, loads, parse_datetime, patch_location, patch_object,
                                            put_into_location)

SOURCE = "streams.ocpi_directory"
EVENT = "OcpiObjectReceived"
MODULES = frozenset({"locations", "sessions"})
WHOLE = frozenset({"PUT", "PULL", "POST"})
#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]

#: OCPI EVSE status -> the connector status our directory (and the app's `available` filter) speaks (OCPP words)
STATUS = {"AVAILABLE": "Available", "CHARGING": "Charging", "RESERVED": "Reserved", "BLOCKED": "Unavailable",
          "INOPERATIVE": "Unavailable", "OUTOFORDER": "Faulted", "PLANNED": "Unavailable",
          "REMOVED": "Unavailable", "UNKNOWN": "Unknown"}
#: EVSE statuses that say nothing about the station being reachable (OCPI: UNKNOWN "also used when offline")
NOT_LIVE = frozenset({"UNKNOWN"})


@dataclass(frozen=True)
class Policy:
    #: our OCPI platform: events of other platforms sharing the log are not ours
    platform_id: str = "chargeverse"


def is_ours(event_type: str, rec: Mapping[str, Any], platform_id: str) -> bool:
    return (event_type == EVENT and rec.get("valid") is True and rec.get("module") in MODULES
            and rec.get("platform_id") == platform_id)


def state_key(rec: Mapping[str, Any]) -> str:
    return "|".join((str(rec["partner_id"]), str(rec["module"]), str(rec["country_code"]).upper(),
                     str(rec["party_id"]).upper(), str(rec["object_id"]).upper()))


def station_id(country_code: str, party_id: str, location_id: str) -> str:
    return f"roamed:{country_code.upper()}:{party_id.upper()}:{location_id.upper()}"


def session_id(country_code: str, party_id: str, ocpi_session_id: str) -> str:
    """As streams/roaming_billing names the session of a CDR (the partner's spelling of the id)."""
    return f"roamed:{country_code.upper()}:{party_id.upper()}:{ocpi_session_id}"


def apply(state: dict[str, Any] | None, event_type: str, rec: Mapping[str, Any],
          policy: Policy = Policy()) -> tuple[dict[str, Any] | None, list[Output]]:
    """Fold one `ocpi.inbound` event into its object's state; return (new state, outputs)."""
    if not is_ours(event_type, rec, policy.platform_id):
        return state, []
    current = loads(state["doc"]) if state and state.get("doc") else None
    doc = _merged(current, rec)
    if doc is None:
        return state, []
    if rec["module"] == "locations":
        return _location(state or {}, doc, rec)
    return _session(state or {}, doc, rec)


def _merged(current: Any, rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The object after this event (as the OCPI objects projection merges it); None: nothing to apply to."""
    method, evse, conn = rec["method"], rec.get("evse_uid"), rec.get("connector_id")
    try:
        body = loads(rec["raw"]) if rec.get("raw") else None
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if method in WHOLE and not (rec["module"] == "locations" and evse):
        return body
    if not isinstance(current, dict):
        return None
    if rec["module"] == "locations":
        if method == "PUT":
            return put_into_location(current, body, evse, conn)
        if method == "PATCH":
            return patch_location(current, body, evse, conn)
        return None
    return patch_object(current, body) if method == "PATCH" else None


# ---- Locations -> stations -------------------------------------------------------------------------------------


def _power_kw(c: Mapping[str, Any]) -> float:
    w = c.get("max_electric_power")
    try:
        if w is not None:
            return float(w) / 1000
        volts, amps = float(c.get("max_voltage") or 0), float(c.get("max_amperage") or 0)
    except (TypeError, ValueError):
        return 0.0
    phases = 3 if c.get("power_type") == "AC_3_PHASE" else 1
    return volts * amps * phases / 1000


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def view(doc: Mapping[str, Any], numbers: dict[str, int]) -> dict[str, Any]:
    """What the directory shows of a Location.  `numbers` (EVSE uid|connector id -> connector number) is extended
    in place for connectors seen for the first time."""
    op = doc.get("operator") if isinstance(doc.get("operator"), dict) else None
    address = ", ".join(x for x in (_text(doc.get("address")), " ".join(
        x for x in (_text(doc.get("postal_code")), _text(doc.get("city"))) if x)) if x)
    coords = doc.get("coordinates") if isinstance(doc.get("coordinates"), dict) else {}
    try:
        lat, lon = float(coords.get("latitude")), float(coords.get("longitude"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lat, lon = None, None
    connectors = []
    live = False
    for e in doc.get("evses") or []:
        if not isinstance(e, dict) or not isinstance(e.get("uid"), str):
            continue
        status = str(e.get("status") or "UNKNOWN").upper()
        live = live or status not in NOT_LIVE
        for c in e.get("connectors") or []:
            if not isinstance(c, dict) or not isinstance(c.get("id"), str):
                continue
            ref = f"{e['uid'].upper()}|{c['id'].upper()}"
            if ref not in numbers:
                numbers[ref] = max(numbers.values(), default=0) + 1
            connectors.append({"connector_id": numbers[ref], "standard": _text(c.get("standard")) or "UNKNOWN",
                               "max_power_kw": round(_power_kw(c), 3), "status": STATUS.get(status, "Unknown"),
                               "ocpi_status": status})
    connectors.sort(key=lambda c: c["connector_id"])
    return {"name": _text(doc.get("name")) or _text(doc.get("id")),
            "operator": _text(op.get("name")) if op else "",
            "address": address, "latitude": lat, "longitude": lon, "publish": doc.get("publish") is not False,
            "connectors": connectors, "online": live}


def _static(v: Mapping[str, Any]) -> tuple[Any, ...]:
    return (v["name"], v["operator"], v["address"], v["latitude"], v["longitude"],
            tuple((c["connector_id"], c["standard"], c["max_power_kw"]) for c in v["connectors"]))


def _location(state: dict[str, Any], doc: dict[str, Any], rec: Mapping[str, Any]) -> tuple[dict[str, Any], list[Output]]:
    numbers: dict[str, int] = dict(state.get("numbers") or {})
    new = view(doc, numbers)
    old = state.get("view")
    sid = station_id(rec["country_code"], rec["party_id"], rec["object_id"])
    outs: list[Output] = []
    shown = new["publish"] and new["latitude"] is not None
    if shown:
        cause = dict(rec)
        if old is None or not old.get("shown") or _static(old) != _static(new):
            outs.append((STATIONS.name, sid, "StationRegistered", derive(
                cause, tag=f"dir-registered:{sid}", source=SOURCE, station_id=sid, name=new["name"][:255],
                operator=new["operator"] or f"{rec['country_code']}*{rec['party_id']}",
                latitude=new["latitude"], longitude=new["longitude"], address=new["address"], own=False,
                connectors=[{k: c[k] for k in ("connector_id", "standard", "max_power_kw")}
                            for c in new["connectors"]],
                password_hash=None, security_profile=1, revoked=True, registration_status="Rejected")))
        before = {c["connector_id"]: c["ocpi_status"] for c in (old or {}).get("connectors", [])} \
            if old and old.get("shown") else {}
        for c in new["connectors"]:
            if before.get(c["connector_id"]) != c["ocpi_status"]:
                outs.append((STATIONS.name, sid, "ConnectorStatusChanged", derive(
                    cause, tag=f"dir-status:{sid}:{c['connector_id']}", source=SOURCE, station_id=sid,
                    connector_id=c["connector_id"], status=c["status"], error_code="NoError",
                    info=f"OCPI {c['ocpi_status']}", vendor_error_code=None)))
        if old is None or not old.get("shown") or old.get("online") != new["online"]:
            outs.append((STATIONS.name, sid, "StationConnectionChanged", derive(
                cause, tag=f"dir-online:{sid}", source=SOURCE, station_id=sid, online=new["online"],
                edge_instance=f"ocpi:{rec['partner_id']}")))
    new["shown"] = shown
    return {"doc": dumps(doc), "numbers": numbers, "view": new}, outs


# ---- Sessions -> sessions --------------------------------------------------------------------------------------


def _decimal_text(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        return None
    try:
        return str(Decimal(str(v)))
    except ArithmeticError:
        return None


def _session(state: dict[str, Any], doc: dict[str, Any], rec: Mapping[str, Any]) -> tuple[dict[str, Any], list[Output]]:
    cc, pid = str(rec["country_code"]).upper(), str(rec["party_id"]).upper()
    their_id = doc["id"] if isinstance(doc.get("id"), str) and doc["id"] else str(rec["object_id"])
    sid = session_id(cc, pid, their_id)
    token = doc.get("cdr_token") if isinstance(doc.get("cdr_token"), dict) else {}
    cost = doc.get("total_cost") if isinstance(doc.get("total_cost"), dict) else {}
    try:
        wh = float(doc.get("kwh") or 0) * 1000
    except (TypeError, ValueError):
        wh = 0.0
    out = derive(dict(rec), tag=f"dir-session:{sid}", source=SOURCE, platform_id=rec["platform_id"],
                 session_id=sid, partner_id=rec["partner_id"], country_code=cc, party_id=pid,
                 ocpi_session_id=their_id,
                 station_id=station_id(cc, pid, _text(doc.get("location_id")) or "?"),
                 evse_uid=_text(doc.get("evse_uid")) or None, connector_id=_text(doc.get("connector_id")) or None,
                 status=str(doc.get("status") or "ACTIVE").upper(),
                 id_token=_text(token.get("uid")) or None, id_token_type=_text(token.get("type")) or None,
                 started_at=parse_datetime(doc.get("start_date_time")),
                 stopped_at=parse_datetime(doc.get("end_date_time")), energy_wh=max(wh, 0.0),
                 currency=_text(doc.get("currency")) or None, total_cost_excl_vat=_decimal_text(cost.get("excl_vat")),
                 last_updated=parse_datetime(doc.get("last_updated")), raw=dumps(doc))
    return {"doc": dumps(doc)}, [(SESSIONS.name, sid, "OcpiSessionUpdated", out)]
