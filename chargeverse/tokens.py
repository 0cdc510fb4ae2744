"""App access tokens: short-lived JWTs (HS256 with the configured secret).

The accounts issue replaces the secret with rotated keys (`kid`); every endpoint already requires a valid token
and declares the roles it admits.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from chargeverse.settings import Settings, get_settings

ROLES = ("driver", "fleet_manager", "operator", "admin", "auditor")
ALGORITHM = "HS256"


class TokenError(ValueError):
    pass


def _secret(s: Settings) -> str:
    secret = s.jwt_secret.get_secret_value()
    if len(secret) < 16:
        raise TokenError("CV_JWT_SECRET is not set (or shorter than 16 characters); refusing to sign or verify")
    return secret


def issue(subject: str, roles: list[str], ttl_seconds: int = 900, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise TokenError(f"unknown roles: {', '.join(sorted(unknown))}")
    now = int(time.time())
    claims = {"sub": subject, "roles": roles, "iat": now, "exp": now + ttl_seconds, "iss": s.jwt_issuer,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, _secret(s), algorithm=ALGORITHM)


def verify(token: str, settings: Settings | None = None) -> dict[str, Any]:
    s = settings or get_settings()
    try:
        return jwt.decode(token, _secret(s), algorithms=[ALGORITHM], issuer=s.jwt_issuer,
                          options={"require": ["exp", "sub", "iss"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
