"""Read-your-writes for edges: wait, bounded, until a projection has applied an event the edge just published.

Edges never write projections (DESIGN.md §1), yet a client that registers, adds a vehicle or completes an OCPI
credentials exchange expects its next request to see the result.  Every projection stores, in the same
transaction as its rows, the next offset it will apply per topic-partition (`projection_offsets`), so "my event
is visible" is exactly "the projection's next offset on my event's partition is past my event's offset".  The
edge publishes, gets the (partition, offset) from the broker's acknowledgement, and polls that one row.

It never blocks unboundedly: after `timeout` it returns False and the caller answers 202 with a place to poll.
"""

from __future__ import annotations

import asyncio
import time

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from chargeverse.kafka import Delivered

_QUERY = ("SELECT next_offset FROM projection_offsets WHERE projection = %s AND topic = %s AND partition = %s")


async def applied(conn: AsyncConnection, projection: str, delivered: Delivered) -> bool:
    """Whether `projection` has applied the event at `delivered` (or anything after it on its partition)."""
    cur = await conn.execute(_QUERY, (projection, delivered.topic, delivered.partition))
    row = await cur.fetchone()
    return row is not None and int(row[0]) > delivered.offset


async def wait_applied(pool: AsyncConnectionPool, projection: str, delivered: Delivered,
                       timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll until `projection` has applied `delivered`; False after `timeout` seconds (never raises on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        async with pool.connection() as conn:
            if await applied(conn, projection, delivered):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
