"""What the OCPI outbound workers (push_worker: our objects to partners; commands_worker: command round trips)
share: a thread running its own event loop, and the I/O each opens and closes the same way.

Why a thread with its own loop: each worker consumes the log and talks HTTP to partners with httpx; keeping that
off the OCPI API's loop means a slow partner or a long consume never delays a partner's request to us.  The
consumer is aiokafka, its empty fetches paced by chargeverse/fetch_backoff.py: the embedded broker answers an
empty fetch at once, and the librdkafka consumers these workers had before re-fetched thousands of times a
second, idle or not.  The retry/back-off/circuit policy comes from settings
in one place, so both workers treat a failing partner alike.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import httpx
from aiokafka import AIOKafkaConsumer
from psycopg_pool import AsyncConnectionPool

from chargeverse import fetch_backoff
from chargeverse.avro import default_codec
from chargeverse.kafka import EventProducer
from chargeverse.settings import Settings
from edges.ocpi.context import token_box
from edges.ocpi.outbound import Lanes, Policy


class OcpiWorker:
    """Base of the dataclass workers: call `_setup()` from `__post_init__`, `_open_io()` first in `_main`, and
    `_close_io(consumer)` in its `finally`."""

    #: the worker's name in thread names and errors ("push", "commands")
    kind: ClassVar[str]
    settings: Settings
    bootstrap: str | None

    def _setup(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.codec = default_codec()
        self.box = token_box(self.settings)
        o = self.settings
        self.policy = Policy(retries=o.ocpi_outbound_retries, base=o.ocpi_outbound_backoff,
                             cap=o.ocpi_outbound_backoff_cap, failure_threshold=o.ocpi_breaker_failures,
                             reset_after=o.ocpi_breaker_reset_seconds)

    async def _main(self) -> None:  # pragma: no cover - each worker defines it
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> Any:
        """Start the worker's thread; return self once it consumes (or raise if it did not within `timeout`)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True,
                                        name=f"ocpi-{self.kind}-{self.settings.ocpi_platform_id}")
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the OCPI {self.kind} worker did not start")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    async def _open_io(self, group: str) -> AIOKafkaConsumer:
        """Open the Postgres pool (OCPI schema first on the path), the HTTP client, the producer, the partner lanes
        and a started consumer of `group` with nothing assigned yet (offsets committed by the worker itself)."""
        dsn = self.settings.postgres_dsn.get_secret_value()
        self.pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False,
                                        kwargs={"options": f"-c search_path={self.settings.ocpi_schema_name},public"})
        await self.pool.open(wait=True, timeout=30)
        self.http = httpx.AsyncClient(timeout=self.settings.ocpi_http_timeout, follow_redirects=False)
        self.producer = EventProducer(self.bootstrap)
        self.lanes = Lanes(self.policy)
        fetch_backoff.install(self.settings.kafka_empty_fetch_backoff_ms)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap or self.settings.kafka_bootstrap,
                                    group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=100)
        await consumer.start()
        await consumer.topics()  # the metadata partitions_for_topic reads
        return consumer

    async def _close_io(self, consumer: AIOKafkaConsumer) -> None:
        await self.lanes.close()
        await consumer.stop()
        await self.http.aclose()
        await self.pool.close()
        self.producer.close()
