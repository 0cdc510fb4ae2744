"""Operators set station tariffs through the API; drivers see them in words on the station."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from support import wait_for

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"


def _h(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('tester-' + role, [role])}"}


def test_operator_sets_a_tariff_and_drivers_see_it_in_words(platform, unique) -> None:  # noqa: ANN001
    sid = f"TAR-{unique}"
    p = EventProducer()
    register(p, sid, name="Tariffed", operator="TestNet", latitude=10.0, longitude=10.0)
    p.close()
    tariff = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())
    r = httpx.put(f"{platform.api}/api/operator/stations/{sid}/tariff", headers=_h("operator"),
                  json={"tariff": tariff, "time_zone": "Europe/Amsterdam"})
    assert r.status_code == 202, r.text
    assert r.json()["currency"] == tariff["currency"] and "kWh" in r.json()["description"]
    got = wait_for("the tariff projected", lambda: (lambda x: x.json() if x.status_code == 200 else None)(
        httpx.get(f"{platform.api}/api/operator/stations/{sid}/tariff", headers=_h("operator"))))
    assert got["tariff_id"] == tariff["id"] and got["tariff"] == tariff and got["time_zone"] == "Europe/Amsterdam"
    station = wait_for("the station with its tariff", lambda: (lambda x: x.json() if x.status_code == 200 and
                                                                x.json().get("tariff") else None)(
        httpx.get(f"{platform.api}/api/stations/{sid}", headers=_h("driver"))))
    assert station["tariff"]["tariff_id"] == tariff["id"] and station["tariff"]["description"]


def test_tariffs_the_engine_refuses_never_reach_the_log(platform, unique) -> None:  # noqa: ANN001
    url = f"{platform.api}/api/operator/stations/TAR-{unique}/tariff"
    bad = {"id": "X1", "currency": "EUR", "elements": [{"price_components": [
        {"type": "ENERGY", "price": -1, "step_size": 1}]}]}
    r = httpx.put(url, headers=_h("operator"), json={"tariff": bad})
    assert r.status_code == 422 and "price" in r.text.lower()
    ok = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())
    r = httpx.put(url, headers=_h("operator"), json={"tariff": ok, "time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and "time zone" in r.text
    assert httpx.put(url, headers=_h("driver"), json={"tariff": ok}).status_code == 403
    assert httpx.put(url, json={"tariff": ok}).status_code == 401
    assert httpx.get(url, headers=_h("operator")).status_code == 404
