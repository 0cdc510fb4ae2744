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
