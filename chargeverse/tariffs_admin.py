"""Setting our stations' tariffs (operators): validate with the tariff engine, publish StationTariffSet.

A tariff the engine cannot interpret never reaches the log: pricing must never meet a tariff it refuses.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.topics import STATIONS
from ledger.tariff import TariffEngineError, parse_tariff


class TariffRejected(ValueError):
    """The tariff (or its time zone) cannot be used; the message says why."""


def tariff_record(station_id: str, tariff: dict[str, Any], *, time_zone: str = "UTC",
                  valid_from: datetime | None = None, set_by: str = "cli") -> dict[str, Any]:
    """The StationTariffSet record for `tariff` (an OCPI 2.2.1 Tariff object), after validating it."""
    try:
        parsed = parse_tariff(tariff)
    except TariffEngineError as exc:
        raise TariffRejected(str(exc)) from exc
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TariffRejected(f"unknown time zone {time_zone!r}; use an IANA name such as Europe/Amsterdam") \
            from exc
    if not station_id or len(station_id) > 48:
        raise TariffRejected("station id must be 1-48 characters")
    at = valid_from or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise TariffRejected("valid_from needs a time zone offset")
    rec = envelope(source=f"tariffs/{set_by}", correlation_id=station_id)
    rec.update(station_id=station_id, tariff_id=parsed.id, tariff=json.dumps(tariff, sort_keys=True),
               currency=parsed.currency, time_zone=time_zone, valid_from=at, set_by=set_by)
    return rec


def set_tariff(producer: EventProducer, station_id: str, tariff: dict[str, Any], **kw: Any) -> dict[str, Any]:
    rec = tariff_record(station_id, tariff, **kw)
    producer.publish_sync(STATIONS.name, station_id, "StationTariffSet", rec)
    return rec
