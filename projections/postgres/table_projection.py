"""The one shape of a Postgres projection: rows and the projection's offsets in one transaction.

A projection names its tables and writes rows for a batch of new events; this base does the rest, the same way
for every projection (projections/base.py states the invariants): connect into a schema and migrate it, skip
events below the stored offsets, write the rows and the next offsets in one transaction (so a re-delivered event
is applied exactly once), reconnect after a broken connection, and give `cv replay` its checksum and reset.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate


class TableProjection:
    #: stable name; the key of its offsets
    name: str = ""
    #: the topics it reads
    topics: tuple[str, ...] = ()
    #: its tables, with the ORDER BY that makes the checksum independent of physical row order
    tables: tuple[tuple[str, str], ...] = ()

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn, self.schema = dsn, schema
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)

    def close(self) -> None:
        self.conn.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
        return {(t, p): o for t, p, o in rows}

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        """Write the rows of `events` (new, in log order, dead-letter placeholders removed)."""
        raise NotImplementedError

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s FOR UPDATE",
                (self.name,)).fetchall()
            new = unseen(events, {(t, p): o for t, p, o in rows})
            if not new:
                return 0
            cur = self.conn.cursor()
            self.write(cur, real(new))
            cur.executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def checksum_queries(self) -> tuple[str, ...]:
        """The queries whose rows make `checksum`: every table, in an order that physical row order cannot change.
        A projection whose tables hold columns that are not a function of the events overrides this."""
        return tuple(f"SELECT * FROM {table} ORDER BY {order}" for table, order in self.tables)

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for query in self.checksum_queries():
                for row in self.conn.execute(query):
                    h.update(json.dumps(row, default=str, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute(f"TRUNCATE {', '.join(t for t, _ in self.tables)}")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
