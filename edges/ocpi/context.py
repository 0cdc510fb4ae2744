"""What every OCPI handler needs, built once per app: settings, the projection pool, the producer, the token box,
the HTTP client for partner calls, and the clock (injectable, so token expiry is testable without sleeping).

`publish_and_wait` is the edge's read-your-writes: publish on `ocpi.inbound`, then wait (bounded) until the named
projection has applied that very offset (chargeverse/consistency.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import httpx
from psycopg_pool import AsyncConnectionPool

from chargeverse.consistency import wait_applied
from chargeverse.kafka import Delivered, EventProducer
from chargeverse.settings import Settings
from chargeverse.topics import OCPI_INBOUND
from edges.ocpi.credtokens import TokenBox
from edges.ocpi.status import OcpiError, Status

log = logging.getLogger(__name__)

PARTNERS = "pg.ocpi_partners"
OBJECTS = "pg.ocpi_objects"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def token_box(settings: Settings) -> TokenBox:
    material = settings.ocpi_secret_key.get_secret_value() or settings.jwt_secret.get_secret_value()
    return TokenBox(material)


@dataclass
class OcpiContext:
    #: this platform's settings (OCPI section: `ocpi_*`; edges/ocpi/config.py derives from them)
    settings: Settings
    pool: AsyncConnectionPool
    producer: EventProducer
    box: TokenBox
    http: httpx.AsyncClient
    clock: Callable[[], datetime] = field(default=_utcnow)

    @property
    def source(self) -> str:
        return f"ocpi-edge:{self.settings.ocpi_platform_id}"

    @property
    def us(self) -> tuple[str, str]:
        return self.settings.ocpi_country_code, self.settings.ocpi_party_id

    async def publish(self, key: str, event_type: str, record: dict[str, Any]) -> Delivered:
        return await self.producer.publish(OCPI_INBOUND.name, key, event_type, record)

    async def wait(self, projection: str, delivered: Delivered, timeout: float | None = None) -> bool:
        return await wait_applied(self.pool, projection, delivered,
                                  timeout=self.settings.ocpi_apply_timeout if timeout is None else timeout)

    async def publish_and_wait(self, key: str, event_type: str, record: dict[str, Any], projection: str,
                               *, required: bool = True) -> Delivered:
        """Publish, then wait until `projection` applied it.  `required`: a timeout is an error (3000, HTTP 503:
        retry) - used where the answer would hand out something not yet usable, like a new token."""
        d = await self.publish(key, event_type, record)
        if not await self.wait(projection, d):
            log.warning("%s not applied by %s within %.1fs (%s)", event_type, projection,
                        self.settings.ocpi_apply_timeout, d)
            if required:
                raise OcpiError(Status.SERVER_ERROR, f"accepted, but not yet applied by {projection}: "
                                "is the OCPI projection running? Retry shortly", 503)
        return d
