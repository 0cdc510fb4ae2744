"""The notifications processor: `sessions` + `stations` -> `notifications` (NotificationRequested).

A `StatefulProcessor` (streams/stateful.py: state and offsets in one Postgres transaction after the outputs are
acknowledged) running the pure fold of fold.py, keyed by station.  The one lookup, the account behind an id token,
reads the identity projection (`id_tokens`) on a read-only autocommit connection of its own.
"""

from __future__ import annotations

import psycopg

from chargeverse.kafka import EventProducer
from chargeverse.topics import SESSIONS, STATIONS
from projections.base import SourcedEvent
from projections.postgres.migrate import connect
from streams.notifications.fold import fold, key_of
from streams.stateful import StatefulProcessor

NAME = "notifications"


class AccountLookup:
    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn, self.schema = dsn, schema
        self.conn: psycopg.Connection | None = None

    def __call__(self, uid: str) -> str | None:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema, autocommit=True)
        row = self.conn.execute("SELECT account_id FROM id_tokens WHERE uid = %s", (uid,)).fetchone()
        return row[0] if row and row[0] else None


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None) -> StatefulProcessor:
    lookup = AccountLookup(dsn, schema)

    def step(state, e: SourcedEvent):  # noqa: ANN001, ANN202 - the StatefulProcessor's Fold
        return fold(state, e, lookup)

    return StatefulProcessor(NAME, (SESSIONS.name, STATIONS.name), dsn, step, key_of, producer=producer,
                             schema=schema)
