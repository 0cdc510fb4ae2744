"""Who may connect, and with which security profile: decided at the WebSocket handshake from the Postgres
projection (charge_point_credentials, plus the station's vendor/model when known).

Security profiles (OCPP 1.6 security whitepaper / 2.0.1 A00):
- 0: no authentication (only for chargers registered with profile 0);
- 1: HTTP Basic over ws:// — username = charge point id, password = the charger's secret (argon2id hash stored);
- 2: HTTP Basic over TLS (wss://) with our server certificate;
- 3: mutual TLS — a client certificate issued by the charger CA (checked by the TLS layer, edges/ocpp/tls.py)
  whose CN or subjectAltName equals the charge point id; no password.

Invariants:
- unknown and revoked chargers are refused (HTTP 401), before any secret is checked;
- a charger never connects with a lower profile than it is registered for (no downgrade: a profile-2 charger is
  refused on ws://, a profile-3 charger without its certificate is refused);
- the profile recorded for the connection is the one the transport proved, not the registered one;
- a verified secret is remembered (as a SHA-256 digest, never in clear) for a short time against the stored hash
  it verified with, so a reconnect storm does not cost an argon2 verification per charger, and a new secret
  revokes the old one at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from chargeverse.passwords import verify_secret
from edges.ocpp.tls import Transport

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Registration:
    """A charger's row in the projection, as the edge needs it."""

    password_hash: str | None
    security_profile: int
    revoked: bool = False
    registration_status: str = "Accepted"  # what its BootNotification is answered: Accepted, Pending, Rejected
    vendor: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Admission:
    ok: bool
    reason: str  # for our log only; the peer learns 401
    profile: int | None = None
    registration: Registration | None = None


def profile_for(cp_id: str, reg: Registration | None, transport: Transport) -> tuple[int | None, str, bool]:
    """(the security profile this connection proves or None when refused, reason, whether a password must be
    checked).  Pure: the whole profile policy, without the password check."""
    if reg is None:
        return None, "unknown charge point", False
    if reg.revoked:
        return None, "registration revoked", False
    if transport.client_names is not None:
        if cp_id not in transport.client_names:
            return None, "client certificate is not issued to this charge point", False
        profile, needs_password = 3, False
    elif reg.security_profile == 0:
        return 0, "security profile 0 (no authentication)", False
    else:
        profile, needs_password = (2 if transport.tls else 1), True
    if profile < reg.security_profile:
        return None, f"connected with security profile {profile}, registered for {reg.security_profile}", False
    return profile, "ok", needs_password


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        user, sep, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, secret) if sep else None


class CredentialStore:
    def __init__(self, dsn: str | None = None, pool: AsyncConnectionPool | None = None) -> None:
        if pool is None:
            if dsn is None:
                raise ValueError("a DSN or a pool")
            pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
        self.pool = pool
        #: station -> (SHA-256 of the secret, the stored hash it verified against, expiry)
        self._ok: dict[str, tuple[bytes, str, float]] = {}

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    async def lookup(self, station_id: str) -> Registration | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.password_hash, c.security_profile, c.revoked, c.registration_status, s.vendor, s.model "
                "FROM charge_point_credentials c LEFT JOIN stations s ON s.station_id = c.station_id "
                "WHERE c.station_id = %s", (station_id,))
            row = await cur.fetchone()
        return Registration(*row) if row else None

    async def admit(self, station_id: str, authorization: str | None, transport: Transport) -> Admission:
        reg = await self.lookup(station_id)
        profile, reason, needs_password = profile_for(station_id, reg, transport)
        if profile is None or not needs_password:
            return Admission(profile is not None, reason, profile, reg)
        assert reg is not None
        ok, why = await self._check_secret(station_id, reg.password_hash, authorization)
        return Admission(ok, why, profile if ok else None, reg)

    async def check(self, station_id: str, authorization: str | None) -> tuple[bool, str]:
        """(allowed, reason) for a plain ws:// connection (security profile 0/1)."""
        a = await self.admit(station_id, authorization, Transport(False))
        return a.ok, a.reason

    async def _check_secret(self, station_id: str, password_hash: str | None,
                            authorization: str | None) -> tuple[bool, str]:
        creds = basic_credentials(authorization)
        if creds is None:
            return False, "no or malformed HTTP Basic credentials"
        user, secret = creds
        if user != station_id:
            return False, "username is not the charge point id"
        if not password_hash:
            return False, "no secret set for this charge point"
        digest = hashlib.sha256(secret.encode()).digest()
        cached = self._ok.get(station_id)
        # a cached success counts only against the same stored hash: a new secret revokes the old one at once
        if cached and cached[0] == digest and cached[1] == password_hash and cached[2] > time.monotonic():
            return True, "ok (cached)"
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_secret, password_hash, secret)
        if ok:
            self._ok[station_id] = (digest, password_hash, time.monotonic() + CACHE_SECONDS)
            return True, "ok"
        return False, "wrong secret"
