"""Rotating refresh tokens with reuse detection, kept server-side in Redis.

A login starts a *family*; every refresh consumes the family's current token and hands out its successor.  A
token presented again after it was consumed means two parties hold the family (a stolen token, or a client
replaying an old one), so the whole family is revoked: the thief and the victim are both signed out, and the
victim's next login starts a clean family (OAuth 2.0 Security BCP, refresh token rotation).  Logout revokes one
family (or all of an account's); a password change revokes all of the account's families.

Why Redis, with TTLs, and not the log: refresh tokens are ephemeral security state, not business state.  Nothing
downstream needs them, replaying them would resurrect sessions, and their whole value is being revocable at once
on every API instance.  DESIGN.md §4 says "everything in Redis is rebuildable from the log": this state is the
exception that proves it harmless — losing it signs everyone out (they log in again) and can never grant access.

Stored (prefix `{p}`, default `cv:auth`):
- `{p}:rt:{sha256(token)}`  hash {family, account_id, state: current|consumed, issued_at} — TTL: the family's rest
  of life, so a consumed token is remembered (for reuse detection) as long as its family can exist;
- `{p}:rf:{family}`         hash {account_id, current: sha256 of the current token, status: active|revoked,
  created_at, reason} — TTL: the family's absolute lifetime (30 days by default);
- `{p}:racct:{account_id}`  set of the account's families (for "revoke all").
Only SHA-256 digests of tokens are stored: a Redis dump holds nothing that can be presented.  Tokens are 256-bit
random, so a fast hash is enough (no guessing to slow down).

Invariants: a family has exactly one current token; a token is consumed at most once (the rotation is an atomic
read-decide-write: Redis WATCH/MULTI, retried on conflict); of two concurrent refreshes with one token one wins
and the other is treated as reuse; a revoked family never becomes active again.  The decision logic is the pure
`decide()`, shared by the Redis store and the in-memory store of the unit tests.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol

TOKEN_PREFIX = "rt_"


class Outcome(str, Enum):
    ROTATED = "rotated"
    #: never issued, or forgotten (its family expired)
    UNKNOWN = "unknown"
    #: the family was revoked (logout, password change, earlier reuse)
    REVOKED = "revoked"
    #: a consumed token was presented again: the family is revoked now
    REUSED = "reused"
    #: idle too long, or the family outlived its absolute lifetime
    EXPIRED = "expired"


@dataclass(frozen=True)
class TokenRecord:
    family: str
    account_id: str
    state: str  # "current" | "consumed"
    issued_at: int


@dataclass(frozen=True)
class FamilyRecord:
    account_id: str
    current: str  # digest of the current token
    status: str  # "active" | "revoked"
    created_at: int
    reason: str = ""


@dataclass(frozen=True)
class Policy:
    #: a refresh token unused this long expires (each rotation starts a new one)
    idle_seconds: int = 14 * 86400
    #: a family (a login) ends this long after the login, however often it is refreshed
    max_seconds: int = 30 * 86400


@dataclass(frozen=True)
class Writes:
    """What one decision changes: token records, family records (with their TTLs)."""

    tokens: tuple[tuple[str, TokenRecord, int], ...] = ()
    families: tuple[tuple[str, FamilyRecord, int], ...] = ()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def decide(presented: str, token: TokenRecord | None, family: FamilyRecord | None, now: int, policy: Policy,
           successor: str) -> tuple[Outcome, Writes]:
    """The pure refresh step: what presenting the token with digest `presented` means, and what to write.

    `successor` is the digest of the token that would replace it."""
    if token is None or family is None:
        return Outcome.UNKNOWN, Writes()
    rest = family.created_at + policy.max_seconds - now
    if family.status == "revoked":
        return Outcome.REVOKED, Writes()
    if rest <= 0:
        return Outcome.EXPIRED, Writes()
    if token.state != "current" or family.current != presented:
        revoked = replace(family, status="revoked", reason="refresh token reuse")
        return Outcome.REUSED, Writes(families=((token.family, revoked, rest),))
    if now - token.issued_at > policy.idle_seconds:
        return Outcome.EXPIRED, Writes()
    consumed = replace(token, state="consumed")
    fresh = TokenRecord(token.family, token.account_id, "current", now)
    return Outcome.ROTATED, Writes(
        tokens=((presented, consumed, rest), (successor, fresh, rest)),
        families=((token.family, replace(family, current=successor), rest),))


@dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    account_id: str | None = None
    family: str | None = None
    #: the successor token (only when ROTATED)
    token: str | None = None


class RefreshStore(Protocol):
    """Where families live.  `transact` must run read-decide-write atomically per token."""

    async def peek(self, token_digest: str) -> TokenRecord | None: ...

    async def transact(self, token_digest: str, step: Any) -> Outcome: ...

    async def create(self, family: str, record: FamilyRecord, token_digest: str, token: TokenRecord,
                     ttl: int) -> None: ...

    async def revoke(self, family: str, reason: str) -> bool: ...

    async def families_of(self, account_id: str) -> list[str]: ...


class RefreshTokens:
    """The refresh-token service over a store."""

    def __init__(self, store: RefreshStore, policy: Policy | None = None) -> None:
        self.store = store
        self.policy = policy or Policy()

    async def start(self, account_id: str, now: int) -> tuple[str, str]:
        """A new family for a login: (family id, its first token)."""
        family = uuid.uuid4().hex
        token = new_token()
        d = digest(token)
        await self.store.create(family, FamilyRecord(account_id, d, "active", now), d,
                                TokenRecord(family, account_id, "current", now), self.policy.max_seconds)
        return family, token

    async def account_of(self, token: str) -> str | None:
        """Whose token this is (unverified: for per-account rate limits before the rotation)."""
        rec = await self.store.peek(digest(token))
        return None if rec is None else rec.account_id

    async def rotate(self, token: str, now: int) -> Rotation:
        presented = digest(token)
        successor = new_token()
        seen: dict[str, Any] = {}

        def step(rec: TokenRecord | None, fam: FamilyRecord | None) -> tuple[Outcome, Writes]:
            seen["rec"] = rec
            return decide(presented, rec, fam, now, self.policy, digest(successor))

        outcome = await self.store.transact(presented, step)
        rec = seen.get("rec")
        if outcome is Outcome.ROTATED:
            return Rotation(outcome, rec.account_id, rec.family, successor)
        return Rotation(outcome, rec.account_id if rec else None, rec.family if rec else None)

    async def logout(self, token: str, everywhere: bool = False) -> bool:
        """Revoke the family of `token`; with `everywhere`, every family of its account — but only for the
        family's current token of a live family (a stale token must not sign everyone out).  True when a live
        family was ended."""
        rec = await self.store.peek(digest(token))
        if rec is None:
            return False
        live = await self.store.revoke(rec.family, "logout")
        if live and everywhere and rec.state == "current":
            await self.revoke_account(rec.account_id, "logout everywhere")
        return live

    async def revoke_account(self, account_id: str, reason: str) -> int:
        """Revoke every family of the account (password change, sign out everywhere); how many were active."""
        n = 0
        for fam in await self.store.families_of(account_id):
            n += await self.store.revoke(fam, reason)
        return n


# ---- stores ----------------------------------------------------------------------------------------------------------
class MemoryRefreshStore:
    """A single-process store (unit tests of the pure logic; never in production)."""

    def __init__(self) -> None:
        self.tokens: dict[str, TokenRecord] = {}
        self.families: dict[str, FamilyRecord] = {}
        self.by_account: dict[str, set[str]] = {}

    async def peek(self, token_digest: str) -> TokenRecord | None:
        return self.tokens.get(token_digest)

    async def transact(self, token_digest: str, step: Any) -> Outcome:
        rec = self.tokens.get(token_digest)
        fam = self.families.get(rec.family) if rec else None
        outcome, writes = step(rec, fam)
        for d, t, _ in writes.tokens:
            self.tokens[d] = t
        for f, fr, _ in writes.families:
            self.families[f] = fr
        return outcome

    async def create(self, family: str, record: FamilyRecord, token_digest: str, token: TokenRecord,
                     ttl: int) -> None:
        self.families[family] = record
        self.tokens[token_digest] = token
        self.by_account.setdefault(record.account_id, set()).add(family)

    async def revoke(self, family: str, reason: str) -> bool:
        fam = self.families.get(family)
        if fam is None or fam.status == "revoked":
            return False
        self.families[family] = replace(fam, status="revoked", reason=reason)
        return True

    async def families_of(self, account_id: str) -> list[str]:
        return sorted(self.by_account.get(account_id, ()))


class RedisRefreshStore:
    """Families in Redis (asyncio client with decode_responses=True)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _t(self, d: str) -> str:
        return f"{self.prefix}:rt:{d}"

    def _f(self, family: str) -> str:
        return f"{self.prefix}:rf:{family}"

    def _a(self, account_id: str) -> str:
        return f"{self.prefix}:racct:{account_id}"

    @staticmethod
    def _token(h: dict[str, str]) -> TokenRecord | None:
        if not h:
            return None
        return TokenRecord(h["family"], h["account_id"], h["state"], int(h["issued_at"]))

    @staticmethod
    def _family(h: dict[str, str]) -> FamilyRecord | None:
        if not h:
            return None
        return FamilyRecord(h["account_id"], h["current"], h["status"], int(h["created_at"]), h.get("reason", ""))

    async def peek(self, token_digest: str) -> TokenRecord | None:
        return self._token(await self.redis.hgetall(self._t(token_digest)))

    async def transact(self, token_digest: str, step: Any) -> Outcome:
        from redis.exceptions import WatchError

        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._t(token_digest))
                    rec = self._token(await pipe.hgetall(self._t(token_digest)))
                    fam = None
                    if rec is not None:
                        await pipe.watch(self._f(rec.family))
                        fam = self._family(await pipe.hgetall(self._f(rec.family)))
                    outcome, writes = step(rec, fam)
                    pipe.multi()
                    for d, t, ttl in writes.tokens:
                        pipe.hset(self._t(d), mapping={"family": t.family, "account_id": t.account_id,
                                                       "state": t.state, "issued_at": t.issued_at})
                        pipe.expire(self._t(d), max(ttl, 1))
                    for f, fr, ttl in writes.families:
                        pipe.hset(self._f(f), mapping={"account_id": fr.account_id, "current": fr.current,
                                                       "status": fr.status, "created_at": fr.created_at,
                                                       "reason": fr.reason})
                        pipe.expire(self._f(f), max(ttl, 1))
                    await pipe.execute()
                    return outcome
                except WatchError:
                    continue

    async def create(self, family: str, record: FamilyRecord, token_digest: str, token: TokenRecord,
                     ttl: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._f(family), mapping={"account_id": record.account_id, "current": record.current,
                                                "status": record.status, "created_at": record.created_at,
                                                "reason": record.reason})
            pipe.expire(self._f(family), ttl)
            pipe.hset(self._t(token_digest), mapping={"family": token.family, "account_id": token.account_id,
                                                      "state": token.state, "issued_at": token.issued_at})
            pipe.expire(self._t(token_digest), ttl)
            pipe.sadd(self._a(record.account_id), family)
            pipe.expire(self._a(record.account_id), ttl)
            await pipe.execute()

    async def revoke(self, family: str, reason: str) -> bool:
        from redis.exceptions import WatchError

        key = self._f(family)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    status = await pipe.hget(key, "status")
                    if status is None or status == "revoked":
                        await pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(key, mapping={"status": "revoked", "reason": reason})  # HSET keeps the TTL
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def families_of(self, account_id: str) -> list[str]:
        return sorted(await self.redis.smembers(self._a(account_id)))
