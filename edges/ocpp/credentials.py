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
  revokes the old one at once;
- that memory is also shared through Redis (`cv:ocpp:authok:{id}`, 24 h), as an HMAC tag of (charger, stored
  hash, secret) under a key derived from the process master secret (`CV_JWT_SECRET`).  A restarted edge, or
  another instance a charger fails over to, then admits a known charger without argon2: the cold cost (~3 ms of
  CPU per charger) is paid once per secret per day, not once per reconnect.  The tag is useless without the
  master secret, and it names the stored hash, so a changed secret or a revocation (checked in Postgres first,
  on every handshake) takes effect at once;
- the registration is read from Postgres on every handshake (and again at every BootNotification), never from a
  cache: concurrent reads share one statement (edges/ocpp/coalesce.py), which only ever answers reads asked
  before it started, so revocation stays immediate;
- argon2 runs on its own small thread pool (cores - 1 threads), so a cold storm's verifications never take the
  core the event loop needs to keep serving connected chargers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from psycopg_pool import AsyncConnectionPool

from chargeverse.passwords import verify_secret
from edges.ocpp.coalesce import Coalescer
from edges.ocpp.tls import Transport

CACHE_SECONDS = 300.0
SHARED_CACHE_SECONDS = 86_400
SHARED_CACHE_PREFIX = "cv:ocpp:authok:"
log = logging.getLogger("edges.ocpp.credentials")


def cache_key_from(master_secret: str) -> bytes | None:
    """The HMAC key of the shared verification cache, derived from the master secret (None: no shared cache)."""
    if len(master_secret) < 16:
        return None
    return hmac.new(master_secret.encode(), b"chargeverse/ocpp-auth-cache/v1", hashlib.sha256).digest()


def verification_tag(key: bytes, station_id: str, password_hash: str, secret: str) -> str:
    """What the shared cache holds for one verified (charger, stored hash, secret)."""
    msg = b"\0".join((station_id.encode(), password_hash.encode(), secret.encode()))
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


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
    def __init__(self, dsn: str | None = None, pool: AsyncConnectionPool | None = None, *,
                 redis: Any = None, cache_key: bytes | None = None) -> None:
        """`redis` (a redis.asyncio client) and `cache_key` (cache_key_from(master secret)): the shared
        verification cache; without both, only this process remembers verified secrets."""
        if pool is None:
            if dsn is None:
                raise ValueError("a DSN or a pool")
            pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
        self.pool = pool
        #: registration reads of concurrent handshakes and boots, batched (at most 2 statements at a time, so the
        #: pool keeps connections for the id-token lookups)
        self._reads: Coalescer[str, Registration] = Coalescer(self._fetch, max_batch=500, max_inflight=2)
        self.redis = redis if cache_key else None
        #: shared-cache reads and writes of concurrent cold handshakes, batched into one MGET / one pipeline
        self._tags: Coalescer[str, Any] = Coalescer(self._fetch_tags, max_batch=500, max_inflight=2)
        self._tag_writes: Coalescer[str, bool] = Coalescer(self._write_tags, max_batch=500, max_inflight=2)
        self._tags_to_write: dict[str, str] = {}
        self.cache_key = cache_key
        #: station -> (SHA-256 of the secret, the stored hash it verified against, expiry)
        self._ok: dict[str, tuple[bytes, str, float]] = {}
        self._argon2 = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                          thread_name_prefix="argon2")
        #: verifications by where the answer came from: memory, shared (Redis), argon2
        self.stats = {"memory": 0, "shared": 0, "argon2": 0}

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()
        self._argon2.shutdown(wait=False)

    async def lookup(self, station_id: str) -> Registration | None:
        """The charger's registration as the projection has it now: read by a statement that starts after this
        call (concurrent lookups share one statement, edges/ocpp/coalesce.py)."""
        return await self._reads.get(station_id)

    async def _fetch(self, station_ids: Sequence[str]) -> dict[str, Registration]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.station_id, c.password_hash, c.security_profile, c.revoked, c.registration_status, "
                "s.vendor, s.model FROM charge_point_credentials c LEFT JOIN stations s ON s.station_id = "
                "c.station_id WHERE c.station_id = ANY(%s)", (list(station_ids),))
            rows = await cur.fetchall()
        return {row[0]: Registration(*row[1:]) for row in rows}

    async def _fetch_tags(self, keys: Sequence[str]) -> dict[str, Any]:
        return dict(zip(keys, await self.redis.mget(list(keys))))

    async def _write_tags(self, keys: Sequence[str]) -> dict[str, bool]:
        tags = {k: self._tags_to_write.pop(k) for k in keys if k in self._tags_to_write}
        pipe = self.redis.pipeline(transaction=False)
        for k, tag in tags.items():
            pipe.set(k, tag, ex=SHARED_CACHE_SECONDS)
        await pipe.execute()
        return {k: True for k in keys}

    def batching(self) -> str:
        """How well concurrent reads were batched (for the edge's log at stop and the bench)."""
        return ", ".join(f"{name}: {c.keys} in {c.fetches} round trips" for name, c in
                         (("registrations", self._reads), ("shared cache", self._tags),
                          ("shared cache writes", self._tag_writes)))

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
            self.stats["memory"] += 1
            return True, "ok (cached)"
        tag = verification_tag(self.cache_key, station_id, password_hash, secret) if self.cache_key else None
        if self.redis is not None and tag is not None:
            try:
                shared = await self._tags.get(SHARED_CACHE_PREFIX + station_id)
            except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: fall back to argon2
                log.warning("shared verification cache unavailable: %s", type(exc).__name__)
                shared = None
            if isinstance(shared, bytes):
                shared = shared.decode()
            if shared is not None and hmac.compare_digest(shared, tag):
                self._ok[station_id] = (digest, password_hash, time.monotonic() + CACHE_SECONDS)
                self.stats["shared"] += 1
                return True, "ok (shared cache)"
        self.stats["argon2"] += 1
        ok = await asyncio.get_running_loop().run_in_executor(self._argon2, verify_secret, password_hash, secret)
        if not ok:
            return False, "wrong secret"
        self._ok[station_id] = (digest, password_hash, time.monotonic() + CACHE_SECONDS)
        if self.redis is not None and tag is not None:
            try:
                self._tags_to_write[SHARED_CACHE_PREFIX + station_id] = tag
                await self._tag_writes.get(SHARED_CACHE_PREFIX + station_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("shared verification cache not written: %s", type(exc).__name__)
        return True, "ok"
