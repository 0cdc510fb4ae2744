"""The billing processor: `sessions` -> `billing` (CdrPriced, BillingReview) and `ledger` (LedgerPostingSet).

Runs the pure fold (streams/billing/fold.py) as a stateful processor keyed by session id (the key of
`sessions`).  The lookups the fold needs at a session's start read Postgres projections: the station's tariff
in effect at the start (`station_tariffs`), the account behind the identification token (`id_tokens`) and, for a
token no account holds, the roaming partner that gave it to us (`ocpi_tokens` of the OCPI objects projection, in
the OCPI schema `ocpi_schema`, the table the OCPI push processor and CDRs sender also read) with a snapshot of the
station (`stations`, `connectors`) for that partner's CDR.  The fold keeps what it looked up in its state, so
later lookups never change a session's price or its payer.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import psycopg
from psycopg import sql

from chargeverse.kafka import EventProducer
from chargeverse.topics import SESSIONS
from projections.base import SourcedEvent
from projections.postgres.migrate import connect
from projections.postgres.station_tariffs import tariff_at
from streams.billing.fold import Lookups, Operator, apply
from streams.stateful import Output, StatefulProcessor

NAME = "billing"


class PostgresLookups:
    """The fold's lookups against the projections (a read-only autocommit connection of its own)."""

    def __init__(self, dsn: str, schema: str = "public", ocpi_schema: str | None = None) -> None:
        self.dsn, self.schema = dsn, schema
        self.ocpi_schema = ocpi_schema or schema
        self.conn: psycopg.Connection | None = None

    def _c(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema, autocommit=True)
        return self.conn

    def tariff_at(self, station_id: str, at: datetime) -> Mapping[str, Any] | None:
        t = tariff_at(self._c(), station_id, at)
        if t is None:
            return None
        return {"tariff": t["tariff"], "time_zone": t["time_zone"], "currency": t["currency"]}

    def payer_of(self, uid: str) -> Mapping[str, Any] | None:
        c = self._c()
        row = c.execute("SELECT account_id FROM id_tokens WHERE uid = %s", (uid,)).fetchone()
        if row is None or not row[0]:
            return None
        fleet = None
        try:  # the driver's current fleet membership (fleets projection), if any
            fleet = c.execute("SELECT fleet_id, cost_centre FROM fleet_members WHERE account_id = %s "
                              "AND left_at IS NULL ORDER BY joined_at DESC LIMIT 1", (row[0],)).fetchone()
        except psycopg.Error:
            fleet = None
        return {"account_id": row[0], "fleet_id": fleet[0] if fleet else None,
                "cost_centre": fleet[1] if fleet else None}

    def partner_of(self, uid: str) -> Mapping[str, Any] | None:
        """The registered partner whose Token this uid is (the latest pushed, when several), or None."""
        q = sql.SQL("SELECT t.partner_id, t.country_code, t.party_id, t.token_type, t.doc FROM {}.ocpi_tokens t "
                    "JOIN {}.ocpi_partners p USING (partner_id) WHERE t.id = %s AND p.state = 'REGISTERED' "
                    "ORDER BY t.last_updated DESC, t.partner_id LIMIT 1").format(
            sql.Identifier(self.ocpi_schema), sql.Identifier(self.ocpi_schema))
        try:
            row = self._c().execute(q, (uid.upper(),)).fetchone()
        except psycopg.errors.UndefinedTable:  # no OCPI projection in this deployment: no partner tokens
            return None
        if row is None:
            return None
        partner_id, cc, party, ttype, doc = row
        try:
            token = json.loads(doc) if isinstance(doc, str) else dict(doc or {})
        except ValueError:
            token = {}
        return {"partner_id": partner_id, "country_code": cc, "party_id": party,
                "uid": token.get("uid") or uid, "type": token.get("type") or ttype,
                "contract_id": token.get("contract_id") or uid}

    def location_of(self, station_id: str) -> Mapping[str, Any] | None:
        c = self._c()
        row = c.execute("SELECT name, address, ST_Y(location::geometry), ST_X(location::geometry) FROM stations "
                        "WHERE station_id = %s", (station_id,)).fetchone()
        if row is None:
            return None
        conns = c.execute("SELECT connector_id, standard, max_power_kw FROM connectors WHERE station_id = %s",
                          (station_id,)).fetchall()
        return {"name": row[0], "address": row[1], "latitude": row[2], "longitude": row[3],
                "connectors": {str(cid): {"standard": std, "max_power_kw": kw} for cid, std, kw in conns}}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None,
          operator: Operator | None = None, *, ocpi_schema: str | None = None) -> StatefulProcessor:
    pg = PostgresLookups(dsn, schema, ocpi_schema)
    lookups = Lookups(tariff_at=pg.tariff_at, payer_of=pg.payer_of, partner_of=pg.partner_of,
                      location_of=pg.location_of)
    op = operator or Operator()

    def fold(state: dict[str, Any] | None, e: SourcedEvent) -> tuple[dict[str, Any] | None, list[Output]]:
        return apply(state, e.type, e.record, lookups, op)

    proc = StatefulProcessor(NAME, (SESSIONS.name,), dsn, fold, lambda e: str(e.record["session_id"]),
                             producer=producer, schema=schema)
    close = proc.close

    def close_all() -> None:
        close()
        pg.close()

    proc.close = close_all  # type: ignore[method-assign]
    return proc
