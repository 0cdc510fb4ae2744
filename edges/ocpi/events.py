"""The OCPI events this edge publishes on `ocpi.inbound`, built in one place.  Pure: no I/O.

Keys (DESIGN.md §3: "partner + object id"): partner events are keyed by the partner id, so one connection's
onboarding, exchanges and deletion are totally ordered; object events by partner + module + owner + object id
(+ token type), so every update of one object is in order.  No credentials token is ever put in an event: only
hashes (tokens we issued) and sealed tokens (tokens they issued), and `their_credentials` is kept with its token
redacted.
"""

from __future__ import annotations

import json
from typing import Any

from chargeverse.events import envelope
from edges.ocpi.config import Party

REDACTED = "<redacted>"


def partner_key(partner_id: str) -> str:
    return partner_id


def object_key(partner_id: str, module: str, country_code: str, party_id: str, object_id: str,
               token_type: str | None = None) -> str:
    parts = [partner_id, module, country_code.upper(), party_id.upper(), object_id.upper()]
    if token_type:
        parts.append(token_type.upper())
    return "|".join(parts)


def onboarded(*, platform_id: str, partner_id: str, name: str, source: str, correlation_id: str,
              token_a_hash: str | None = None, their_versions_url: str | None = None,
              their_token_sealed: str | None = None, plain_token: bool = False) -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id)
    rec.update(platform_id=platform_id, partner_id=partner_id, name=name, token_a_hash=token_a_hash,
               their_versions_url=their_versions_url, their_token_sealed=their_token_sealed,
               plain_token=plain_token)
    return rec


def token_issued(*, platform_id: str, partner_id: str, token_hash: str, kind: str, source: str,
                 correlation_id: str) -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id)
    rec.update(platform_id=platform_id, partner_id=partner_id, token_hash=token_hash, kind=kind)
    return rec


def redacted_credentials(credentials: dict[str, Any]) -> str:
    """Their credentials object as JSON with the token replaced: kept for the record, never the token."""
    out = dict(credentials)
    if "token" in out:
        out["token"] = REDACTED
    from projections.postgres.ocpi_fold import dumps

    return dumps(out)


def roles_of(credentials: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for r in credentials.get("roles") or []:
        bd = r.get("business_details") if isinstance(r.get("business_details"), dict) else {}
        out.append({"role": str(r["role"]).upper(), "country_code": str(r["country_code"]).upper(),
                    "party_id": str(r["party_id"]).upper(), "name": str(bd.get("name") or "")})
    return out


def exchanged(event_type: str, *, platform_id: str, partner_id: str, initiated_by: str, our_token_hash: str,
              their_token_sealed: str, their_versions_url: str, version: str, endpoints: list[dict[str, Any]],
              credentials: dict[str, Any], grace_seconds: int, source: str, correlation_id: str,
              causation_id: str | None = None) -> dict[str, Any]:
    """OcpiPartnerRegistered or OcpiCredentialsRotated."""
    assert event_type in ("OcpiPartnerRegistered", "OcpiCredentialsRotated")
    rec = envelope(source=source, correlation_id=correlation_id, causation_id=causation_id)
    rec.update(platform_id=platform_id, partner_id=partner_id, initiated_by=initiated_by,
               our_token_hash=our_token_hash, their_token_sealed=their_token_sealed,
               their_versions_url=their_versions_url, version=version,
               endpoints=json.dumps([{"identifier": e["identifier"], "role": e["role"], "url": e["url"]}
                                     for e in endpoints]),
               roles=roles_of(credentials), their_credentials=redacted_credentials(credentials),
               previous_token_grace_seconds=grace_seconds)
    return rec


def deleted(*, platform_id: str, partner_id: str, initiated_by: str, reason: str | None, source: str,
            correlation_id: str) -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id)
    rec.update(platform_id=platform_id, partner_id=partner_id, initiated_by=initiated_by, reason=reason)
    return rec


def object_received(*, platform_id: str, partner_id: str, module: str, method: str, country_code: str,
                    party_id: str, object_id: str, raw: str, valid: bool, source: str, correlation_id: str,
                    errors: list[str] | None = None, warnings: list[str] | None = None,
                    evse_uid: str | None = None, connector_id: str | None = None, token_type: str | None = None,
                    request_id: str | None = None, sender: tuple[str, str] | None = None) -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id)
    rec.update(platform_id=platform_id, partner_id=partner_id, module=module, method=method,
               country_code=country_code.upper(), party_id=party_id.upper(), object_id=object_id,
               evse_uid=evse_uid, connector_id=connector_id, token_type=token_type, raw=raw, valid=valid,
               errors=list(errors or []), warnings=list(warnings or []), request_id=request_id,
               from_country_code=sender[0] if sender else None, from_party_id=sender[1] if sender else None)
    return rec


def our_credentials(token: str, versions_url: str, parties: list[Party], website: str | None) -> dict[str, Any]:
    """The credentials object we hand a partner (the token is theirs to use with us)."""
    return {"token": token, "url": versions_url, "roles": [p.credentials_role(website) for p in parties]}
