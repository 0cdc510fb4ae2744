"""Data the synchronous answers need, read from Postgres projections: id tokens and transaction ids.

- Id tokens come from the `id_tokens` projection (written by the identity projection, never by the edge).  The
  edge keeps a short-lived cache (the OCPP "authorization cache" on the CSMS side): a lookup is answered from
  memory for `ttl` seconds, so a busy site does not cost a query per Authorize; a token blocked in the
  projection is therefore answered Blocked within `ttl` seconds (default 30).  Unknown uids are cached too
  (for `negative_ttl`), so a flood of made-up tags cannot hammer the database.
- Fleet policies (projections/postgres/fleets.py) are enforced here, at authorization time: a token whose
  account is a current fleet member is answered Blocked when the member has spent its monthly budget (priced
  CDRs ending in the current month, fleet time zone, fleet currency) or when the station / its network is not
  among the allowed ones.  The station rules need the station: `lookup(uids, station_id=...)`; without it only
  the budget is checked.  A member of several fleets must satisfy every one.  The verdict is cached like the
  row (per uid and station), so a member who just went over budget is refused within `ttl` seconds, and a
  session already running is never cut off (the budget is checked when a charge starts, so the last session of
  the month may overshoot it).
- Tokens of roaming partners (eMSPs) come from the OCPI Tokens receiver's projection (`ocpi_tokens`, in the
  OCPI schema, registered partners only) when no own token has the uid: a valid token the eMSP lets us
  whitelist (ALWAYS, ALLOWED, ALLOWED_OFFLINE) is Accepted here; `valid: false` is Blocked; NEVER ("always ask
  the eMSP in real time") is Invalid, because this edge does not make real-time OCPI calls yet.  The session is
  then billed to that partner (streams/billing/partner.py).
- 1.6 transaction ids come from the Postgres sequence `ocpp_transaction_ids`: unique across every edge instance
  (a random number is not), never reused (gaps are fine), and within the int32 range 1.6 chargers store.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

from psycopg import sql
from psycopg.errors import UndefinedTable
from psycopg_pool import AsyncConnectionPool

from edges.ocpp.context import TokenRecord


@dataclass(frozen=True)
class FleetRule:
    """The policy that applies to one fleet member now, and what the member spent this month."""

    fleet_id: str
    monthly_budget: Decimal | None
    spent: Decimal
    allowed_station_ids: tuple[str, ...] | None
    allowed_networks: tuple[str, ...] | None


def fleet_refusal(rules: Sequence[FleetRule], station_id: str | None, network: str | None) -> str | None:
    """Why the member may not charge (None: it may).  Pure.  Every fleet's rule must admit the charge; unknown
    station (None) skips the station and network checks; an unknown network is not in any allowed list."""
    for r in rules:
        if r.monthly_budget is not None and r.spent >= r.monthly_budget:
            return f"fleet {r.fleet_id}: monthly budget {r.monthly_budget} spent ({r.spent})"
        if station_id is None:
            continue
        if r.allowed_station_ids is not None and station_id not in r.allowed_station_ids:
            return f"fleet {r.fleet_id}: station {station_id} not allowed"
        if r.allowed_networks is not None and (network is None or network not in r.allowed_networks):
            return f"fleet {r.fleet_id}: network {network!r} not allowed"
    return None


#: the policy of each current membership of the accounts (a member's own policy, else the fleet's default) and
#: the member's spend in the fleet's currency since the start of the current month in the fleet's time zone
FLEET_RULES_SQL = """
SELECT m.account_id, f.fleet_id, p.monthly_budget, p.allowed_station_ids, p.allowed_networks,
       COALESCE((SELECT sum(COALESCE(c.total_cost_incl_vat, c.total_cost_excl_vat)) FROM cdrs c
                 WHERE c.account_id = m.account_id AND c.currency = f.currency
                   AND (c.cdr->>'end_date_time')::timestamptz
                       >= date_trunc('month', now() AT TIME ZONE f.time_zone) AT TIME ZONE f.time_zone), 0)
FROM fleet_members m
JOIN fleets f ON f.fleet_id = m.fleet_id
LEFT JOIN LATERAL (SELECT * FROM fleet_policies q WHERE q.fleet_id = m.fleet_id
                   AND q.account_id IN (m.account_id, '') ORDER BY q.account_id DESC LIMIT 1) p ON true
WHERE m.account_id = ANY(%s) AND m.left_at IS NULL
"""


async def fleet_rules(conn: object, account_ids: Sequence[str]) -> dict[str, list[FleetRule]]:
    """Current fleet rules per account (accounts in no fleet are absent)."""
    out: dict[str, list[FleetRule]] = {}
    if not account_ids:
        return out
    cur = await conn.execute(FLEET_RULES_SQL, (list(account_ids),))  # type: ignore[attr-defined]
    for acc, fleet, budget, stations, networks, spent in await cur.fetchall():
        out.setdefault(acc, []).append(FleetRule(fleet, budget, Decimal(spent), None if stations is None else
                                                 tuple(stations), None if networks is None else tuple(networks)))
    return out


#: OCPI whitelist values that let the CPO accept the token without asking the eMSP (OCPI 2.2.1 WhitelistType)
LOCAL_WHITELISTS = frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE"})


def partner_token_record(uid: str, valid: bool | None, doc: str | dict | None) -> TokenRecord:
    """How a roaming partner's Token (as the eMSP pushed it to us) answers at our charger.  Pure.
    The presented type is not compared (OCPI's RFID/APP_USER/... are not OCPP's idToken types)."""
    try:
        token = json.loads(doc) if isinstance(doc, str) else dict(doc or {})
    except ValueError:
        token = {}
    if valid is False or token.get("valid") is False:
        status = "Blocked"
    elif token.get("whitelist") in LOCAL_WHITELISTS:
        status = "Accepted"
    else:
        status = "Invalid"
    return TokenRecord(uid, None, status, None, token.get("group_id"), token.get("contract_id") or uid, None)


class IdTokenStore:
    def __init__(self, pool: AsyncConnectionPool, ttl: float = 30.0, negative_ttl: float = 10.0,
                 max_entries: int = 200_000, ocpi_schema: str | None = None) -> None:
        self.pool = pool
        #: where the OCPI Tokens receiver projects partners' tokens (None: no roaming partners' tokens)
        self.ocpi_schema = ocpi_schema
        self.ttl, self.negative_ttl, self.max_entries = ttl, negative_ttl, max_entries
        self._cache: OrderedDict[tuple[str, str | None], tuple[float, TokenRecord | None]] = OrderedDict()
        self.queries = 0  # how many lookups reached Postgres (observability, tests)

    def forget(self, uid: str | None = None) -> None:
        """Drop one cached token (or all): e.g. when the identity stream announces a change."""
        if uid is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == uid]:
                self._cache.pop(key, None)

    async def lookup(self, uids: Iterable[str], station_id: str | None = None) -> dict[str, TokenRecord | None]:
        """The rows of `uids` as the charger must be answered: a fleet member the fleet's policy refuses (at
        `station_id`, when given) comes back with status Blocked."""
        now = time.monotonic()
        out: dict[str, TokenRecord | None] = {}
        missing: list[str] = []
        for uid in uids:
            hit = self._cache.get((uid, station_id))
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
                accounts = sorted({r.account_id for r in rows.values() if r.account_id and r.status == "Accepted"})
                if accounts:
                    rules = await fleet_rules(conn, accounts)
                    network = None
                    if rules and station_id is not None:
                        cur = await conn.execute("SELECT operator FROM stations WHERE station_id = %s",
                                                 (station_id,))
                        row = await cur.fetchone()
                        network = row[0] if row else None
                    for uid, rec in list(rows.items()):
                        if rec.account_id in rules and fleet_refusal(rules[rec.account_id], station_id, network):
                            rows[uid] = dataclasses.replace(rec, status="Blocked")
                strangers = [uid for uid in missing if uid not in rows]
                if strangers and self.ocpi_schema is not None:
                    rows.update(await self._partner_tokens(conn, strangers))
            for uid in missing:
                rec = rows.get(uid)
                out[uid] = rec
                key = (uid, station_id)
                self._cache[key] = (now + (self.ttl if rec is not None else self.negative_ttl), rec)
                self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return out

    async def _partner_tokens(self, conn: object, uids: list[str]) -> dict[str, TokenRecord]:
        """Registered partners' tokens for uids no own token has (OCPI uids are matched case-insensitively);
        the latest pushed wins when two partners use one uid."""
        q = sql.SQL("SELECT DISTINCT ON (t.id) t.id, t.valid, t.doc FROM {}.ocpi_tokens t "
                    "JOIN {}.ocpi_partners p USING (partner_id) WHERE t.id = ANY(%s) AND p.state = 'REGISTERED' "
                    "ORDER BY t.id, t.last_updated DESC, t.partner_id").format(
            sql.Identifier(self.ocpi_schema), sql.Identifier(self.ocpi_schema))
        wanted = {u.upper(): u for u in uids}
        try:
            cur = await conn.execute(q, (list(wanted),))  # type: ignore[attr-defined]
        except UndefinedTable:  # no OCPI projection in this deployment: no partner tokens
            return {}
        return {wanted[i]: partner_token_record(wanted[i], v, d) for i, v, d in await cur.fetchall() if i in wanted}

    async def next_transaction_id(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT nextval('ocpp_transaction_ids')")
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])
