"""Our drivers' id tokens (the `id_tokens` projection) as OCPI 2.2.1 Tokens, and the real-time authorization
decision.  Pure: no I/O, `now` is passed in.

Token mapping: `uid` as is; type from the OCPP type the identity projection stores (NULL - an RFID card of unknown
physical standard, ISO14443/ISO15693 -> RFID; Central -> APP_USER; anything else -> OTHER); `contract_id` the
driver's contract (the uid when a token has none: OCPI requires one); `issuer` our business name; `valid` only for
an Accepted token not past its `valid_until`; `whitelist` ALLOWED (the CPO asks us in real time, and may use its
cached copy when we cannot be reached).

`last_updated` is the row's `updated_at`, or its `valid_until` once that has passed (the moment `valid` turned
false) - so an incremental pull (`date_from`) also sees a token that merely expired.  The SQL filter
(`LAST_UPDATED_SQL`) computes the same expression; a test checks they agree.

Plug & Charge contracts (a row the PnC enrolment issued: `pnc`, the uid is the eMAID): type OTHER (OCPI 2.2.1 has
no eMAID type; a CPO speaking 2.3.0 may ask with EMAID, also accepted), whitelist ALLOWED_OFFLINE (a revoked
contract must reach the CPO through real-time authorization; the cached copy only while we cannot be reached),
and the decision is edges/pnc/roaming.py's (certificate status, token, fleet rules), not `decide` below.

Decision (OCPI AllowedType), in this order: Blocked -> BLOCKED; Expired, or valid_until passed -> EXPIRED;
Invalid or any other status -> NOT_ALLOWED; Accepted -> ALLOWED.  (NO_CREDIT needs an account balance check this
edge does not make yet.)  A request for a type the token is not is the same as an unknown token: 2004.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edges.ocpi.status import ocpi_timestamp

ALLOWED, BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED = "ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"
UNKNOWN_TOKEN = "UNKNOWN_TOKEN"
WHITELIST = "ALLOWED"

OCPI_TYPE = {None: "RFID", "ISO14443": "RFID", "ISO15693": "RFID", "Central": "APP_USER"}

#: the SQL twin of `last_updated()` over the id_tokens columns (parameter: now)
LAST_UPDATED_SQL = ("GREATEST(t.updated_at, CASE WHEN t.valid_until IS NOT NULL AND t.valid_until <= %(now)s "
                    "THEN t.valid_until END)")


@dataclass(frozen=True)
class IdTokenRow:
    uid: str
    type: str | None
    contract_id: str | None
    account_id: str | None
    status: str
    valid_until: datetime | None
    group_id: str | None
    updated_at: datetime
    pnc: bool = False  # a Plug & Charge contract token (uid = eMAID)


#: the TokenTypes a contract token answers to (2.2.1: OTHER; 2.3.0 added EMAID)
CONTRACT_TYPES = ("OTHER", "EMAID")


def ocpi_type(ocpp_type: str | None) -> str:
    return OCPI_TYPE.get(ocpp_type, "OTHER")


def type_matches(row: IdTokenRow, requested: str) -> bool:
    if row.pnc:
        return requested.upper() in CONTRACT_TYPES
    return ocpi_type(row.type) == requested.upper()


def expired(row: IdTokenRow, now: datetime) -> bool:
    return row.valid_until is not None and row.valid_until <= now


def last_updated(row: IdTokenRow, now: datetime) -> datetime:
    if expired(row, now) and row.valid_until is not None and row.valid_until > row.updated_at:
        return row.valid_until
    return row.updated_at


def token_doc(row: IdTokenRow, *, country_code: str, party_id: str, issuer: str, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"country_code": country_code, "party_id": party_id, "uid": row.uid,
                           "type": "OTHER" if row.pnc else ocpi_type(row.type),
                           "contract_id": (row.contract_id or row.uid)[:36], "issuer": issuer[:64]}
    if row.group_id:
        doc["group_id"] = row.group_id[:36]
    doc.update(valid=row.status == "Accepted" and not expired(row, now),
               whitelist="ALLOWED_OFFLINE" if row.pnc else WHITELIST,
               last_updated=ocpi_timestamp(last_updated(row, now)))
    return doc


def decide(row: IdTokenRow, now: datetime) -> tuple[str, str | None]:
    """(allowed, reason when not ALLOWED)."""
    if row.status == "Blocked":
        return BLOCKED, "the token is blocked"
    if row.status == "Expired" or expired(row, now):
        return EXPIRED, "the token has expired"
    if row.status != "Accepted":
        return NOT_ALLOWED, f"the token is {row.status.lower()}"
    return ALLOWED, None


class BadLocationReferences(ValueError):
    pass


def location_references(body: Any) -> tuple[str, list[str]] | None:
    """The optional LocationReferences body: None when absent; BadLocationReferences when malformed."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadLocationReferences("LocationReferences must be a JSON object")
    loc = body.get("location_id")
    if not isinstance(loc, str) or not 0 < len(loc) <= 36:
        raise BadLocationReferences("location_id must be a string of 1-36 characters")
    evses = body.get("evse_uids", [])
    if evses is None:
        evses = []
    if not isinstance(evses, list) or not all(isinstance(e, str) and 0 < len(e) <= 36 for e in evses):
        raise BadLocationReferences("evse_uids must be a list of strings of 1-36 characters")
    return loc, list(evses)


def authorization_info(allowed: str, token: dict[str, Any], *, reference: str | None,
                       location: tuple[str, list[str]] | None, reason: str | None) -> dict[str, Any]:
    """The AuthorizationInfo answer.  The location (when asked about) is echoed: we set no per-location limits."""
    info: dict[str, Any] = {"allowed": allowed, "token": token}
    if location is not None and allowed == ALLOWED:
        loc: dict[str, Any] = {"location_id": location[0]}
        if location[1]:
            loc["evse_uids"] = location[1]
        info["location"] = loc
    if reference is not None:
        info["authorization_reference"] = reference
    if reason:
        info["info"] = {"language": "en", "text": reason}
    return info
