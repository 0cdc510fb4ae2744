"""OCPP 1.6 CALL handlers: what the central system answers.  Pure functions of (Context, payload).

The answers that need a decision the log must remember (BootNotification's status and interval, an idTag's
status, StartTransaction's transactionId) are published with the OUT frame, which carries the request it answers
(`answers`), so processors and replay see exactly what each charger was told.  Data the answers need (id tokens,
a fresh transaction id) is fetched by the edge before the handler runs, as `NEEDS` declares.

Every charger-initiated action of 1.6 (+ the security extension) is answered.  SignCertificate is Accepted only
when a certificate signer is wired (Plug & Charge / PKI, not yet): until then Rejected.  DataTransfer answers
UnknownVendorId unless the vendor is configured.
"""

from __future__ import annotations

from typing import Any, Callable

from edges.ocpp.context import NO_NEEDS, Context, Decision, Needs, data_transfer_status, decide, iso

__all__ = ["Context", "HANDLERS", "NEEDS", "id_tag_info"]


def id_tag_info(ctx: Context, id_tag: str) -> dict[str, Any]:
    """1.6 IdTagInfo from the id_tokens projection: unknown tags are Invalid (1.6 has no Unknown status)."""
    d: Decision = decide(id_tag, None, ctx.tokens.get(id_tag), ctx.now, unknown="Invalid")
    info: dict[str, Any] = {"status": d.status}
    if d.expires is not None:
        info["expiryDate"] = iso(d.expires)
    if d.group_id and len(d.group_id) <= 20:  # parentIdTag is CiString20
        info["parentIdTag"] = d.group_id
    return info


def boot_notification(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    # Only registered, unrevoked chargers get past the handshake; the operator may hold one Pending or Rejected.
    return {"status": ctx.registration_status, "currentTime": iso(ctx.now), "interval": ctx.heartbeat_interval}


def heartbeat(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": iso(ctx.now)}


def empty(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def authorize(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": id_tag_info(ctx, payload["idTag"])}


def start_transaction(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    # A transactionId is always given, even for a refused idTag: the charger reports the (stopped) transaction
    # with it.  Uniqueness across edge instances comes from the Postgres sequence the edge drew it from.
    if ctx.transaction_id is None:
        raise ValueError("StartTransaction needs a transaction id drawn by the edge")
    return {"idTagInfo": id_tag_info(ctx, payload["idTag"]), "transactionId": ctx.transaction_id}


def stop_transaction(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    # The stop is recorded whatever the idTag; idTagInfo only answers the tag that stopped it, when given.
    return {"idTagInfo": id_tag_info(ctx, payload["idTag"])} if payload.get("idTag") else {}


def data_transfer(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": data_transfer_status(ctx, payload)}


def sign_certificate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Accepted" if ctx.can_sign else "Rejected"}


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": empty,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "MeterValues": empty,
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": empty,
    "DiagnosticsStatusNotification": empty,
    "SignCertificate": sign_certificate,
    "SecurityEventNotification": empty,
    "LogStatusNotification": empty,
    "SignedFirmwareStatusNotification": empty,
}

NEEDS: dict[str, Callable[[dict[str, Any]], Needs]] = {
    "Authorize": lambda p: Needs(tokens=(p["idTag"],)),
    "StartTransaction": lambda p: Needs(tokens=(p["idTag"],), transaction_id=True),
    "StopTransaction": lambda p: Needs(tokens=(p["idTag"],)) if p.get("idTag") else NO_NEEDS,
}
