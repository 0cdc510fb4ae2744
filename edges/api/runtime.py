"""What the account endpoints share: publishing with read-your-writes, receipts, password hashing, rate limits,
and the route class that turns bad input and unavailable infrastructure into 4xx/503 instead of 500.

Read-your-writes (chargeverse/consistency.py): a write publishes its event, takes (partition, offset) from the
broker's acknowledgement and waits, bounded by `AuthConfig.write_wait_seconds`, for the identity projection to
have applied it.  Then the answer is read from the projection, so it reflects the write.  When the wait runs out
the answer is 202 with a `Location` to poll: a receipt `{partition}.{offset}.{event_id}` naming the event.

Per-app state lives on `app.state` and is created on first use (the app's lifespan provides `pg` and `redis`;
`producer` is used when the lifespan provides one, otherwise created here).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from argon2 import PasswordHasher
from fastapi import HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from chargeverse.consistency import applied, wait_applied
from chargeverse.kafka import Delivered, DeliveryError, EventProducer
from chargeverse.passwords import verify_secret
from chargeverse.ratelimit import RateLimiter
from chargeverse.topics import IDENTITY
from edges.api.auth import AuthConfig, auth_config
from edges.api.refresh import Policy, RedisRefreshStore, RefreshTokens

log = logging.getLogger(__name__)
PROJECTION = "pg.identity"
SOURCE = f"api:{socket.gethostname()}"


# ---- errors ----------------------------------------------------------------------------------------------------------
def _unavailable_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    import psycopg_pool
    import redis.exceptions

    return (DeliveryError, psycopg.OperationalError, psycopg_pool.PoolTimeout, redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError)


class GuardedRoute(APIRoute):
    """Bad input -> 422 with the reasons (never echoing the input: passwords, card numbers); a store or the
    broker unavailable -> 503 with Retry-After (nothing was written, or the event is on the log and the
    projection will catch up)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        unavailable = _unavailable_errors()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse({"detail": [_reason(e) for e in exc.errors()]}, status_code=422)
            except unavailable as exc:
                log.warning("%s %s: unavailable: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
                return JSONResponse({"detail": f"temporarily unavailable ({type(exc).__name__}); retry shortly"},
                                    status_code=503, headers={"Retry-After": "1"})

        return guarded


def _reason(e: dict[str, Any]) -> dict[str, Any]:
    msg = str(e.get("msg", "invalid"))
    return {"loc": [str(x) for x in e.get("loc", ())], "msg": msg.removeprefix("Value error, "),
            "type": str(e.get("type", "value_error"))}


# ---- per-app state ---------------------------------------------------------------------------------------------------
def _state(request: Request, name: str, make: Callable[[], Any]) -> Any:
    obj = getattr(request.app.state, name, None)
    if obj is None:
        obj = make()
        setattr(request.app.state, name, obj)
    return obj


def producer(request: Request) -> EventProducer:
    return _state(request, "producer", EventProducer)


def refresh_tokens(request: Request) -> RefreshTokens:
    cfg = auth_config(request)
    return _state(request, "refresh_tokens", lambda: RefreshTokens(
        RedisRefreshStore(request.app.state.redis, cfg.redis_prefix),
        Policy(cfg.refresh_idle_seconds, cfg.refresh_max_seconds)))


def rate_limiter(request: Request) -> RateLimiter:
    cfg = auth_config(request)
    return _state(request, "rate_limiter", lambda: RateLimiter(request.app.state.redis, cfg.redis_prefix))


class Hasher:
    """argon2id hashing off the event loop, at most `concurrency` at once (each holds `memory_kib`)."""

    def __init__(self, cfg: AuthConfig) -> None:
        p = cfg.argon2
        if not p.meets_owasp():
            log.warning("argon2 parameters %s are below OWASP's minimum: acceptable for tests only", p)
        self._hasher = PasswordHasher(time_cost=p.time_cost, memory_cost=p.memory_kib, parallelism=p.parallelism)
        self._gate = asyncio.Semaphore(cfg.hash_concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._gate:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Verify; with no stored hash, spend the same time on a dummy one (no account-existence timing)."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash(uuid.uuid4().hex)
            stored_hash = self._dummy
            async with self._gate:
                await asyncio.to_thread(verify_secret, stored_hash, password)
            return False
        async with self._gate:
            return await asyncio.to_thread(verify_secret, stored_hash, password)


def hasher(request: Request) -> Hasher:
    return _state(request, "password_hasher", lambda: Hasher(auth_config(request)))


# ---- rate limits -----------------------------------------------------------------------------------------------------
def client_ip(request: Request) -> str:
    """The peer address.  Behind a reverse proxy run uvicorn with --proxy-headers and --forwarded-allow-ips so this
    is the client's, not the proxy's (never trust X-Forwarded-For from anyone)."""
    return request.client.host if request.client else "unknown"


async def enforce(request: Request, action: str, account_key: str | None, *, ip: bool = True) -> None:
    """429 with Retry-After unless both the per-IP and the per-account limit of `action` admit the request
    (`ip=False`: the account's limit only, when the IP was charged already)."""
    cfg = auth_config(request)
    limiter = rate_limiter(request)
    checks = []
    if ip and (lim := cfg.limits.get(f"{action}.ip")) is not None:
        checks.append((limiter.key(action, "ip", client_ip(request)), lim))
    if account_key is not None and (lim := cfg.limits.get(f"{action}.account")) is not None:
        checks.append((limiter.key(action, "account", account_key), lim))
    if not checks:
        return
    decision = await limiter.hit(checks)
    if not decision.allowed:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many {action} attempts; retry in {decision.retry_after_header} s",
                            headers={"Retry-After": decision.retry_after_header})


# ---- writes ----------------------------------------------------------------------------------------------------------
def correlation_id(request: Request) -> str:
    rid = request.headers.get("x-request-id", "")
    return rid if re.fullmatch(r"[A-Za-z0-9._-]{8,64}", rid) else uuid.uuid4().hex


@dataclass(frozen=True)
class Written:
    delivered: Delivered
    event_id: str
    applied: bool

    @property
    def receipt(self) -> str:
        return f"{self.delivered.partition}.{self.delivered.offset}.{self.event_id}"


async def publish_and_wait(request: Request, key: str, event_type: str, record: dict[str, Any]) -> Written:
    """Publish one identity event (acks=all) and wait, bounded, until the identity projection has applied it."""
    delivered = await producer(request).publish(IDENTITY.name, key, event_type, record)
    ok = await wait_applied(request.app.state.pg, PROJECTION, delivered,
                            timeout=auth_config(request).write_wait_seconds)
    return Written(delivered, record["event_id"], ok)


_RECEIPT = re.compile(r"^(\d{1,6})\.(\d{1,18})\.([0-9a-f-]{36})$")


def parse_receipt(receipt: str) -> tuple[Delivered, str]:
    m = _RECEIPT.match(receipt)
    if not m:
        raise HTTPException(404, "no such write receipt (expected PARTITION.OFFSET.EVENT_ID)")
    return Delivered(IDENTITY.name, int(m.group(1)), int(m.group(2))), m.group(3)


async def is_applied(request: Request, delivered: Delivered) -> bool:
    async with request.app.state.pg.connection() as conn:
        return await applied(conn, PROJECTION, delivered)


def pending(location: str, written: Written) -> JSONResponse:
    """202: accepted onto the log, not yet visible; poll `location`."""
    return JSONResponse({"status": "pending", "receipt": written.receipt, "poll": location}, status_code=202,
                        headers={"Location": location, "Retry-After": "1"})
