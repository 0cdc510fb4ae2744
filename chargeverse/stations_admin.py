"""Registering stations (operators): publishes StationRegistered; the projections do the rest."""

from __future__ import annotations

import secrets
from typing import Any

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.passwords import hash_machine_secret
from chargeverse.topics import STATIONS


def registration(station_id: str, *, name: str, operator: str, latitude: float, longitude: float,
                 address: str = "", connectors: list[dict[str, Any]] | None = None, secret: str | None = None,
                 own: bool = True, security_profile: int = 1, source: str = "cli", revoked: bool = False,
                 registration_status: str = "Accepted") -> tuple[dict[str, Any], str]:
    """(StationRegistered record, the charger's secret).  The secret is returned once and only its argon2id hash
    goes on the log.  A registration replaces the previous one of the station: `revoked` refuses the charger at the
    handshake, `registration_status` is what its BootNotification is answered (Accepted, Pending, Rejected)."""
    if registration_status not in ("Accepted", "Pending", "Rejected"):
        raise ValueError("registration_status must be Accepted, Pending or Rejected")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")
    generated = secret is None
    secret = secret or secrets.token_urlsafe(18)
    if len(secret) < 16:
        raise ValueError("charger secrets must be at least 16 characters (OCPP security profile 1)")
    rec = envelope(source=source, correlation_id=station_id)
    rec.update(station_id=station_id, name=name, operator=operator, latitude=latitude, longitude=longitude,
               address=address, own=own, security_profile=security_profile,
               connectors=connectors or [{"connector_id": 1, "standard": "IEC_62196_T2", "max_power_kw": 22.0},
                                         {"connector_id": 2, "standard": "IEC_62196_T2", "max_power_kw": 22.0}],
               password_hash=hash_machine_secret(secret, generated=generated) if security_profile in (1, 2)
               else None,
               revoked=revoked, registration_status=registration_status)
    return rec, secret


def register(producer: EventProducer, station_id: str, **kw: Any) -> str:
    rec, secret = registration(station_id, **kw)
    producer.publish_sync(STATIONS.name, station_id, "StationRegistered", rec)
    return secret
