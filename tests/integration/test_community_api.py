"""Ratings, reviews and photos of stations through the running platform (API -> `community` -> pg.community;
photo bytes in Mongo, content-addressed), and the price ceiling of station search.

What a user would notice: a rating shows at once (read-your-writes) in the station's summary; rating again
replaces the old one; review text comes back without markup; a photo comes back byte for byte, and anything that
is not a JPEG/PNG/WebP of the declared type or is too big is refused (415/413) and stored nowhere; drivers cannot
delete each other's photos or reach moderation (403); a moderator's hide removes content from every view; bad
ratings are a 422.  Search with `max_price` keeps exactly the stations whose energy price incl. VAT is under it.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import register
from chargeverse.tariffs_admin import set_tariff
from chargeverse.tokens import issue
from support import events, wait_for, TARIFFS_SINCE

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh, VAT 10 %
PASSWORD = "correct horse battery staple"


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('admin-community', ['admin'])}"}


def _station(sid: str, lat: float, lon: float, tariff: dict | None = None) -> None:
    p = EventProducer()
    register(p, sid, name=f"Station {sid}", operator="CommunityNet", latitude=lat, longitude=lon)
    if tariff is not None:
        set_tariff(p, sid, tariff, time_zone="Europe/Amsterdam", set_by="test", valid_from=TARIFFS_SINCE)
    p.close()


def _driver(api: str) -> tuple[dict[str, str], str]:
    email = f"c-{uuid.uuid4().hex[:8]}@example.com"
    r = httpx.post(f"{api}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
    assert r.status_code in (201, 202), r.text
    tok = wait_for("login", lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        httpx.post(f"{api}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)))
    return {"Authorization": f"Bearer {tok['access_token']}"}, tok["account_id"]


def _image(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def station(platform) -> str:  # noqa: ANN001
    sid = f"COM-{uuid.uuid4().hex[:8]}"
    _station(sid, 48.1, 11.5)
    wait_for("the station projected", lambda: httpx.get(f"{platform.api}/api/stations/{sid}",
                                                        headers=admin()).status_code == 200)
    return sid


def test_ratings_and_reviews_show_at_once_replace_and_are_sanitised(platform, station) -> None:  # noqa: ANN001
    api = platform.api
    one, acc_one = _driver(api)
    two, _ = _driver(api)
    r = httpx.put(f"{api}/api/stations/{station}/reviews/mine", headers=one,
                  json={"rating": 4, "text": "<script>x()</script><b>Fast</b> & clean\u202e"})
    assert r.status_code == 200, r.text
    assert r.json()["rating"] == 4 and r.json()["text"] == "x()Fast &amp; clean" and r.json()["mine"]
    assert httpx.put(f"{api}/api/stations/{station}/reviews/mine", headers=two, json={"rating": 5}).status_code == 200
    detail = httpx.get(f"{api}/api/stations/{station}", headers=one).json()
    assert detail["ratings"] == {"average": 4.5, "count": 2}
    # rating again replaces: still two ratings
    assert httpx.put(f"{api}/api/stations/{station}/reviews/mine", headers=one,
                     json={"rating": 2, "text": None}).status_code == 200
    page = httpx.get(f"{api}/api/stations/{station}/reviews", headers=two).json()
    assert page["summary"] == {"average": 3.5, "count": 2}
    assert sorted((i["rating"], i["mine"]) for i in page["items"]) == [(2, False), (5, True)]
    # refusals: bad ratings and text, unknown station, nothing published for them
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "five"}, {"text": "no rating"},
                {"rating": 3, "text": "x" * 2001}):
        assert httpx.put(f"{api}/api/stations/{station}/reviews/mine", headers=one, json=bad).status_code == 422
    assert httpx.put(f"{api}/api/stations/NOPE-{station}/reviews/mine", headers=one,
                     json={"rating": 3}).status_code == 404
    posted = events("community", lambda t, rec: t == "StationReviewPosted" and rec["station_id"] == station)
    assert [rec["rating"] for _, rec in posted] == [4, 5, 2]
    # delete my own; a driver is no moderator; an admin hides the other one
    assert httpx.delete(f"{api}/api/stations/{station}/reviews/mine", headers=one).status_code == 204
    assert httpx.delete(f"{api}/api/stations/{station}/reviews/mine", headers=one).status_code == 404
    hide = f"{api}/api/admin/community/stations/{station}/reviews"
    assert httpx.post(f"{hide}/{acc_one}/hide", headers=two, json={}).status_code == 403
    two_id = httpx.get(f"{api}/api/me", headers=two).json()["account_id"]
    r = httpx.post(f"{hide}/{two_id}/hide", headers=admin(), json={"reason": "spam <b>link</b>"})
    assert r.status_code == 200 and r.json()["hidden"] is True
    assert httpx.get(f"{api}/api/stations/{station}/reviews", headers=two).json()["summary"] == \
        {"average": None, "count": 0}


def test_photos_are_checked_stored_by_content_and_moderated(platform, station) -> None:  # noqa: ANN001
    api = platform.api
    owner, _ = _driver(api)
    other, _ = _driver(api)
    png = _image("PNG")
    r = httpx.post(f"{api}/api/stations/{station}/photos", headers={**owner, "Content-Type": "image/png"},
                   content=png)
    assert r.status_code == 201, r.text
    photo = r.json()
    assert photo["sha256"] == hashlib.sha256(png).hexdigest() and photo["size_bytes"] == len(png)
    got = httpx.get(f"{api}{photo['url']}", headers=other)
    assert got.status_code == 200 and got.content == png and got.headers["content-type"] == "image/png"
    assert [p["photo_id"] for p in httpx.get(f"{api}/api/stations/{station}", headers=other).json()["photos"]] \
        == [photo["photo_id"]]
    added = events("community", lambda t, rec: t == "StationPhotoAdded" and rec["photo_id"] == photo["photo_id"])
    assert added[0][1]["sha256"] == photo["sha256"] and added[0][1]["content_type"] == "image/png"
    webp = _image("WEBP")
    assert httpx.post(f"{api}/api/stations/{station}/photos", headers={**owner, "Content-Type": "image/webp"},
                      content=webp).status_code == 201

    before = len(events("community", lambda t, rec: t == "StationPhotoAdded" and rec["station_id"] == station))
    for ctype, body, code in [("image/jpeg", png, 415),                 # declared JPEG, bytes are PNG
                              ("image/png", b"<svg onload='x()'/>", 415),  # not an image
                              ("image/gif", _image("GIF"), 415),          # a type we do not take
                              ("text/plain", png, 415),
                              ("image/png", png + b"\0" * (5 * 1024 * 1024), 413)]:  # over the 5 MiB limit
        r = httpx.post(f"{api}/api/stations/{station}/photos", headers={**owner, "Content-Type": ctype},
                       content=body, timeout=60)
        assert r.status_code == code, (ctype, r.status_code, r.text)
    after = len(events("community", lambda t, rec: t == "StationPhotoAdded" and rec["station_id"] == station))
    assert after == before  # refused photos left nothing on the log

    url = f"{api}/api/stations/{station}/photos/{photo['photo_id']}"
    assert httpx.delete(url, headers=other).status_code == 403
    assert httpx.post(f"{api}/api/admin/community/stations/{station}/photos/{photo['photo_id']}/hide",
                      headers=other, json={}).status_code == 403
    r = httpx.post(f"{api}/api/admin/community/stations/{station}/photos/{photo['photo_id']}/hide", headers=admin(),
                   json={"reason": "not this station"})
    assert r.status_code == 200
    assert httpx.get(url, headers=owner).status_code == 404
    assert photo["photo_id"] not in [p["photo_id"] for p in
                                     httpx.get(f"{api}/api/stations/{station}/photos", headers=owner).json()]


def test_search_price_ceiling_keeps_stations_under_the_energy_price_incl_vat(platform) -> None:  # noqa: ANN001
    api = platform.api
    tag = uuid.uuid4().hex[:6]
    cheap, dear, unpriced = f"PR-C-{tag}", f"PR-D-{tag}", f"PR-U-{tag}"
    dear_tariff = json.loads(json.dumps(TARIFF))
    dear_tariff["id"] = f"dear-{tag}"
    for el in dear_tariff["elements"]:
        for pc in el["price_components"]:
            if pc["type"] == "ENERGY":
                pc["price"] = 0.60  # 0.66 incl. 10 % VAT
    _station(cheap, -33.9001, 18.4001, TARIFF)
    _station(dear, -33.9002, 18.4002, dear_tariff)
    _station(unpriced, -33.9003, 18.4003)

    def search(**params: object) -> list[str]:
        r = httpx.get(f"{api}/api/stations", headers=admin(), params={"near": "-33.9,18.4", "radius": 2000, **params})
        assert r.status_code == 200, r.text
        return [s["station_id"] for s in r.json()["items"]]

    wait_for("stations and tariffs projected", lambda: set(search(max_price="1")) == {cheap, dear})
    assert set(search()) == {cheap, dear, unpriced}
    assert search(max_price="0.30") == [cheap]      # 0.25 + 10 % = 0.275
    assert search(max_price="0.275") == [cheap]     # the ceiling is inclusive
    assert search(max_price="0.27") == []
    assert search(max_price="0.30", currency="GBP") == []
    item = httpx.get(f"{api}/api/stations", headers=admin(),
                     params={"near": "-33.9,18.4", "radius": 2000, "max_price": "0.5"}).json()["items"][0]
    assert item["max_energy_price_incl_vat"] == "0.2750"
    for bad in ({"max_price": "-1"}, {"max_price": "abc"}, {"max_price": "0.3", "currency": "euro"},
                {"max_price": "NaN"}):
        assert httpx.get(f"{api}/api/stations", headers=admin(),
                         params={"near": "-33.9,18.4", **bad}).status_code == 422, bad
