"""What a CALL handler may know besides the payload, and the authorization decision shared by both versions.

Handlers are pure functions of (Context, payload).  Everything that needs I/O — an id token's row, a fresh
transaction id — is fetched by the edge *before* the handler runs (each handler module says what it needs in
`NEEDS`) and handed in here, so every answer can be unit-tested without a database and replays exactly.

Authorization invariants (both versions):
- an id token not in the `id_tokens` projection is never Accepted (1.6: Invalid; 2.0.1: Unknown);
- a token whose `valid_until` has passed answers Expired, whatever its stored status;
- a token registered with a type answers only when presented with that type (2.0.1: an RFID uid is not an eMAID);
- the edge never decides more than the projection says: Blocked/Expired/Invalid rows answer as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

REGISTRATION_STATUSES = ("Accepted", "Pending", "Rejected")
TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")


@dataclass(frozen=True)
class TokenRecord:
    """One row of the `id_tokens` projection (projections/postgres/migrations/010_id_tokens.sql)."""

    uid: str
    type: str | None
    status: str
    valid_until: datetime | None = None
    group_id: str | None = None
    contract_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """What the charger is told about a token."""

    status: str  # Accepted, Blocked, Expired, Invalid, or (2.0.1 only) Unknown
    expires: datetime | None = None
    group_id: str | None = None


def decide(uid: str, presented_type: str | None, row: TokenRecord | None, now: datetime,
           unknown: str = "Invalid") -> Decision:
    """The authorization decision for `uid` given its projected row (None: not known)."""
    if row is None or row.uid != uid:
        return Decision(unknown)
    if row.type and presented_type and row.type != presented_type:
        return Decision(unknown)
    if row.valid_until is not None and row.valid_until <= now:
        return Decision("Expired", row.valid_until, row.group_id)
    status = row.status if row.status in TOKEN_STATUSES else "Invalid"
    return Decision(status, row.valid_until, row.group_id)


@dataclass(frozen=True)
class Needs:
    """The lookups a CALL needs before it can be answered."""

    tokens: tuple[str, ...] = ()
    transaction_id: bool = False


NO_NEEDS = Needs()


@dataclass(slots=True)  # built per CALL: slots, not frozen (frozen init costs a setattr call per field)
class Context:
    charge_point_id: str
    now: datetime
    heartbeat_interval: int
    #: the operator's registration decision: Accepted, Pending or Rejected (answered to BootNotification)
    registration_status: str = "Accepted"
    security_profile: int = 1
    #: a certificate signer is wired (Plug & Charge / PKI); until then certificate requests are refused
    can_sign: bool = False
    #: vendorId -> messageIds accepted by DataTransfer (an empty set: any messageId of that vendor)
    data_transfer: Mapping[str, frozenset[str]] = field(default_factory=dict)
    tokens: Mapping[str, TokenRecord | None] = field(default_factory=dict)
    transaction_id: int | None = None


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def data_transfer_status(ctx: Context, payload: dict[str, Any]) -> str:
    """Accepted for a configured vendor (and messageId, when the vendor lists them), else the Unknown* status."""
    vendor = payload.get("vendorId")
    if vendor not in ctx.data_transfer:
        return "UnknownVendorId"
    ids = ctx.data_transfer[vendor]
    if ids and payload.get("messageId") not in ids:
        return "UnknownMessageId"
    return "Accepted"
