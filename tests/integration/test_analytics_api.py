"""Admin analytics from the projections, through the running platform: a real OCPP 1.6 charger charges a driver
for one hour at a station with a tariff; the analytics then show that session, its energy in the hour it ran, its
revenue incl. VAT, the station's utilisation, the peak hour and the CO2 avoided by the documented method.
Drivers are refused (403) and bad windows are a 422."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest
from ocpp.v16 import call

from chargeverse.simulator import boot
from chargeverse.tokens import issue
from support import wait_for
from test_money_path import _connect, _driver_with_card, _station

pytestmark = pytest.mark.integration
DAY = {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}


async def _session(cp, id_tag: str, start: str, stop: str, wh: int) -> None:  # noqa: ANN001
    started = await cp.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=0, timestamp=start))
    await cp.call(call.StopTransaction(meter_stop=wh, timestamp=stop, transaction_id=started.transaction_id,
                                       reason="Local", id_tag=id_tag))


async def test_analytics_show_sessions_energy_revenue_utilisation_peaks_and_co2(platform, unique) -> None:  # noqa: ANN001
    uid = f"A{unique[-7:]}".upper()
    await _driver_with_card(platform.api, uid)
    spec = _station(f"an-{unique}")
    admin = {"Authorization": f"Bearer {issue('admin-analytics', ['admin'])}"}
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        # 10 kWh from 10:30 to 12:30 (energy spread 2.5 / 5 / 2.5 over three hours), then 4 kWh 18:00-18:30
        await _session(cp, uid, "2026-11-27T10:30:00Z", "2026-11-27T12:30:00Z", 10_000)
        await _session(cp, uid, "2026-11-27T18:00:00Z", "2026-11-27T18:30:00Z", 4_000)
    finally:
        task.cancel()
        await ws.close()
    url = f"{platform.api}/api/admin/analytics"
    params = {**DAY, "station_id": spec.station_id}

    def ready():  # noqa: ANN202
        r = httpx.get(url, params=params, headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        # both sessions projected and both priced (the CDRs arrive after the sessions)
        return body if body["totals"]["sessions"] == 2 and body["totals"]["revenue"] == {"EUR": "3.85"} else None

    body = wait_for("both sessions priced and in the analytics", ready, timeout=60)
    t = body["totals"]
    assert t["energy_kwh"] == "14.000" and t["stations"] == 1
    # revenue: 14 kWh x 0.25 EUR + 10 % VAT = 3.85 (the wait above)
    assert Decimal(t["co2_avoided_kg"]) == Decimal("14") * Decimal("0.575")
    station = body["per_station"][0]
    connectors = station["connectors"]
    assert station["station_id"] == spec.station_id
    assert station["utilisation"] == round(2.5 * 3600 / (connectors * 86400), 4)
    hours = {h["hour"][11:13]: h for h in body["per_hour"]}
    assert sorted(hours) == ["10", "11", "12", "18"]
    assert [hours[h]["energy_kwh"] for h in ("10", "11", "12", "18")] == ["2.500", "5.000", "2.500", "4.000"]
    assert [hours[h]["sessions"] for h in ("10", "11", "12", "18")] == [1, 0, 0, 1]
    assert hours["10"]["revenue"] == {"EUR": "2.75"} and hours["18"]["revenue"] == {"EUR": "1.10"}
    assert hours["11"]["utilisation"] == round(1 / connectors, 4)
    assert body["peak_hours_utc"] == [11, 10, 12]      # whole hour 11 busiest; 10, 12 and 18 half each, earlier first
    assert body["co2_method"]["grid_g_per_kwh"] == "250"

    # the whole platform: our station is in it
    every = httpx.get(url, params=DAY, headers=admin, timeout=30).json()
    assert spec.station_id in [s["station_id"] for s in every["per_station"]]
    # a window that ends before the sessions sees none of them
    early = httpx.get(url, params={"from": "2026-11-27T00:00:00Z", "to": "2026-11-27T10:00:00Z",
                                   "station_id": spec.station_id}, headers=admin).json()
    assert early["totals"]["sessions"] == 0 and early["per_hour"] == []

    driver = await _driver_with_card(platform.api, f"B{unique[-7:]}".upper())
    assert httpx.get(url, params=params, headers=driver).status_code == 403
    assert httpx.get(url, params=params).status_code in (401, 403)
    for bad in ({"from": "2026-11-28T00:00:00Z", "to": "2026-11-27T00:00:00Z"},
                {"from": "2026-01-01T00:00:00Z", "to": "2026-11-27T00:00:00Z"},
                {"from": "2026-11-27T00:00:00"}, {"to": "yesterday"}, {"station_id": "bad id!"}):
        assert httpx.get(url, params=bad, headers=admin).status_code == 422, bad
