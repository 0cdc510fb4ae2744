"""One read step of a long-running aiokafka consumer, the same way in every edge worker that has one.

Why: aiokafka retries lost connections itself, but `getmany` can still raise a KafkaError (e.g. while the broker
restarts); a worker that let it escape would stop consuming for good.  Each worker logs it, waits a moment and
reads on, so a broker outage delays events and loses none (offsets are committed only for handled messages).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


async def read_batches(consumer: AIOKafkaConsumer, who: str, *, timeout_ms: int, max_records: int,
                       pause_s: float = 0.5) -> dict[Any, list[Any]]:
    """The next records by partition, or {} after a logged KafkaError and a pause of `pause_s`."""
    try:
        return await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    except KafkaError as exc:
        log.warning("%s: consume failed: %s", who, exc)
        await asyncio.sleep(pause_s)
        return {}
