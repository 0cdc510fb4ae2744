"""Admin operations on auth (`/api/admin/*`): the JWT signing keyring.

Rotation makes a new random kid current; the previous key verifies for `AuthConfig.previous_key_seconds` more
(at least the longest access-token lifetime), so nobody is signed out by a routine rotation.  With
`retire_previous` every older key retires at once: the answer to a suspected key leak, at the price of every
outstanding access token (clients refresh; refresh tokens are not JWTs and survive).  Key material is never
shown: kids are derived-key labels (chargeverse/keyring.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from edges.api.auth import auth_config, keyring_store, require
from edges.api.runtime import GuardedRoute

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin", tags=["admin"], route_class=GuardedRoute)


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    retire_previous: bool = False


class KeyInfo(BaseModel):
    kid: str
    created_at: int
    retire_at: int | None
    current: bool
    verifies: bool


class KeyringView(BaseModel):
    current: str
    keys: list[KeyInfo]


@router.get("/jwt-keys", response_model=KeyringView, summary="The signing keys' ids and lifetimes (no key material)")
async def jwt_keys(request: Request, _: dict = Depends(require("admin", "auditor"))) -> KeyringView:
    ring = await keyring_store(request).get()
    return KeyringView(current=ring.state.current.kid,
                       keys=[KeyInfo(**k) for k in ring.state.describe(time.time())])


@router.post("/jwt-keys/rotate", response_model=KeyringView, summary="Rotate the JWT signing key")
async def rotate(request: Request, body: RotateBody | None = None,
                 p: dict[str, Any] = Depends(require("admin"))) -> KeyringView:
    retire = bool(body and body.retire_previous)
    state = await keyring_store(request).rotate(auth_config(request).previous_key_seconds, retire_previous=retire)
    log.warning("JWT signing key rotated by %s: current %s, retire_previous=%s", p.get("sub"), state.current.kid,
                retire)
    return KeyringView(current=state.current.kid, keys=[KeyInfo(**k) for k in state.describe(time.time())])
