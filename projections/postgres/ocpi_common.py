"""What the two OCPI Postgres projections share on top of TableProjection: the platform filter.

Both read `ocpi.inbound`.  `ocpi.inbound` is shared by every platform writing to the cluster (in tests, two
independent OCPI platforms on one stack), so each projection applies only the events whose `platform_id` is its
own and merely advances its offsets past the others.  Rows and offsets commit in one transaction (projections/
base.py); a batch's events are applied in log order.
"""

from __future__ import annotations

from typing import Any, Sequence

import psycopg

from projections.base import SourcedEvent, real
from projections.postgres.table_projection import TableProjection


class OcpiPgProjection(TableProjection):
    name = "pg.ocpi"
    topics: tuple[str, ...] = ("ocpi.inbound",)
    #: the event types this projection folds
    handles: frozenset[str] = frozenset()

    def __init__(self, dsn: str, schema: str = "public", platform_id: str = "chargeverse") -> None:
        self.platform_id = platform_id
        super().__init__(dsn, schema)

    def mine(self, events: Sequence[SourcedEvent]) -> list[SourcedEvent]:
        return [e for e in real(events) if e.type in self.handles and e.record.get("platform_id") == self.platform_id]

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        """Fold this platform's events; other platforms' only advance the offsets (the base writes those)."""
        mine = self.mine(events)
        if mine:
            self.fold(cur, mine)

    def fold(self, cur: psycopg.Cursor[Any], events: list[SourcedEvent]) -> None:  # pragma: no cover
        raise NotImplementedError
