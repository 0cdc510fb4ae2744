"""OCPP 2.0.1 CALL handlers: what the CSMS answers.  Pure functions of (Context, payload), like v16's.

Decisions are published with the OUT frame (which carries the request it answers), so replay sees what each
Charging Station was told.  Every CS-initiated action of 2.0.1 is answered:

- BootNotification: the operator's registration status (Accepted / Pending / Rejected) with the interval.
- Authorize, TransactionEvent with an idToken: idTokenInfo from the `id_tokens` projection (unknown -> Unknown).
  TransactionEvent is accepted whatever its seqNo or `offline` flag: queued events are answered in the order they
  arrive and the log keeps them all (a gap in seqNo is for the sessions processor to notice, not for the edge).
- SignCertificate: Accepted only when a certificate signer is wired, else Rejected with a reason.
- Get15118EVCertificate / GetCertificateStatus: until the Plug & Charge service is wired, status Failed with
  statusInfo.reasonCode "NotEnabled" (reason codes are free text, CiString20, in 2.0.1).
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
    return {"idTokenInfo": id_token_info(ctx, payload["idToken"])}


def transaction_event(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    tok = _presented(payload)
    return {"idTokenInfo": id_token_info(ctx, tok)} if tok else {}


def data_transfer(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": data_transfer_status(ctx, payload)}


def sign_certificate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    if ctx.can_sign:
        return {"status": "Accepted"}
    return {"status": "Rejected", "statusInfo": {"reasonCode": "NotEnabled",
                                                 "additionalInfo": "no certificate signer is wired to this CSMS"}}


def get_15118_ev_certificate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Failed", "exiResponse": "", "statusInfo": dict(NOT_WIRED)}


def get_certificate_status(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Failed", "statusInfo": dict(NOT_WIRED)}


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
