"""OCPP 2.0.1 CALL handlers: what the CSMS answers.  Pure functions of (Context, payload), like v16's.

Decisions are published with the OUT frame (which carries the request it answers), so replay sees what each
Charging Station was told.  Every CS-initiated action of 2.0.1 is answered:

- BootNotification: the operator's registration status (Accepted / Pending / Rejected) with the interval.
- Authorize, TransactionEvent with an idToken: idTokenInfo from the `id_tokens` projection (unknown -> Unknown).
  TransactionEvent is accepted whatever its seqNo or `offline` flag: queued events are answered in the order they
  arrive and the log keeps them all (a gap in seqNo is for the sessions processor to notice, not for the edge).
- Plug & Charge, once the operator enables it (setting `pnc_enabled`; until then SignCertificate is Rejected and
  Get15118EVCertificate / GetCertificateStatus Failed, statusInfo.reasonCode "NotEnabled" -- reason codes are free
  text, CiString20, in 2.0.1).  edges/pnc/service.py answers from the `pg.pnc` projection and publishes on `pnc`;
  with PnC enabled these four handlers are the only ones here that do I/O, synchronously (see that module):
  SignCertificate: security profile 3 only; the CSR is checked and signed by the CPO sub-CA, Accepted, and the
  chain follows as a CertificateSigned command; else Rejected with statusInfo.reasonCode the reason.
  Get15118EVCertificate: the contract is issued (Accepted + exiResponse) or Failed with the ISO 15118-2 code in
  the exiResponse and the reason in statusInfo.  GetCertificateStatus: our OCSP answer (good/revoked/unknown).
  Authorize with iso15118CertificateHashData: certificateStatus from the contract's status and eMAID, and
  idTokenInfo Accepted only when both the certificate and the account's token (incl. fleet rules) are.
- NotifyEVChargingNeeds: Rejected (no schedule will be provided) until smart charging is wired to the edge.
- DataTransfer: UnknownVendorId unless the vendor is configured.
- every other notification: the empty (or trivially Accepted) response its schema asks for.
"""

from __future__ import annotations

from typing import Any, Callable

from edges.ocpp.context import NO_NEEDS, Context, Needs, data_transfer_status, decide, iso

__all__ = ["Context", "HANDLERS", "NEEDS", "id_token_info"]

NOT_WIRED = {"reasonCode": "NotEnabled",
             "additionalInfo": "the Plug & Charge certificate service is not enabled at this CSMS yet"}


def _pnc() -> Any:
    """The Plug & Charge service, or None while the operator has not enabled it (the pure refusals apply)."""
    from chargeverse.settings import get_settings

    if not get_settings().pnc_enabled:
        return None
    from edges.pnc.service import shared

    return shared()


def id_token_info(ctx: Context, id_token: dict[str, Any]) -> dict[str, Any]:
    """2.0.1 IdTokenInfo from the id_tokens projection."""
    uid = id_token["idToken"]
    d = decide(uid, id_token.get("type"), ctx.tokens.get(uid), ctx.now, unknown="Unknown")
    info: dict[str, Any] = {"status": d.status}
    if d.expires is not None:
        info["cacheExpiryDateTime"] = iso(d.expires)
    if d.group_id and len(d.group_id) <= 36:  # IdTokenType.idToken is identifierString[0..36]
        info["groupIdToken"] = {"idToken": d.group_id, "type": "Central"}
    return info


def _presented(payload: dict[str, Any]) -> dict[str, Any] | None:
    tok = payload.get("idToken")
    return tok if tok and tok.get("type") != "NoAuthorization" else None


def boot_notification(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": ctx.registration_status, "currentTime": iso(ctx.now), "interval": ctx.heartbeat_interval}


def heartbeat(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": iso(ctx.now)}


def empty(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def authorize(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    info = id_token_info(ctx, payload["idToken"])
    hash_data = payload.get("iso15118CertificateHashData")
    pnc = _pnc() if hash_data else None
    if pnc is None:
        return {"idTokenInfo": info}
    check = pnc.check_hash_data(hash_data, payload["idToken"]["idToken"], ctx.charge_point_id)
    if check.certificate_status != "Accepted" and info["status"] == "Accepted":
        info = {"status": "Invalid"}  # a refused contract is never cached as Accepted
    return {"idTokenInfo": info, "certificateStatus": check.certificate_status}


def transaction_event(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    tok = _presented(payload)
    return {"idTokenInfo": id_token_info(ctx, tok)} if tok else {}


def data_transfer(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": data_transfer_status(ctx, payload)}


def sign_certificate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    pnc = _pnc()
    if pnc is None:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NotEnabled",
                                                     "additionalInfo": "no certificate signer is wired to this CSMS"}}
    if ctx.security_profile != 3:  # no client certificate to renew below profile 3 (the edge refuses 0/1 itself)
        return {"status": "Rejected", "statusInfo": {"reasonCode": "ProfileViolation", "additionalInfo":
                f"certificate signing needs security profile 3, not {ctx.security_profile}"}}
    return pnc.sign_certificate(payload, ctx.charge_point_id, ctx.security_profile)


def get_15118_ev_certificate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    pnc = _pnc()
    if pnc is None:
        return {"status": "Failed", "exiResponse": "", "statusInfo": dict(NOT_WIRED)}
    return pnc.get_15118_ev_certificate(payload, ctx.charge_point_id)


def get_certificate_status(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    pnc = _pnc()
    if pnc is None:
        return {"status": "Failed", "statusInfo": dict(NOT_WIRED)}
    return pnc.get_certificate_status(payload, ctx.charge_point_id)


def notify_ev_charging_needs(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Rejected", "statusInfo": {"reasonCode": "NotEnabled",
                                                 "additionalInfo": "smart charging is not wired to this edge"}}


def accepted(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Accepted"}


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": empty,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "MeterValues": empty,
    "NotifyReport": empty,
    "NotifyEVChargingNeeds": notify_ev_charging_needs,
    "NotifyEVChargingSchedule": accepted,
    "FirmwareStatusNotification": empty,
    "PublishFirmwareStatusNotification": empty,
    "SecurityEventNotification": empty,
    "SignCertificate": sign_certificate,
    "Get15118EVCertificate": get_15118_ev_certificate,
    "GetCertificateStatus": get_certificate_status,
    "LogStatusNotification": empty,
    "NotifyEvent": empty,
    "DataTransfer": data_transfer,
    "ClearedChargingLimit": empty,
    "ReportChargingProfiles": empty,
    "NotifyChargingLimit": empty,
    "ReservationStatusUpdate": empty,
    "NotifyMonitoringReport": empty,
    "NotifyDisplayMessages": empty,
    "NotifyCustomerInformation": empty,
}


def _transaction_needs(payload: dict[str, Any]) -> Needs:
    tok = _presented(payload)
    return Needs(tokens=(tok["idToken"],)) if tok else NO_NEEDS


NEEDS: dict[str, Callable[[dict[str, Any]], Needs]] = {
    "Authorize": lambda p: Needs(tokens=(p["idToken"]["idToken"],)),
    "TransactionEvent": _transaction_needs,
}
