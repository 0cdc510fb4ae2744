"""The notifications sender: an edge worker consuming `notifications` and delivering each NotificationRequested
through the configured sender (senders.py), recording the outcome on the log (NotificationSent /
NotificationFailed, keyed by account id like the request).

Runs in the API process when `CV_NOTIFICATIONS_WORKER=true` (`cv up` sets it), as a thread with its own Kafka
consumer group (`<worker_id>.notifications-sender`): several API instances share the partitions.

Delivery is at-least-once, made nearly exactly-once: an offset is committed only after the outcome is on the log,
and before sending, the worker asks the notifications projection whether the notification already has an outcome
of `sent` (a restart between the outcome and the commit then sends nothing twice; only a crash between the send
and the outcome can repeat a message).  A failed send is retried `attempts` times with backoff, then recorded as
NotificationFailed with a reason free of addresses and secrets.  Contact details are read from the identity
projection only when the channel needs them, and never logged.

The consumer is aiokafka in the thread's own event loop, its empty fetches paced by chargeverse/fetch_backoff.py:
the embedded broker answers an empty fetch at once, and the librdkafka consumer this used before re-fetched
thousands of times a second, so an idle API process burnt half a core (and the broker another 40%) doing nothing.
Sending, the store and the producer stay synchronous; each message is handled in a worker thread so the
consumer's heartbeats go on while a send is retried.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from chargeverse import fetch_backoff
from chargeverse.aiokafka_read import read_batches
from chargeverse.avro import DecodeError, default_codec
from chargeverse.events import derived_id, envelope
from chargeverse.kafka import EventProducer
from chargeverse.settings import Settings
from chargeverse.topics import NOTIFICATIONS
from projections.postgres.migrate import connect
from streams.notifications.senders import Contact, Notification, Sender, SendError, make_sender

log = logging.getLogger(__name__)
SOURCE = "edge:notifications-sender"


def outcome_record(n: Notification, channel: str, error: str | None) -> tuple[str, dict[str, Any]]:
    """(event type, record) of the outcome of sending `n`; the id is derived so a repeat is the same event."""
    etype = "NotificationSent" if error is None else "NotificationFailed"
    rec = envelope(source=SOURCE, correlation_id=n.notification_id, causation_id=n.notification_id,
                   event_id=derived_id(n.notification_id, f"outcome/{etype}"))
    rec.update(notification_id=n.notification_id, account_id=n.account_id, channel=channel)
    if error is not None:
        rec["error"] = error[:300]
    return etype, rec


class NotificationWorker:
    def __init__(self, settings: Settings, sender: Sender | None = None, producer: EventProducer | None = None,
                 attempts: int = 3, schema: str = "public") -> None:
        self.settings = settings
        self.sender = sender or make_sender(settings)
        self.producer = producer or EventProducer(settings.kafka_bootstrap)
        self._owns_producer = producer is None
        self.attempts = attempts
        self.dsn, self.schema = settings.postgres_dsn.get_secret_value(), schema
        self.conn: psycopg.Connection | None = None
        self.codec = default_codec()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifications-sender", daemon=True)

    def start(self) -> "NotificationWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self._owns_producer:
            self.producer.close()
        if self.conn is not None:
            self.conn.close()

    # ---- projections ---------------------------------------------------------------------------------------------
    def _c(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema, autocommit=True)
        return self.conn

    def already_sent(self, notification_id: str) -> bool:
        row = self._c().execute("SELECT status FROM notifications WHERE notification_id = %s",
                                (notification_id,)).fetchone()
        return row is not None and row[0] == "sent"

    def contact(self, account_id: str) -> Contact:
        row = self._c().execute("SELECT email, phone, display_name FROM accounts WHERE account_id = %s",
                                (account_id,)).fetchone()
        return Contact(*row) if row else Contact()

    # ---- one notification ----------------------------------------------------------------------------------------
    def handle(self, n: Notification) -> str | None:
        """Send `n` (unless already sent) and publish the outcome; returns the outcome's event type, or None."""
        if self.already_sent(n.notification_id):
            return None
        error: str | None = None
        for attempt in range(self.attempts):
            try:
                contact = self.contact(n.account_id) if self.sender.needs_contact else Contact()
                self.sender.send(n, contact)
                error = None
                break
            except SendError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a sender bug must become a recorded failure, not a crash loop
                error = f"sender error: {type(exc).__name__}"
            if attempt + 1 < self.attempts and not self._stop.is_set():
                time.sleep(0.2 * 2 ** attempt)
        etype, rec = outcome_record(n, self.sender.channel, error)
        self.producer.publish_sync(NOTIFICATIONS.name, n.account_id, etype, rec)
        if error is not None:
            log.warning("notification %s (account %s) failed: %s", n.notification_id, n.account_id, error)
        return etype

    # ---- the loop ------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._consume())

    async def _consume(self) -> None:
        fetch_backoff.install(self.settings.kafka_empty_fetch_backoff_ms)
        consumer = AIOKafkaConsumer(
            NOTIFICATIONS.name, bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.worker_id}.notifications-sender", enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(100, self.settings.kafka_session_timeout_ms // 3))
        while not self._stop.is_set():
            try:
                await consumer.start()
                break
            except KafkaError as exc:
                log.warning("notifications sender: broker not reachable yet: %s", exc)
                await asyncio.sleep(1)
        else:
            return
        try:
            while not self._stop.is_set():
                batches = await read_batches(consumer, "notifications sender", timeout_ms=500, max_records=100,
                                             pause_s=1.0)
                for tp, msgs in batches.items():
                    for m in msgs:
                        await asyncio.to_thread(self._one, m.value)
                        await self._commit(consumer, tp, m.offset + 1)
        finally:
            await consumer.stop()

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        """Commit past one handled message, retrying until it holds (its outcome is already on the log)."""
        while not self._stop.is_set():
            try:
                await consumer.commit({tp: offset})
                return
            except KafkaError as exc:
                log.warning("notifications sender: commit failed: %s", exc)
                await asyncio.sleep(0.5)

    def _one(self, value: bytes) -> None:
        try:
            etype, rec = self.codec.decode(value)
        except DecodeError as exc:
            log.warning("notifications sender: undecodable message skipped: %s", exc)
            return
        if etype != "NotificationRequested":
            return
        n = Notification.from_record(rec)
        while not self._stop.is_set():
            try:
                self.handle(n)
                return
            except (psycopg.OperationalError, RuntimeError) as exc:  # store or broker down: wait, never drop
                log.warning("notifications sender: %s; retrying", type(exc).__name__)
                time.sleep(1)


def start_worker(settings: Settings) -> NotificationWorker | None:
    """The worker, started, when the settings ask for it in this process; else None."""
    if not settings.notifications_worker:
        return None
    return NotificationWorker(settings).start()
