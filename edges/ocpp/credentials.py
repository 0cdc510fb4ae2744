"""Who may connect: charger credentials read from the Postgres projection at the WebSocket handshake.

Security profile 1 (OCPP 1.6 security whitepaper / 2.0.1 A00): HTTP Basic, username = charge point id, password
= the charger's secret, checked against its argon2id hash.  Unknown chargers are refused.  A verified secret is
remembered (as a SHA-256 digest, never in clear) for a short time, so a reconnect storm does not cost an argon2
verification per charger.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

from psycopg_pool import AsyncConnectionPool

from chargeverse.passwords import verify_secret

CACHE_SECONDS = 300.0


class CredentialStore:
    def __init__(self, dsn: str) -> None:
        self.pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
        #: station -> (SHA-256 of the secret, the stored hash it verified against, expiry)
        self._ok: dict[str, tuple[bytes, str, float]] = {}

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    async def lookup(self, station_id: str) -> tuple[str | None, int] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT password_hash, security_profile FROM charge_point_credentials WHERE station_id = %s",
                (station_id,))
            row = await cur.fetchone()
        return (row[0], row[1]) if row else None

    async def check(self, station_id: str, authorization: str | None) -> tuple[bool, str]:
        """(allowed, reason).  The reason is for the log; the peer only learns 401."""
        creds = await self.lookup(station_id)
        if creds is None:
            return False, "unknown charge point"
        password_hash, profile = creds
        if profile == 0:
            return True, "security profile 0 (no authentication)"
        if not authorization or not authorization.startswith("Basic "):
            return False, "no HTTP Basic credentials"
        try:
            user, _, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, "malformed HTTP Basic credentials"
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
