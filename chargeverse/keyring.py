"""JWT signing keys with ids (`kid`), rotated without a restart and without ever storing key material.

Why this shape:
- **Key material is derived, never stored.**  Each signing key is HMAC-SHA256(master, "chargeverse/jwt/v1/" + kid),
  where the master is the process secret `CV_JWT_SECRET` (settings).  The only shared state is the list of kids and
  when each retires, kept in Redis under `{prefix}:jwt-keys` (one JSON value).  A Redis dump therefore contains
  nothing that can sign a token, and every API instance derives the same key for a kid.
- **Rotation is a Redis write** (`POST /api/admin/jwt-keys/rotate` or `rotate_sync` for a CLI): a new random kid
  becomes current; the previous current keeps verifying until `retire_at` (rotation time + a grace of at least the
  longest access-token lifetime), so tokens issued just before a rotation stay valid until they expire.
  `retire_previous=True` retires every older key at once (a suspected leak: every outstanding token dies).
- **Loss of the Redis value is safe.**  The next reader creates a fresh keyring with a new random kid (SET NX), so
  every outstanding access token stops verifying (people sign in again; refresh tokens live in Redis too) and no
  retired kid is ever resurrected.  That is why a keyring may live in Redis although "everything in Redis is
  rebuildable from the log": it is security state, not business state, and losing it only costs a sign-in.
- **Rotating the master** itself needs a deployment (it is the root of trust); rotating kids protects against a
  leaked derived key and bounds how much any one key signs.

Invariants: `Keyring.state.keys[0]` is the current key and never has a `retire_at`; a key past its `retire_at` is
never returned for verification; the state transitions (`initial`, `rotate`) are pure and unit-tested.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

#: how long a kid unknown to a cached keyring triggers at most one reload (a flood of random kids costs one GET/s)
_UNKNOWN_KID_RELOAD_SECONDS = 1.0
_DERIVATION_LABEL = b"chargeverse/jwt/v1/"
_MIN_MASTER_LENGTH = 16


class KeyringError(ValueError):
    """The keyring cannot sign or verify (no master secret, corrupt stored state)."""


@dataclass(frozen=True)
class KeyEntry:
    kid: str
    created_at: int
    #: unix seconds after which the key no longer verifies; None for the current key
    retire_at: int | None = None

    def usable(self, now: float) -> bool:
        return self.retire_at is None or now < self.retire_at


@dataclass(frozen=True)
class KeyringState:
    """The kids, newest first; keys[0] signs."""

    keys: tuple[KeyEntry, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")
        if self.keys[0].retire_at is not None:
            raise KeyringError("the current key cannot have a retirement time")
        if len({k.kid for k in self.keys}) != len(self.keys):
            raise KeyringError("duplicate kid in keyring")

    @property
    def current(self) -> KeyEntry:
        return self.keys[0]

    def entry(self, kid: str, now: float) -> KeyEntry | None:
        """The entry of `kid` if it still verifies at `now`."""
        for k in self.keys:
            if k.kid == kid:
                return k if k.usable(now) else None
        return None

    def to_json(self) -> str:
        return json.dumps({"keys": [{"kid": k.kid, "created_at": k.created_at, "retire_at": k.retire_at}
                                    for k in self.keys]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "KeyringState":
        try:
            raw = json.loads(text)
            return cls(tuple(KeyEntry(str(k["kid"]), int(k["created_at"]),
                                      None if k.get("retire_at") is None else int(k["retire_at"]))
                             for k in raw["keys"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"stored keyring is corrupt: {exc}") from exc

    def describe(self, now: float) -> list[dict[str, Any]]:
        """Public view (no key material): kid, created, retires, whether it signs / still verifies."""
        return [{"kid": k.kid, "created_at": k.created_at, "retire_at": k.retire_at, "current": i == 0,
                 "verifies": k.usable(now)} for i, k in enumerate(self.keys)]


def new_kid() -> str:
    return "k" + secrets.token_hex(8)


def initial(now: int, kid: str | None = None) -> KeyringState:
    return KeyringState((KeyEntry(kid or new_kid(), now),))


def rotate(state: KeyringState, now: int, grace_seconds: int, *, retire_previous: bool = False,
           kid: str | None = None) -> KeyringState:
    """A new current key; the old current verifies for `grace_seconds` more (or retires now); retired keys are
    dropped.  An older key keeps its own (earlier) retirement time: rotating twice never extends a key's life."""
    if grace_seconds < 0:
        raise KeyringError("grace_seconds must be >= 0")
    fresh = KeyEntry(kid or new_kid(), now)
    if any(k.kid == fresh.kid for k in state.keys):
        raise KeyringError(f"kid {fresh.kid} already in the keyring")
    until = now if retire_previous else now + grace_seconds
    older = []
    for k in state.keys:
        retire_at = until if k.retire_at is None else min(k.retire_at, until)
        if retire_at > now:
            older.append(replace(k, retire_at=retire_at))
    return KeyringState((fresh, *older))


def master_bytes(master: str) -> bytes:
    if len(master) < _MIN_MASTER_LENGTH:
        raise KeyringError("CV_JWT_SECRET is not set (or shorter than 16 characters); refusing to sign or verify")
    return master.encode()


def derive_key(master: bytes, kid: str) -> bytes:
    """The HS256 key of `kid`: 32 bytes, a pure function of the master secret and the kid."""
    return hmac.new(master, _DERIVATION_LABEL + kid.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Keyring:
    """A keyring state with the master secret: what signing and verification need."""

    state: KeyringState
    master: bytes

    @classmethod
    def of(cls, state: KeyringState, master: str) -> "Keyring":
        return cls(state, master_bytes(master))

    def signing(self) -> tuple[str, bytes]:
        kid = self.state.current.kid
        return kid, derive_key(self.master, kid)

    def verification_key(self, kid: str, now: float | None = None) -> bytes | None:
        entry = self.state.entry(kid, time.time() if now is None else now)
        return None if entry is None else derive_key(self.master, entry.kid)


def redis_key(prefix: str) -> str:
    return f"{prefix}:jwt-keys"


# ---- Redis, blocking (CLIs, tokens.issue() without a keyring) ---------------------------------------------------
def load_sync(redis_url: str, prefix: str, master: str) -> Keyring:
    """The stored keyring, created (atomically, SET NX) when there is none."""
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        raw = r.get(redis_key(prefix))
        if raw is None:
            r.set(redis_key(prefix), initial(int(time.time())).to_json(), nx=True)
            raw = r.get(redis_key(prefix))
        return Keyring.of(KeyringState.from_json(raw), master)
    finally:
        r.close()


def rotate_sync(redis_url: str, prefix: str, master: str, grace_seconds: int,
                retire_previous: bool = False) -> KeyringState:
    """Rotate the stored keyring (optimistic transaction: concurrent rotations never lose one)."""
    import redis

    master_bytes(master)  # refuse before changing anything
    r = redis.Redis.from_url(redis_url)
    key = redis_key(prefix)
    try:
        with r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    now = int(time.time())
                    state = KeyringState.from_json(raw) if raw is not None else initial(now)
                    new = rotate(state, now, grace_seconds, retire_previous=retire_previous)
                    pipe.multi()
                    pipe.set(key, new.to_json())
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue
    finally:
        r.close()


# ---- Redis, async (the API) ---------------------------------------------------------------------------------------
class KeyringStore:
    """The keyring in Redis for an asyncio process, with a short cache.

    Signing uses the cached current key (at most `cache_seconds` stale: the previous key still verifies, so that is
    harmless); a token carrying a kid the cache does not know triggers one reload (at most once a second)."""

    def __init__(self, redis: Any, prefix: str, master: str, cache_seconds: float = 5.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.master = master_bytes(master)
        self.cache_seconds = cache_seconds
        self._cached: Keyring | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def _load(self) -> Keyring:
        key = redis_key(self.prefix)
        raw = await self.redis.get(key)
        if raw is None:
            await self.redis.set(key, initial(int(time.time())).to_json(), nx=True)
            raw = await self.redis.get(key)
        ring = Keyring(KeyringState.from_json(raw), self.master)
        self._cached, self._loaded_at = ring, time.monotonic()
        return ring

    async def get(self) -> Keyring:
        if self._cached is None or time.monotonic() - self._loaded_at > self.cache_seconds:
            async with self._lock:
                if self._cached is None or time.monotonic() - self._loaded_at > self.cache_seconds:
                    return await self._load()
        assert self._cached is not None
        return self._cached

    async def for_kid(self, kid: str) -> Keyring:
        """A keyring that knows `kid` if the stored one does (reloading once when the cache does not)."""
        ring = await self.get()
        if any(k.kid == kid for k in ring.state.keys):
            return ring
        if time.monotonic() - self._loaded_at < _UNKNOWN_KID_RELOAD_SECONDS:
            return ring
        async with self._lock:
            return await self._load()

    async def rotate(self, grace_seconds: int, retire_previous: bool = False) -> KeyringState:
        from redis.exceptions import WatchError

        key = redis_key(self.prefix)
        async with self.redis.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    now = int(time.time())
                    state = KeyringState.from_json(raw) if raw is not None else initial(now)
                    new = rotate(state, now, grace_seconds, retire_previous=retire_previous)
                    pipe.multi()
                    pipe.set(key, new.to_json())
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._cached, self._loaded_at = Keyring(new, self.master), time.monotonic()
        return new
