"""The billing processor: `sessions` -> `billing` (CdrPriced, BillingReview) and `ledger` (LedgerPostingSet).

Runs the pure fold (streams/billing/fold.py) as a stateful processor keyed by session id (the key of
`sessions`).  The two lookups the fold needs at a session's start read Postgres projections: the station's tariff
in effect at the start (`station_tariffs`) and the account behind the identification token (`id_tokens`).  The
fold keeps what it looked up in its state, so later lookups never change a session's price.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

import psycopg

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

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn, self.schema = dsn, schema
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

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None,
          operator: Operator | None = None) -> StatefulProcessor:
    pg = PostgresLookups(dsn, schema)
    lookups = Lookups(tariff_at=pg.tariff_at, payer_of=pg.payer_of)
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
