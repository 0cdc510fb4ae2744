"""Operator API for our stations' tariffs: set one (validated by the tariff engine) and read the current one."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from chargeverse.kafka import DeliveryError
from chargeverse.tariffs_admin import TariffRejected, tariff_record
from chargeverse.topics import STATIONS
from edges.api.auth import require
from ledger.tariff import describe_tariff
from projections.postgres.station_tariffs import tariff_at_async

router = APIRouter(prefix="/api/operator/stations", tags=["operator: tariffs"])


class TariffIn(BaseModel):
    tariff: dict[str, Any] = Field(..., description="an OCPI 2.2.1 Tariff object")
    time_zone: str = Field("UTC", max_length=64, description="IANA time zone of the station",
                           examples=["Europe/Amsterdam"])
    valid_from: datetime | None = Field(None, description="default: now; sessions starting from then use it")


class TariffOut(BaseModel):
    station_id: str
    tariff_id: str
    currency: str
    time_zone: str
    valid_from: datetime
    description: str = Field(..., description="the tariff in words, as drivers see it")
    tariff: dict[str, Any]


def describe(tariff: dict[str, Any]) -> str:
    try:
        return describe_tariff(tariff)
    except Exception:  # noqa: BLE001 - a description never breaks a read
        return "see tariff"


@router.put("/{station_id}/tariff", response_model=TariffOut, status_code=status.HTTP_202_ACCEPTED,
            summary="Set a station's tariff from an instant on (default now)",
            responses={422: {"description": "the tariff engine refuses the tariff (the reason says why)"}})
async def put_tariff(station_id: str, body: TariffIn, request: Request,
                     who: dict[str, Any] = Depends(require("operator", "admin"))) -> TariffOut:
    if body.valid_from is not None and body.valid_from.tzinfo is None:
        raise HTTPException(422, "valid_from needs a time zone offset")
    try:
        rec = tariff_record(station_id, body.tariff, time_zone=body.time_zone, valid_from=body.valid_from,
                            set_by=str(who["sub"]))
    except TariffRejected as exc:
        raise HTTPException(422, str(exc)) from exc
    try:
        await request.app.state.producer.publish(STATIONS.name, station_id, "StationTariffSet", rec)
    except DeliveryError as exc:
        raise HTTPException(503, "the event log is unavailable; retry") from exc
    return TariffOut(station_id=station_id, tariff_id=rec["tariff_id"], currency=rec["currency"],
                     time_zone=rec["time_zone"], valid_from=rec["valid_from"], description=describe(body.tariff),
                     tariff=body.tariff)


@router.get("/{station_id}/tariff", response_model=TariffOut, summary="The tariff in effect now",
            responses={404: {"description": "no tariff set"}})
async def get_tariff(station_id: str, request: Request,
                     _: dict[str, Any] = Depends(require("operator", "admin"))) -> TariffOut:
    async with request.app.state.pg.connection() as conn:
        t = await tariff_at_async(conn, station_id, datetime.now(timezone.utc))
    if t is None:
        raise HTTPException(404, f"no tariff set for {station_id!r}")
    tariff = t["tariff"] if isinstance(t["tariff"], dict) else json.loads(t["tariff"])
    return TariffOut(station_id=station_id, tariff_id=t["tariff_id"], currency=t["currency"],
                     time_zone=t["time_zone"], valid_from=t["valid_from"], description=describe(tariff),
                     tariff=tariff)
