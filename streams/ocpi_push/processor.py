"""The OCPI push processor: our station, session, tariff and CDR changes -> OcpiPushRequested per partner on
`ocpi.outbound` (streams/ocpi_push/fold.py says what goes to whom).

A stateful processor (streams/stateful.py): state and offsets in one Postgres transaction, pushes acknowledged by
the broker before the commit.  Keys: station id, tariff id, session id (the keys of the input topics' aggregates:
`stations` is keyed by station id, so a StationTariffSet's tariff state may be touched from two partitions - the
processor's advisory lock serialises batches).

Lookups (the only inputs that are not events), in the OCPI schema `ocpi_schema`: the registered eMSP
connections with a receiver endpoint for a module (`ocpi_partners`), and which connection gave us a driver token
(`ocpi_tokens`, the Tokens the eMSPs pushed to our Tokens receiver).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from chargeverse.kafka import EventProducer
from chargeverse.topics import BILLING, SESSIONS, STATIONS
from projections.base import SourcedEvent
from projections.postgres.migrate import connect, migrate
from streams.ocpi_push.fold import Lookups, Policy, Target, apply, state_key
from streams.stateful import Output, StatefulProcessor

NAME = "ocpi_push"
OTHER = "-"


class PostgresLookups:
    def __init__(self, dsn: str, ocpi_schema: str) -> None:
        self.dsn, self.schema = dsn, ocpi_schema
        self.conn: psycopg.Connection | None = None

    def _c(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema, autocommit=True)
            migrate(self.conn, self.schema)  # the OCPI schema may not have been migrated by anyone yet
        return self.conn

    def emsps(self, module: str) -> list[Target]:
        rows = self._c().execute(
            "SELECT partner_id, roles, endpoints, registered_at FROM ocpi_partners WHERE state = 'REGISTERED' "
            "ORDER BY partner_id").fetchall()
        out = []
        for pid, roles, endpoints, registered_at in rows:
            roles = roles if isinstance(roles, list) else json.loads(roles or "[]")
            endpoints = endpoints if isinstance(endpoints, list) else json.loads(endpoints or "[]")
            emsp = next((r for r in roles if r.get("role") == "EMSP"), None)
            if emsp and any(e.get("identifier") == module and e.get("role") == "RECEIVER" for e in endpoints):
                out.append(Target(pid, emsp["country_code"], emsp["party_id"], registered_at))
        return out

    def token_owner(self, uid: str) -> Target | None:
        row = self._c().execute(
            "SELECT t.partner_id, t.country_code, t.party_id FROM ocpi_tokens t JOIN ocpi_partners p "
            "USING (partner_id) WHERE t.id = %s AND p.state = 'REGISTERED' ORDER BY t.last_updated DESC LIMIT 1",
            (uid.upper(),)).fetchone()
        return Target(*row) if row else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None, *,
          ocpi_schema: str | None = None, policy: Policy | None = None, name: str = NAME) -> StatefulProcessor:
    pol = policy or Policy()
    pg = PostgresLookups(dsn, ocpi_schema or schema)
    lookups = Lookups(emsps=pg.emsps, token_owner=pg.token_owner)

    def fold(state: dict[str, Any] | None, e: SourcedEvent) -> tuple[dict[str, Any] | None, list[Output]]:
        if state_key(e.type, e.record) is None:
            return None, []
        return apply(state, e.type, e.record, lookups, pol)

    def key_of(e: SourcedEvent) -> str:
        return state_key(e.type, e.record) or OTHER

    proc = StatefulProcessor(name, (STATIONS.name, SESSIONS.name, BILLING.name), dsn, fold, key_of,
                             producer=producer, schema=schema)
    close = proc.close

    def close_all() -> None:
        close()
        pg.close()

    proc.close = close_all  # type: ignore[method-assign]
    return proc
