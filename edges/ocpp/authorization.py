"""Data the synchronous answers need, read from Postgres projections: id tokens and transaction ids.

- Id tokens come from the `id_tokens` projection (written by the identity projection, never by the edge).  The
  edge keeps a short-lived cache (the OCPP "authorization cache" on the CSMS side): a lookup is answered from
  memory for `ttl` seconds, so a busy site does not cost a query per Authorize; a token blocked in the
  projection is therefore answered Blocked within `ttl` seconds (default 30).  Unknown uids are cached too
  (for `negative_ttl`), so a flood of made-up tags cannot hammer the database.
- 1.6 transaction ids come from the Postgres sequence `ocpp_transaction_ids`: unique across every edge instance
  (a random number is not), never reused (gaps are fine), and within the int32 range 1.6 chargers store.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Iterable

from psycopg_pool import AsyncConnectionPool

from edges.ocpp.context import TokenRecord


class IdTokenStore:
    def __init__(self, pool: AsyncConnectionPool, ttl: float = 30.0, negative_ttl: float = 10.0,
                 max_entries: int = 200_000) -> None:
        self.pool = pool
        self.ttl, self.negative_ttl, self.max_entries = ttl, negative_ttl, max_entries
        self._cache: OrderedDict[str, tuple[float, TokenRecord | None]] = OrderedDict()
        self.queries = 0  # how many lookups reached Postgres (observability, tests)

    def forget(self, uid: str | None = None) -> None:
        """Drop one cached token (or all): e.g. when the identity stream announces a change."""
        if uid is None:
            self._cache.clear()
        else:
            self._cache.pop(uid, None)

    async def lookup(self, uids: Iterable[str]) -> dict[str, TokenRecord | None]:
        now = time.monotonic()
        out: dict[str, TokenRecord | None] = {}
        missing: list[str] = []
        for uid in uids:
            hit = self._cache.get(uid)
            if hit is not None and hit[0] > now:
                out[uid] = hit[1]
            else:
                missing.append(uid)
        if missing:
            self.queries += 1
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT uid, type, status, valid_until, group_id, contract_id, account_id FROM id_tokens "
                    "WHERE uid = ANY(%s)", (missing,))
                rows = {r[0]: TokenRecord(*r) for r in await cur.fetchall()}
            for uid in missing:
                rec = rows.get(uid)
                out[uid] = rec
                self._cache[uid] = (now + (self.ttl if rec is not None else self.negative_ttl), rec)
                self._cache.move_to_end(uid)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return out

    async def next_transaction_id(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT nextval('ocpp_transaction_ids')")
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])
