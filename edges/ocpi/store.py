"""What the OCPI edge reads from its projections (never writes: DESIGN.md §1).

The pool's search_path is the OCPI schema (CV_OCPI_SCHEMA_NAME) then public, so one process can serve a platform
whose projections live in any schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from projections.postgres.ocpi_objects import TABLES


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    state: str
    plain_token: bool
    their_versions_url: str | None
    their_token_sealed: str | None
    version: str | None
    endpoints: list[dict[str, str]] = field(default_factory=list)
    roles: list[dict[str, str]] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        return self.state == "REGISTERED"

    def endpoint(self, identifier: str, role: str | None = None) -> str | None:
        """Their URL of a module (in the given interface role, e.g. SENDER to pull from)."""
        for e in self.endpoints:
            if e.get("identifier") == identifier and (role is None or e.get("role") == role):
                return e.get("url")
        return None

    def is_hub(self) -> bool:
        return any(r["role"] == "HUB" for r in self.roles)

    def speaks_for(self, country_code: str, party_id: str, roles: tuple[str, ...] | None = None) -> bool:
        """Whether this connection may act for the party: one of its credentials roles (in `roles`, when given),
        or any party when it is a hub (a hub relays the parties connected to it)."""
        if self.is_hub():
            return True
        cc, pid = country_code.upper(), party_id.upper()
        return any(r["country_code"] == cc and r["party_id"] == pid and (roles is None or r["role"] in roles)
                   for r in self.roles)

    def first_party(self, role: str | None = None) -> tuple[str, str] | None:
        for r in self.roles:
            if role is None or r["role"] == role:
                return r["country_code"], r["party_id"]
        return None


_PARTNER_COLS = ("partner_id, name, state, plain_token, their_versions_url, their_token_sealed, version, "
                 "endpoints, roles")


def _partner(row: tuple[Any, ...]) -> Partner:
    endpoints = row[7] if isinstance(row[7], list) else json.loads(row[7] or "[]")
    roles = row[8] if isinstance(row[8], list) else json.loads(row[8] or "[]")
    return Partner(row[0], row[1], row[2], row[3], row[4], row[5], row[6], endpoints, roles)


async def partner(pool: AsyncConnectionPool, partner_id: str) -> Partner | None:
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT {_PARTNER_COLS} FROM ocpi_partners WHERE partner_id = %s",
                                 (partner_id,))
        row = await cur.fetchone()
    return _partner(row) if row else None


async def partners(pool: AsyncConnectionPool) -> list[Partner]:
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT {_PARTNER_COLS} FROM ocpi_partners ORDER BY partner_id")
        return [_partner(r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class TokenRow:
    token_hash: str
    kind: str
    partner: Partner


async def valid_tokens(pool: AsyncConnectionPool, hashes: list[str], now: datetime) -> dict[str, TokenRow]:
    """The tokens among `hashes` that are valid at `now`, with their partner."""
    if not hashes:
        return {}
    cols = ", ".join(f"p.{c.strip()}" for c in _PARTNER_COLS.split(","))
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT t.token_hash, t.kind, {cols} FROM ocpi_credentials_tokens t "
            "JOIN ocpi_partners p USING (partner_id) WHERE t.token_hash = ANY(%s) "
            "AND (t.valid_until IS NULL OR t.valid_until > %s)", (hashes, now))
        rows = await cur.fetchall()
    return {r[0]: TokenRow(r[0], r[1], _partner(r[2:])) for r in rows}


# ---- objects ---------------------------------------------------------------------------------------------------


def _where(module: str) -> str:
    return "partner_id = %s AND country_code = %s AND party_id = %s AND id = %s" + (
        " AND token_type = %s" if module == "tokens" else "")


async def object_doc(pool: AsyncConnectionPool, module: str, key: tuple[str, ...]) -> str | None:
    """The stored document of one object (key as projections.postgres.ocpi_objects.object_key makes it)."""
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT doc FROM {TABLES[module]} WHERE {_where(module)}", key)
        row = await cur.fetchone()
    return row[0] if row else None

