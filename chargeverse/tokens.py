"""App access tokens: short-lived JWTs (HS256) signed with the current key of a rotated keyring (`kid` header).

Invariants:
- every token carries the `kid` of the key that signed it; verification looks the key up by kid and refuses a
  token without one, with an unknown kid, or with a kid whose key has retired (chargeverse/keyring.py);
- `sub`, `exp`, `iat`, `iss` and `roles` are required; roles are from ROLES only;
- only HS256 is accepted (no `alg: none`, no algorithm confusion).

Access tokens are stateless and short-lived (15 minutes by default); what can be revoked is the refresh token that
mints them (edges/api/refresh.py).  `issue()`/`verify()` without a keyring read it from Redis (the keyring of the
running platform), which is what `cv token issue` and tests outside the API process want.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from chargeverse.keyring import Keyring, KeyringError, load_sync
from chargeverse.settings import Settings, get_settings

ROLES = ("driver", "fleet_manager", "operator", "admin", "auditor")
ALGORITHM = "HS256"
#: Redis prefix of the auth state (keyring, refresh tokens, rate limits) unless settings say otherwise
DEFAULT_PREFIX = "cv:auth"


class TokenError(ValueError):
    pass


def auth_prefix(s: Settings) -> str:
    return str(getattr(s, "auth_redis_prefix", DEFAULT_PREFIX) or DEFAULT_PREFIX)


def platform_keyring(settings: Settings | None = None) -> Keyring:
    """The platform's keyring from Redis (created there on first use)."""
    from redis.exceptions import RedisError

    s = settings or get_settings()
    try:
        return load_sync(s.redis_url.get_secret_value(), auth_prefix(s), s.jwt_secret.get_secret_value())
    except KeyringError as exc:
        raise TokenError(str(exc)) from exc
    except RedisError as exc:
        raise TokenError(f"cannot read the signing keyring from Redis ({type(exc).__name__}: {exc}); "
                         "is the stack up (cv up)?") from exc


def issue(subject: str, roles: list[str], ttl_seconds: int = 900, settings: Settings | None = None, *,
          keyring: Keyring | None = None, now: float | None = None) -> str:
    s = settings or get_settings()
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise TokenError(f"unknown roles: {', '.join(sorted(unknown))}")
    if not roles:
        raise TokenError("a token needs at least one role")
    ring = keyring or platform_keyring(s)
    kid, key = ring.signing()
    t = int(time.time() if now is None else now)
    claims = {"sub": subject, "roles": list(roles), "iat": t, "exp": t + ttl_seconds, "iss": s.jwt_issuer,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


def unverified_kid(token: str) -> str:
    """The `kid` header of a token (not yet verified); TokenError when there is none or the token is garbage."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("token has no key id (kid)")
    return kid


def verify(token: str, settings: Settings | None = None, *, keyring: Keyring | None = None,
           now: float | None = None) -> dict[str, Any]:
    """The claims of a valid token; TokenError saying why otherwise.  `now` (tests) only moves the key-retirement
    check; expiry is always against the clock."""
    s = settings or get_settings()
    kid = unverified_kid(token)
    ring = keyring or platform_keyring(s)
    key = ring.verification_key(kid, now)
    if key is None:
        raise TokenError(f"unknown or retired signing key {kid!r}")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=s.jwt_issuer,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenError("token has no roles list")
    return claims
