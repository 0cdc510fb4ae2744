"""OCPP 1.6 CALL handlers: what the central system answers.  Pure functions of (charger, payload, now).

The answers that need a decision the log must remember (BootNotification's status and interval) are published
with the OUT frame, and the stations processor reads them from there, so replay sees exactly what each charger
was told.  Actions of 1.6 not handled yet answer NotSupported (recognised, not supported), unknown ones
NotImplemented, as OCPP-J §4.2.3 defines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable


@dataclass(frozen=True)
class Context:
    charge_point_id: str
    now: datetime
    heartbeat_interval: int


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def boot_notification(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    # Only registered chargers get past the handshake, so a boot is accepted.
    return {"status": "Accepted", "currentTime": _iso(ctx.now), "interval": ctx.heartbeat_interval}


def heartbeat(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": _iso(ctx.now)}


def status_notification(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


HANDLERS: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
}
