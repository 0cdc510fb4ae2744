"""Authentication and authorisation for the app API: a Bearer JWT verified by its `kid`, and per-endpoint roles.

Every endpoint declares who may call it: `Depends(require(*roles))`, or `Depends(public(why))` for the few that
authenticate otherwise (login and refresh take credentials in the body).  `declared_access(route)` reads the
declaration back, so a test can prove that no route lacks one and that every role outside it is refused.

The signing keyring is read from Redis (chargeverse/keyring.py) and cached per app; its place (the Redis prefix),
the token lifetimes and the other auth knobs are one `AuthConfig` per app (`app.state.auth_config`, built from
settings unless a test sets it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from chargeverse.keyring import KeyringError, KeyringStore
from chargeverse.ratelimit import Limit
from chargeverse.settings import Settings, get_settings
from chargeverse.tokens import ROLES, TokenError, auth_prefix, unverified_kid, verify

_bearer = HTTPBearer(auto_error=False, description="JWT access token (POST /api/auth/login, or `cv token issue`)")
#: the Bearer credentials of a request, or None (what `principal` receives); edges/api/stations.py calls it
#: directly on its plain search path
bearer = _bearer

#: rate limits per action and scope (ip / account): COUNT/SECONDS
DEFAULT_LIMITS: dict[str, str] = {
    "login.ip": "20/60", "login.account": "10/900",
    "register.ip": "10/3600", "register.account": "3/3600",
    "refresh.ip": "60/60", "refresh.account": "30/60",
    "password.ip": "10/3600", "password.account": "5/900",
}


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost.  Default: RFC 9106's low-memory profile (m=64 MiB, t=3, p=4), above OWASP's argon2id
    minimum (m=19 MiB, t=2, p=1).  Lower only for tests (CV_ARGON2_*)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def meets_owasp(self) -> bool:
        # OWASP Password Storage Cheat Sheet equivalents: m=19 MiB/t=2, m=12 MiB/t=3, m=9 MiB/t=4, m=7 MiB/t=5
        floor = {1: 47104, 2: 19456, 3: 12288, 4: 9216}
        return self.memory_kib >= floor.get(self.time_cost, 7168)


@dataclass(frozen=True)
class AuthConfig:
    access_ttl_seconds: int = 900
    #: how long a rotated-out signing key still verifies (>= the longest access-token lifetime in use)
    previous_key_seconds: int = 12 * 3600
    refresh_idle_seconds: int = 14 * 86400
    refresh_max_seconds: int = 30 * 86400
    argon2: Argon2Params = field(default_factory=Argon2Params)
    #: how many argon2 computations run at once per process (each holds `memory_kib`)
    hash_concurrency: int = 4
    redis_prefix: str = "cv:auth"
    #: how long a write waits for its projection before answering 202 + Location
    write_wait_seconds: float = 5.0
    limits: dict[str, Limit] = field(default_factory=lambda: {k: Limit.parse(v) for k, v in DEFAULT_LIMITS.items()})
    #: eMAID country and provider of the contracts this platform issues
    contract_country: str = "NL"
    contract_provider: str = "CVE"
    keyring_cache_seconds: float = 5.0

    @classmethod
    def from_settings(cls, s: Settings) -> "AuthConfig":
        """Built from settings; fields the settings do not (yet) have keep their defaults."""
        g = lambda name, default: getattr(s, name, default)  # noqa: E731
        limits = dict(DEFAULT_LIMITS)
        for part in str(g("rate_limits", "") or "").replace(",", ";").split(";"):
            if part.strip():
                name, _, value = part.partition("=")
                limits[name.strip()] = value.strip()
        d = cls()
        return cls(
            access_ttl_seconds=int(g("jwt_access_ttl_seconds", d.access_ttl_seconds)),
            previous_key_seconds=int(g("jwt_previous_key_seconds", d.previous_key_seconds)),
            refresh_idle_seconds=int(g("refresh_idle_seconds", d.refresh_idle_seconds)),
            refresh_max_seconds=int(g("refresh_max_seconds", d.refresh_max_seconds)),
            argon2=Argon2Params(int(g("argon2_time_cost", 3)), int(g("argon2_memory_kib", 64 * 1024)),
                                int(g("argon2_parallelism", 4))),
            hash_concurrency=int(g("argon2_concurrency", d.hash_concurrency)),
            redis_prefix=auth_prefix(s),
            write_wait_seconds=float(g("api_write_wait_seconds", d.write_wait_seconds)),
            limits={k: Limit.parse(v) for k, v in limits.items()},
            contract_country=str(g("emsp_country_code", d.contract_country)),
            contract_provider=str(g("emsp_party_id", d.contract_provider)),
        )


def auth_config(request: Request) -> AuthConfig:
    state = request.app.state
    cfg = getattr(state, "auth_config", None)
    if cfg is None:
        cfg = state.auth_config = AuthConfig.from_settings(get_settings())
    return cfg


def keyring_store(request: Request) -> KeyringStore:
    """The app's keyring (created on first use over the app's Redis client)."""
    state = request.app.state
    store = getattr(state, "keyring", None)
    if store is None:
        cfg = auth_config(request)
        try:
            store = KeyringStore(state.redis, cfg.redis_prefix, get_settings().jwt_secret.get_secret_value(),
                                 cfg.keyring_cache_seconds)
        except KeyringError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"authentication unavailable: {exc}") from exc
        state.keyring = store
    return store


@dataclass(frozen=True)
class _Verified:
    claims: dict[str, Any]
    kid: str
    exp: int
    issuer: str


class VerifiedTokens:
    """Access tokens this process has verified, with their claims: a bounded LRU keyed by the token string.

    Why it is safe: an access token is stateless (nothing revokes it before `exp`; logout and password changes
    revoke refresh tokens, edges/api/refresh.py), so a token whose signature and claims verified once stays valid
    until it expires or the key that signed it retires.  A hit is therefore re-checked against both on every
    use: `exp` against the clock and the kid against the keyring (the same cached keyring a full verification
    reads, so a rotation that retires keys takes effect exactly as before), and the issuer it was checked
    against must still be the configured one.  Only successes are kept; the signature (HMAC) and the JSON/base64
    decoding are what a hit saves."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[str, _Verified] = OrderedDict()

    def get(self, token: str) -> _Verified | None:
        hit = self._items.get(token)
        if hit is not None:
            self._items.move_to_end(token)
        return hit

    def put(self, token: str, verified: _Verified) -> None:
        self._items[token] = verified
        self._items.move_to_end(token)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def forget(self, token: str) -> None:
        self._items.pop(token, None)

    def __len__(self) -> int:
        return len(self._items)


def verified_tokens(request: Request) -> VerifiedTokens:
    """The app's cache of verified access tokens (created on first use)."""
    state = request.app.state
    cache = getattr(state, "verified_tokens", None)
    if cache is None:
        cache = state.verified_tokens = VerifiedTokens()
    return cache


def _unauthorised(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {reason}",
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def principal(request: Request,
                    creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """The verified claims of the caller's access token."""
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    token = creds.credentials
    cache = verified_tokens(request)
    hit = cache.get(token)
    if hit is not None:
        claims = await _still_valid(request, hit)
        if claims is not None:
            return claims
        cache.forget(token)  # expired or its key retired: the full check below says which, as it always has
    try:
        kid = unverified_kid(token)
    except TokenError as exc:
        raise _unauthorised(str(exc)) from exc
    ring = await _ring_for(request, kid)
    try:
        claims = verify(token, keyring=ring)
    except TokenError as exc:
        raise _unauthorised(str(exc)) from exc
    cache.put(token, _Verified(claims, kid, int(claims["exp"]), str(claims["iss"])))
    return dict(claims)


async def _ring_for(request: Request, kid: str) -> Any:
    try:
        return await keyring_store(request).for_kid(kid)
    except (RedisError, KeyringError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication unavailable, retry shortly",
                            headers={"Retry-After": "1"}) from exc


async def _still_valid(request: Request, hit: "_Verified") -> dict[str, Any] | None:
    """The claims of a token verified before, if it has not expired since (PyJWT's rule: valid while exp > now)
    and the key that signed it still verifies in the keyring as this process sees it now; else None."""
    now = time.time()
    if not hit.exp > now or hit.issuer != get_settings().jwt_issuer:
        return None
    ring = await _ring_for(request, hit.kid)
    if ring.state.entry(hit.kid, now) is None:
        return None
    return dict(hit.claims)


def require(*roles: str) -> Callable[..., Any]:
    """Dependency admitting a caller holding any of `roles`."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"require() needs known roles, got {roles}")

    async def check(p: dict[str, Any] = Depends(principal)) -> dict[str, Any]:
        if not set(p.get("roles", [])) & set(roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs one of the roles: {', '.join(roles)}")
        return p

    check.access = tuple(roles)  # type: ignore[attr-defined]
    return check


def public(why: str) -> Callable[..., None]:
    """Dependency declaring an endpoint open to anyone, and why (what authenticates it instead)."""

    def open_() -> None:
        return None

    open_.access = "public"  # type: ignore[attr-defined]
    open_.why = why  # type: ignore[attr-defined]
    return open_


def api_routes(app: Any) -> list[Any]:
    """Every endpoint route of an app, through included routers (FastAPI >= 0.16x includes routers lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        return [r for r in app.routes if hasattr(r, "dependant")]
    return [r for r in iter_route_contexts(app.routes) if getattr(r, "dependant", None) is not None]


def declared_access(route: Any) -> tuple[str, ...] | str | None:
    """The roles a route admits (from its `require`), "public", or None when it declares nothing."""
    found: list[Any] = []

    def walk(dep: Any) -> None:
        for d in dep.dependencies:
            access = getattr(d.call, "access", None)
            if access is not None:
                found.append(access)
            walk(d)

    walk(route.dependant)
    if not found:
        return None
    return found[0]
