"""The station search's plain path (edges/api/stations.py, `SearchRoute`): the app's everyday searches skip
FastAPI's parameter machinery, and must answer exactly what the declared route answers, JWT check included."""

from __future__ import annotations

import httpx
import pytest

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from edges.api.stations import plain_search
from support import wait_for

pytestmark = pytest.mark.integration

CENTRE = "-58,-110"  # the Southern Ocean: nothing else near


def _h(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('plain-tester', list(roles or ['driver']))}"}


@pytest.fixture(scope="module")
def three(platform):  # noqa: ANN001, ANN201
    base = f"P{platform.api[-5:]}"
    p = EventProducer()
    ids = []
    for i, dlat in enumerate((0.0, 0.002, 0.004)):
        sid = f"{base}-{i}"
        register(p, sid, name=f"plain {i}", operator="NetP", latitude=-58.0 + dlat, longitude=-110.0,
                 connectors=[{"connector_id": 1, "standard": "IEC_62196_T2", "max_power_kw": 22.0}])
        ids.append(sid)
    p.close()

    def found():  # noqa: ANN202
        r = httpx.get(f"{platform.api}/api/stations", headers=_h(), params={"near": CENTRE, "radius": 2000})
        got = [i["station_id"] for i in r.json()["items"]] if r.status_code == 200 else []
        return got if all(s in got for s in ids) else None

    wait_for("three stations projected", found)
    return ids


@pytest.mark.parametrize("query", [
    f"near={CENTRE}&limit=2",
    f"near={CENTRE}&radius=2000&offset=1",
    "bbox=-58.001,-110.01,-57.997,-109.99&limit=20",
])
def test_a_plain_search_answers_what_the_declared_route_answers(platform, three, query) -> None:  # noqa: ANN001
    declared = query + "&available=false"  # the default filter, spelled out: FastAPI's route reads this one
    assert plain_search(query.encode()) is not None and plain_search(declared.encode()) is None
    h = _h()
    fast = httpx.get(f"{platform.api}/api/stations?{query}", headers=h)
    slow = httpx.get(f"{platform.api}/api/stations?{declared}", headers=h)
    assert fast.status_code == slow.status_code == 200
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert fast.content == slow.content
    assert [i["station_id"] for i in fast.json()["items"]][:1] in ([three[0]], [three[1]])


def test_a_plain_search_still_needs_a_valid_token_with_a_reader_role(platform, three) -> None:  # noqa: ANN001
    url = f"{platform.api}/api/stations?near={CENTRE}&limit=2"
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer not-a-jwt"}):
        fast = httpx.get(url, headers=headers)
        slow = httpx.get(url + "&available=false", headers=headers)
        assert fast.status_code == 401, (headers, fast.text)
        assert (fast.json(), fast.headers.get("www-authenticate")) == (slow.json(),
                                                                       slow.headers.get("www-authenticate"))
    token = _h()["Authorization"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert httpx.get(url, headers={"Authorization": forged}).status_code == 401
    assert httpx.get(url, headers=_h("auditor")).status_code == 403
    assert httpx.get(url, headers=_h("fleet_manager")).status_code == 200
