"""The shared verification cache of charger secrets (edges/ocpp/credentials.py): a restarted edge admits a known
charger without argon2, and nothing in the cache outlives a changed secret or lets a wrong secret in.

The Redis client here is an in-memory stand-in with the commands the store uses (the integration tests run
the real one); the argon2 hashes are real."""

from __future__ import annotations

import asyncio
import base64

import pytest

from chargeverse.passwords import hash_machine_secret
from edges.ocpp.credentials import SHARED_CACHE_PREFIX, CredentialStore, cache_key_from

MASTER = "m" * 32
SECRET = "charger-secret-0123456789"


class MemoryRedis:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.ttl: dict[str, int] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def mget(self, keys: list[str]) -> list[str | None]:
        return [self.data.get(k) for k in keys]

    async def set(self, key: str, value: str, ex: int) -> None:
        self.data[key] = value
        self.ttl[key] = ex

    def pipeline(self, transaction: bool = True) -> "Pipeline":
        return Pipeline(self)


class Pipeline:
    def __init__(self, redis: MemoryRedis | "DownRedis") -> None:
        self.redis, self.queued = redis, []

    def set(self, key: str, value: str, ex: int) -> None:
        self.queued.append((key, value, ex))

    async def execute(self) -> list[bool]:
        for key, value, ex in self.queued:
            await self.redis.set(key, value, ex=ex)
        return [True] * len(self.queued)


class DownRedis:
    async def get(self, key: str) -> str | None:
        raise ConnectionError("redis is down")

    async def mget(self, keys: list[str]) -> list[str | None]:
        raise ConnectionError("redis is down")

    async def set(self, key: str, value: str, ex: int) -> None:
        raise ConnectionError("redis is down")

    def pipeline(self, transaction: bool = True) -> Pipeline:
        return Pipeline(self)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def store(redis: object, master: str = MASTER) -> CredentialStore:
    return CredentialStore(dsn="postgresql://unused", redis=redis, cache_key=cache_key_from(master))


@pytest.fixture(scope="module")
def stored_hash() -> str:
    return hash_machine_secret(SECRET)


def check(s: CredentialStore, stored: str | None, auth: str, cp: str = "CP1") -> tuple[bool, str]:
    return asyncio.run(s._check_secret(cp, stored, auth))


def test_a_restarted_edge_admits_a_known_charger_from_the_shared_cache_without_argon2(stored_hash: str) -> None:
    redis = MemoryRedis()
    first = store(redis)
    assert check(first, stored_hash, basic("CP1", SECRET)) == (True, "ok")
    assert first.stats == {"memory": 0, "shared": 0, "argon2": 1}
    assert redis.ttl[SHARED_CACHE_PREFIX + "CP1"] == 86_400
    assert SECRET not in redis.data[SHARED_CACHE_PREFIX + "CP1"]  # an HMAC tag, never the secret
    restarted = store(redis)
    assert check(restarted, stored_hash, basic("CP1", SECRET)) == (True, "ok (shared cache)")
    assert check(restarted, stored_hash, basic("CP1", SECRET)) == (True, "ok (cached)")
    assert restarted.stats == {"memory": 1, "shared": 1, "argon2": 0}


def test_a_wrong_secret_is_refused_and_never_cached(stored_hash: str) -> None:
    redis = MemoryRedis()
    s = store(redis)
    assert check(s, stored_hash, basic("CP1", "not-the-secret-000000")) == (False, "wrong secret")
    assert redis.data == {}
    check(s, stored_hash, basic("CP1", SECRET))
    # a cached success for the right secret does not admit a wrong one
    assert check(store(redis), stored_hash, basic("CP1", "not-the-secret-000000")) == (False, "wrong secret")


def test_a_new_secret_revokes_the_old_one_at_once_even_if_it_is_still_cached(stored_hash: str) -> None:
    redis = MemoryRedis()
    s = store(redis)
    check(s, stored_hash, basic("CP1", SECRET))
    rotated = hash_machine_secret("the-new-secret-98765432")
    assert check(s, rotated, basic("CP1", SECRET)) == (False, "wrong secret")
    assert check(store(redis), rotated, basic("CP1", SECRET)) == (False, "wrong secret")
    assert check(s, rotated, basic("CP1", "the-new-secret-98765432")) == (True, "ok")


def test_a_tag_is_bound_to_its_charger_and_to_the_master_secret(stored_hash: str) -> None:
    redis = MemoryRedis()
    check(store(redis), stored_hash, basic("CP1", SECRET))
    redis.data[SHARED_CACHE_PREFIX + "CP2"] = redis.data[SHARED_CACHE_PREFIX + "CP1"]  # copied to another charger
    other = store(redis)
    assert check(other, stored_hash, basic("CP2", SECRET), cp="CP2") == (True, "ok")
    assert other.stats["argon2"] == 1  # the copied tag did not count
    foreign = store(redis, master="another-master-secret-xyz")
    assert check(foreign, stored_hash, basic("CP1", SECRET))[0] is True
    assert foreign.stats == {"memory": 0, "shared": 0, "argon2": 1}


def test_without_a_master_secret_or_with_redis_down_only_argon2_and_memory_decide(stored_hash: str) -> None:
    assert cache_key_from("") is None and cache_key_from("short") is None
    redis = MemoryRedis()
    s = store(redis, master="")
    assert check(s, stored_hash, basic("CP1", SECRET)) == (True, "ok") and redis.data == {}
    down = store(DownRedis())
    assert check(down, stored_hash, basic("CP1", SECRET)) == (True, "ok")
    assert check(down, stored_hash, basic("CP1", "not-the-secret-000000")) == (False, "wrong secret")


def test_malformed_or_foreign_credentials_are_refused_before_any_hashing(stored_hash: str) -> None:
    s = store(MemoryRedis())
    assert check(s, stored_hash, "Bearer abc") == (False, "no or malformed HTTP Basic credentials")
    assert check(s, stored_hash, basic("CP9", SECRET)) == (False, "username is not the charge point id")
    assert check(s, None, basic("CP1", SECRET)) == (False, "no secret set for this charge point")
    assert s.stats == {"memory": 0, "shared": 0, "argon2": 0}
