"""What the two OCPI Postgres projections share: connection, migrations, offsets, the platform filter.

Both read `ocpi.inbound`.  `ocpi.inbound` is shared by every platform writing to the cluster (in tests, two
independent OCPI platforms on one stack), so each projection applies only the events whose `platform_id` is its
own and merely advances its offsets past the others.  Rows and offsets commit in one transaction (projections/
base.py); a batch's events are applied in log order.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate


class OcpiPgProjection:
    name = "pg.ocpi"
    topics: tuple[str, ...] = ("ocpi.inbound",)
    #: the event types this projection folds
    handles: frozenset[str] = frozenset()
    tables: tuple[str, ...] = ()

    def __init__(self, dsn: str, schema: str = "public", platform_id: str = "chargeverse") -> None:
        self.dsn = dsn
        self.schema = schema
        self.platform_id = platform_id
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)

    def close(self) -> None:
        self.conn.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
        return {(t, p): o for t, p, o in rows}

    def _reconnect_if_broken(self) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)

    def mine(self, events: Sequence[SourcedEvent]) -> list[SourcedEvent]:
        return [e for e in real(events) if e.type in self.handles and e.record.get("platform_id") == self.platform_id]

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0
        self._reconnect_if_broken()
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s FOR UPDATE",
                (self.name,)).fetchall()
            new = unseen(events, {(t, p): o for t, p, o in rows})
            if not new:
                return 0
            mine = self.mine(new)
            if mine:
                self.fold(self.conn.cursor(), mine)
            self.conn.cursor().executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def fold(self, cur: psycopg.Cursor[Any], events: list[SourcedEvent]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _checksum_queries(self) -> tuple[str, ...]:  # pragma: no cover
        raise NotImplementedError

    def checksum(self) -> str:
        import hashlib

        h = hashlib.sha256()
        with self.conn.transaction():
            for query in self._checksum_queries():
                for row in self.conn.execute(query):
                    h.update(repr(row).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute(f"TRUNCATE {', '.join(self.tables)}")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
