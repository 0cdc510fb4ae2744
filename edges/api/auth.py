"""Authentication and authorisation for the app API: a Bearer JWT, and per-endpoint roles."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chargeverse.tokens import TokenError, verify

_bearer = HTTPBearer(auto_error=False, description="JWT access token (`cv token issue` for local use)")


def principal(creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify(creds.credentials)
    except TokenError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc


def require(*roles: str) -> Callable[..., dict[str, Any]]:
    """Dependency admitting a caller holding any of `roles`."""

    def check(p: dict[str, Any] = Depends(principal)) -> dict[str, Any]:
        if not set(p.get("roles", [])) & set(roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs one of the roles: {', '.join(roles)}")
        return p

    return check
