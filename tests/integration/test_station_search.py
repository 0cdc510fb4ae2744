"""Station search filters, through the real log and projections: what a driver looking for a charger relies on."""

from __future__ import annotations

import httpx
import pytest

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from support import wait_for

pytestmark = pytest.mark.integration

def _h() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('tester', ['driver'])}"}


CCS = {"connector_id": 1, "standard": "IEC_62196_T2_COMBO", "max_power_kw": 150.0}
T2 = {"connector_id": 1, "standard": "IEC_62196_T2", "max_power_kw": 22.0}


@pytest.fixture(scope="module")
def site(platform):  # noqa: ANN001, ANN201
    """Four stations on a line north of a point in the Southern Ocean (nothing else near): fast/slow, two nets."""
    base = f"S{platform.api[-5:]}"
    p = EventProducer()
    layout = [("fast-a", 0.000, "NetA", [CCS]), ("slow-a", 0.001, "NetA", [T2]),
              ("fast-b", 0.002, "NetB", [CCS, {**T2, "connector_id": 2}]), ("slow-b", 0.003, "NetB", [T2])]
    ids = {}
    for name, dlat, net, conns in layout:
        sid = f"{base}-{name}"
        register(p, sid, name=name, operator=net, latitude=-60.0 + dlat, longitude=-120.0, connectors=conns)
        ids[name] = sid
    p.close()

    def found():  # noqa: ANN202
        r = httpx.get(f"{platform.api}/api/stations", headers=_h(), params={"near": "-60,-120", "radius": 2000})
        assert r.status_code == 200, r.text
        got = [i["station_id"] for i in r.json()["items"]]
        return got if all(s in got for s in ids.values()) else None

    wait_for("four stations projected", found)
    return ids


def _ids(platform, **params):  # noqa: ANN001, ANN003, ANN202
    r = httpx.get(f"{platform.api}/api/stations", headers=_h(), params=params)
    assert r.status_code == 200, r.text
    return [i["station_id"] for i in r.json()["items"]]


def test_connector_type_and_minimum_power_filter_nearest_first(platform, site) -> None:  # noqa: ANN001
    near = {"near": "-60,-120", "radius": 2000}
    assert _ids(platform, **near, connector="IEC_62196_T2_COMBO") == [site["fast-a"], site["fast-b"]]
    assert _ids(platform, **near, min_power_kw=50) == [site["fast-a"], site["fast-b"]]
    assert _ids(platform, **near, connector="IEC_62196_T2", min_power_kw=50) == []  # same connector must match
    assert _ids(platform, **near, connector=["IEC_62196_T2", "CHADEMO"]) == [site["slow-a"], site["fast-b"],
                                                                              site["slow-b"]]


def test_operator_filter_and_bounding_box(platform, site) -> None:  # noqa: ANN001
    assert _ids(platform, near="-60,-120", radius=2000, operator="NetB") == [site["fast-b"], site["slow-b"]]
    # a box holding only the northern two, sorted from the box centre
    got = _ids(platform, bbox="-59.9985,-120.01,-59.9965,-119.99")
    assert got == [site["fast-b"], site["slow-b"]] or got == [site["slow-b"], site["fast-b"]]
    assert _ids(platform, bbox="-59.9985,-120.01,-59.9965,-119.99", near="-59.997,-120") == [site["slow-b"],
                                                                                             site["fast-b"]]


def test_available_now_uses_live_connector_status(platform, site) -> None:  # noqa: ANN001
    # nobody has reported a status yet: nothing is known to be Available
    assert _ids(platform, near="-60,-120", radius=2000, available=True) == []


@pytest.mark.parametrize("params,why", [
    ({}, "near=lat,lon"),
    ({"bbox": "1,2,3"}, "bbox must be"),
    ({"bbox": "10,0,5,1"}, "inverted"),
    ({"near": "1,1", "connector": "USB_C"}, "unknown connector standard"),
    ({"near": "1,1", "min_power_kw": -1}, ""),
    ({"near": "1,1", "limit": 1000}, ""),
])
def test_bad_search_queries_get_422_with_a_reason(platform, params, why) -> None:  # noqa: ANN001
    r = httpx.get(f"{platform.api}/api/stations", headers=_h(), params=params)
    assert r.status_code == 422
    assert why in str(r.json()["detail"])


def test_a_page_reads_as_the_documented_station_objects(platform, site) -> None:  # noqa: ANN001
    """Postgres writes the page (edges/api/stations.py): what a client parses must be the documented `Station`,
    every field in order, with the values the projection holds."""
    from edges.api.stations import Station, StationPage

    r = httpx.get(f"{platform.api}/api/stations", headers=_h(), params={"near": "-60,-120", "radius": 2000,
                                                                          "limit": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    page = r.json()
    StationPage.model_validate(page)
    assert (page["limit"], page["offset"]) == (2, 0)
    first, second = page["items"]
    assert list(first) == list(Station.model_fields)
    assert (first["station_id"], first["name"], first["operator"]) == (site["fast-a"], "fast-a", "NetA")
    assert (first["latitude"], first["longitude"], first["distance_m"]) == (-60.0, -120.0, 0.0)
    assert first["connectors"] == [{"connector_id": 1, "standard": "IEC_62196_T2_COMBO", "max_power_kw": 150.0,
                                    "status": "Unknown", "error_code": None, "status_at": None}]
    assert all(first[k] is None for k in ("tariff", "max_energy_price_incl_vat", "ratings", "photos", "forecast"))
    assert second["station_id"] == site["slow-a"] and 105 < second["distance_m"] < 118  # 0.001 deg of latitude
    empty = httpx.get(f"{platform.api}/api/stations", headers=_h(), params={"near": "-60,-120", "radius": 2000,
                                                                              "offset": 4}).json()
    assert empty == {"items": [], "limit": 20, "offset": 4}


def test_a_token_accepted_before_stops_working_when_it_expires(platform, site) -> None:  # noqa: ANN001
    """The API keeps tokens it verified (edges/api/auth.py, VerifiedTokens): a kept token must still expire."""
    import time

    import jwt

    token = issue("tester", ["driver"], ttl_seconds=2)
    h = {"Authorization": f"Bearer {token}"}
    params = {"near": "-60,-120", "radius": 2000}
    assert httpx.get(f"{platform.api}/api/stations", headers=h, params=params).status_code == 200
    assert httpx.get(f"{platform.api}/api/stations", headers=h, params=params).status_code == 200
    time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.2)
    r = httpx.get(f"{platform.api}/api/stations", headers=h, params=params)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
