"""The receiver interfaces over real HTTP: every example object of OCPI 2.2.1 is accepted by its endpoint and
survives the round trip push -> log -> projection -> GET unchanged; bad input gets the OCPI answer and changes
nothing; the CPO Locations sender pages with a capped limit; a replay rebuilds the same projection."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import registration
from edges.ocpi.context import token_box
from edges.ocpi.credtokens import authorization, new_token, token_hash
from edges.ocpi.events import exchanged, onboarded
from edges.ocpi.local import LocalParty
from projections.postgres.ocpi_fold import loads
from projections.postgres.ocpi_objects import OcpiObjectsProjection
from projections.postgres.stations import StationsProjection
from projections.replay import replay
from support import events, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"


def ex(name: str) -> str:
    return (EXAMPLES / name).read_text()


class Partner:
    def __init__(self, party: LocalParty, token: str, partner_id: str, plain: bool = False) -> None:
        self.party, self.token, self.partner_id, self.plain = party, token, partner_id, plain
        self.http = httpx.Client(base_url=party.url, timeout=30)

    def h(self, **extra: str) -> dict[str, str]:
        return {"Authorization": authorization(self.token, self.plain), "Content-Type": "application/json", **extra}

    def put(self, path: str, body: str, **kw: object) -> httpx.Response:
        return self.http.put(path, content=body, headers=self.h(), **kw)

    def patch(self, path: str, body: str) -> httpx.Response:
        return self.http.patch(path, content=body, headers=self.h())

    def post(self, path: str, body: str) -> httpx.Response:
        return self.http.post(path, content=body, headers=self.h())

    def get(self, path: str, **kw: object) -> httpx.Response:
        return self.http.get(path, headers=self.h(), **kw)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.h())


def connect(party: LocalParty, partner_id: str, roles: list[tuple[str, str, str]], plain: bool = False,
            endpoints: list[dict[str, str]] | None = None) -> Partner:
    """A registered partner, made by publishing its onboarding and registration (the test holds its token)."""
    token = new_token()
    o, box = party.settings, token_box(party.settings)
    creds = {"token": "their-token", "url": "http://127.0.0.1:9/ocpi/versions",
             "roles": [{"role": r, "country_code": cc, "party_id": pid, "business_details": {"name": pid}}
                       for r, cc, pid in roles]}
    producer = EventProducer()
    producer.publish_sync("ocpi.inbound", partner_id, "OcpiPartnerOnboarded", onboarded(
        platform_id=o.ocpi_platform_id, partner_id=partner_id, name=partner_id, source="test", correlation_id="t",
        plain_token=plain))
    producer.publish_sync("ocpi.inbound", partner_id, "OcpiPartnerRegistered", exchanged(
        "OcpiPartnerRegistered", platform_id=o.ocpi_platform_id, partner_id=partner_id, initiated_by="PARTNER",
        our_token_hash=token_hash(token), their_token_sealed=box.seal("their-token", partner_id),
        their_versions_url=creds["url"], version="2.2.1",
        endpoints=endpoints or [{"identifier": "locations", "role": "SENDER", "url": "http://127.0.0.1:9/l"}],
        credentials=creds, grace_seconds=0, source="test", correlation_id="t"))
    producer.close()
    p = Partner(party, token, partner_id, plain)
    wait_for(f"{partner_id} registered", lambda: p.get("/2.2.1/credentials").status_code == 200)
    return p


@pytest.fixture(scope="module")
def party(settings, topics):  # noqa: ANN001, ANN201
    u = uuid.uuid4().hex[:8]
    p = LocalParty.make(settings, platform_id=f"r-{u}", schema=f"ocpi_r_{u}", country_code="NL", party_id="CVS",
                        roles="EMSP,CPO", name="receiver", page_limit=3)
    p.extra_projections = [StationsProjection(settings.postgres_dsn.get_secret_value(), f"ocpi_r_{u}")]
    p.start()
    yield p
    p.stop()
    assert not p.follower.errors, p.follower.errors


@pytest.fixture(scope="module")
def hub(party):  # noqa: ANN001, ANN201
    """A hub connection: it may push for any party (the examples come from many)."""
    return connect(party, "hub", [("HUB", "DE", "HUB")])


@pytest.fixture(scope="module")
def tnm(party):  # noqa: ANN001, ANN201
    """A direct CPO connection speaking only for NL/TNM."""
    return connect(party, "tnm", [("CPO", "NL", "TNM")])


def ok(r: httpx.Response, http: int = 200) -> dict:
    assert r.status_code == http, r.text
    body = r.json()
    assert body["status_code"] == 1000, body
    return body


def refused(r: httpx.Response, status: int, http: int = 200) -> dict:
    assert r.status_code == http, r.text
    body = r.json()
    assert body["status_code"] == status, body
    return body


def served(r: httpx.Response) -> object:
    assert r.status_code == 200, r.text
    return loads(r.text)["data"]


LOCATIONS = sorted(p.name for p in EXAMPLES.glob("location_example*.json"))
LOC = "/emsp/2.2.1/locations"


# ---- every example, round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOCATIONS)
def test_location_examples_round_trip_verbatim(hub, name) -> None:  # noqa: ANN001
    raw = ex(name)
    obj = loads(raw)
    url = f"{LOC}/{obj['country_code']}/{obj['party_id']}/{obj['id']}"
    ok(hub.put(url, raw))
    r = hub.get(url)
    assert raw in r.text  # byte for byte
    assert served(r) == obj
    uid = obj["evses"][0]["uid"]
    assert served(hub.get(f"{url}/{uid}")) == obj["evses"][0]
    assert served(hub.get(f"{url}/{uid}/{obj['evses'][0]['connectors'][0]['id']}")) == \
        obj["evses"][0]["connectors"][0]


@pytest.mark.parametrize("name, field", [
    ("location_energymix_example_complete.json", "energy_mix"),
    ("location_energymix_example_energy_provider.json", "energy_mix"),
    ("location_energymix_example_simple.json", "energy_mix"),
    ("location_regularhours_example.json", "opening_times"),
    ("location_hours_247_open_exception_closing.json", None),
    ("location_hours_opening_hours_with_exceptional_closing.json", None),
    ("location_hours_opening_hours_with_exceptional_opening.json", None),
])
def test_location_fragment_examples_round_trip_inside_a_location(hub, name, field) -> None:  # noqa: ANN001
    frag = loads(ex(name))
    loc = loads(ex("location_example.json"))
    loc["id"] = "FRAG-" + name[:20]
    if field is None:
        loc["opening_times"] = frag
    else:
        loc[field] = frag[field]
    from projections.postgres.ocpi_fold import dumps

    url = f"{LOC}/BE/BEC/{loc['id']}"
    ok(hub.put(url, dumps(loc)))
    assert served(hub.get(url)) == loc


def test_location_push_examples_evse_put_and_patches(hub) -> None:  # noqa: ANN001
    base = f"{LOC}/BE/BEC/LOC1"
    ok(hub.put(base, ex("location_example.json")))
    # PUT an EVSE (the add-EVSE example: uid 3256 replaces the EVSE of that uid)
    evse = loads(ex("location_put_example_add_evse.json"))
    ok(hub.put(f"{base}/3256", ex("location_put_example_add_evse.json")))
    assert served(hub.get(f"{base}/3256")) == evse
    loc = served(hub.get(base))
    assert loc["last_updated"] == evse["last_updated"] and [e["uid"] for e in loc["evses"]] == ["3256", "3257"]
    # PATCH: status of an EVSE, tariff of a connector, the location's name, removing an EVSE
    ok(hub.patch(f"{base}/3257", ex("location_patch_example_status.json")))
    assert served(hub.get(f"{base}/3257"))["status"] == "CHARGING"
    ok(hub.patch(f"{base}/3257/1", ex("location_patch_example_tariff.json")))
    assert served(hub.get(f"{base}/3257/1"))["tariff_ids"] == ["15"]
    assert served(hub.get(f"{base}/3257/1"))["standard"] == "IEC_62196_T2"  # untouched fields stay
    ok(hub.patch(base, ex("location_patch_example_location.json")))
    loc = served(hub.get(base))
    assert loc["name"] == "Interparking Gent Zuid" and loc["address"] == "F.Rooseveltlaan 3A"
    ok(hub.patch(f"{base}/3256", ex("location_patch_example_remove_evse.json")))
    assert served(hub.get(f"{base}/3256"))["status"] == "REMOVED"
    # the warnings of the non-conforming EVSE example rode along on its event
    evs = events("ocpi.inbound", lambda t, r: t == "OcpiObjectReceived" and r["partner_id"] == "hub"
                 and r["platform_id"] == hub.party.settings.ocpi_platform_id and r["evse_uid"] == "3256"
                 and r["method"] == "PUT")
    assert evs and any("power_type" in w for w in evs[-1][1]["warnings"])


def test_session_examples_round_trip_and_patch(hub) -> None:  # noqa: ANN001
    for name in ("session_example_1_simple_start.json", "session_example_2_short_finished.json"):
        raw = ex(name)
        obj = loads(raw)
        url = f"/emsp/2.2.1/sessions/{obj['country_code']}/{obj['party_id']}/{obj['id']}"
        ok(hub.put(url, raw))
        assert raw in hub.get(url).text
    url = "/emsp/2.2.1/sessions/NL/STK/101"
    ok(hub.patch(url, ex("session_patch_example_charging_period.json")))
    ok(hub.patch(url, ex("session_patch_example_total_cost.json")))
    got = served(hub.get(url))
    want = {**loads(ex("session_example_1_simple_start.json")),
            **loads(ex("session_patch_example_charging_period.json")),
            **loads(ex("session_patch_example_total_cost.json"))}
    assert got == want
    assert str(got["total_cost"]["excl_vat"]) == "0.60"  # money keeps its spelling


def test_cdr_example_posted_and_served_back_at_the_location_given(hub) -> None:  # noqa: ANN001
    raw = ex("cdr_example.json")
    r = hub.post("/emsp/2.2.1/cdrs", raw)
    ok(r, 201)
    where = r.headers["Location"]
    assert where.startswith(hub.party.url)
    got = hub.http.get(where, headers=hub.h())
    assert raw in got.text and served(got) == loads(raw)
    ok(hub.post("/emsp/2.2.1/cdrs", raw))  # the same CDR again: an idempotent retry
    other = loads(raw)
    other["total_cost"]["excl_vat"] = 5
    from projections.postgres.ocpi_fold import dumps

    body = refused(hub.post("/emsp/2.2.1/cdrs", dumps(other)), 2001)
    assert "cannot be replaced" in body["status_message"]
    refused(hub.post("/emsp/2.2.1/cdrs", '{"id": "half a CDR'), 2001, 400)
    refused(hub.post("/emsp/2.2.1/cdrs", '{"id": "no-party"}'), 2001)
    refused(hub.post("/emsp/2.2.1/cdrs", dumps(dict(other, id="CDR-BAD", cdr_location="Gent"))), 2001)
    assert served(hub.http.get(where, headers=hub.h())) == loads(raw)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("tariff*.json")))
def test_tariff_examples_round_trip(hub, name) -> None:  # noqa: ANN001
    raw = ex(name)
    obj = loads(raw)
    url = f"/emsp/2.2.1/tariffs/{obj['country_code']}/{obj['party_id']}/{obj['id']}"
    ok(hub.put(url, raw))
    assert raw in hub.get(url).text


def test_tariff_delete(hub) -> None:  # noqa: ANN001
    url = "/emsp/2.2.1/tariffs/DE/ALL/DEL-1"
    obj = dict(loads(ex("tariff_1_simple_2hour.json")), id="DEL-1")
    from projections.postgres.ocpi_fold import dumps

    ok(hub.put(url, dumps(obj)))
    ok(hub.delete(url))
    refused(hub.get(url), 2001, 404)
    refused(hub.delete(url), 2001, 404)


TOKENS = ["token_example_1_app_user.json", "token_example_2_full_rfid.json", "token_put_example.json"]


@pytest.mark.parametrize("name", TOKENS)
def test_token_examples_round_trip_on_the_cpo_receiver(hub, name) -> None:  # noqa: ANN001
    raw = ex(name)
    obj = loads(raw)
    url = f"/cpo/2.2.1/tokens/{obj['country_code']}/{obj['party_id']}/{obj['uid']}"
    ok(hub.put(url, raw))  # no ?type=: the body's type
    r = hub.get(url, params={"type": obj["type"]})
    assert raw in r.text


def test_token_patch_and_envelope_examples(hub) -> None:  # noqa: ANN001
    url = "/cpo/2.2.1/tokens/NL/TNM/012345678"
    ok(hub.put(url, ex("token_put_example.json")))
    ok(hub.patch(url, ex("token_patch_example.json")))
    got = served(hub.get(url))
    assert got["valid"] is False and got["last_updated"] == "2019-06-19T02:11:11Z" and got["whitelist"] == "ALWAYS"
    refused(hub.patch("/cpo/2.2.1/tokens/NL/TNM/nobody", ex("token_patch_example.json")), 2004, 404)
    from projections.postgres.ocpi_fold import dumps

    for name in ("transport_and_format_get_token_example.json", "transport_and_format_get_token_list_example.json"):
        data = loads(ex(name))["data"]
        for tok in data if isinstance(data, list) else [data]:
            u = f"/cpo/2.2.1/tokens/{tok['country_code']}/{tok['party_id']}/{tok['uid']}"
            ok(hub.put(u, dumps(tok), params={"type": tok["type"]}))
            assert served(hub.get(u, params={"type": tok["type"]})) == tok


# ---- bad input -------------------------------------------------------------------------------------------------


def test_missing_wrong_or_unregistered_tokens_are_401_with_an_ocpi_body(party, hub) -> None:  # noqa: ANN001
    url = f"{party.url}{LOC}/BE/BEC/LOC1"
    for headers in ({}, {"Authorization": "Token"}, {"Authorization": authorization(new_token())},
                    {"Authorization": "Bearer " + hub.token},
                    {"Authorization": authorization(hub.token, plain=True)}):  # bare, hub is not plain_token
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401 and r.json()["status_code"] == 2001, (headers, r.text)
        assert "timestamp" in r.json()


def test_a_plain_token_partner_may_send_its_token_unencoded(party) -> None:  # noqa: ANN001
    p = connect(party, "plain", [("CPO", "NL", "PLN")], plain=True)
    assert p.get("/2.2.1/credentials").status_code == 200
    r = httpx.get(f"{party.url}/2.2.1/credentials", headers={"Authorization": authorization(p.token)})
    assert r.status_code == 200  # Base64 always works too


def test_invalid_json_and_schema_errors_are_2001_and_keep_the_previous_good_data(hub) -> None:  # noqa: ANN001
    url = f"{LOC}/BE/BEC/GOOD-1"
    good = loads(ex("location_example.json"))
    good["id"] = "GOOD-1"
    from projections.postgres.ocpi_fold import dumps

    ok(hub.put(url, dumps(good)))
    body = refused(hub.put(url, '{"id": "GOOD-1", '), 2001, 400)
    assert "not JSON" in body["status_message"]
    bad = copy.deepcopy(good)
    bad["coordinates"]["latitude"] = "north"
    bad["evses"][0]["status"] = "DANCING"
    body = refused(hub.put(url, dumps(bad)), 2001)
    assert "coordinates" in body["status_message"] and "evses[0].status" in body["status_message"]
    refused(hub.patch(url, '{"name": "no last_updated"}'), 2001)
    refused(hub.patch(f"{url}/3256", '{"status": "FLYING", "last_updated": "2020-01-01T00:00:00Z"}'), 2001)
    refused(hub.put(url, dumps(dict(good, id="OTHER"))), 2001)  # URL and body disagree
    assert served(hub.get(url)) == good  # nothing half-applied
    # ... and every refused push is on the log, verbatim, marked invalid
    evs = events("ocpi.inbound", lambda t, r: t == "OcpiObjectReceived" and r["object_id"] == "GOOD-1"
                 and r["platform_id"] == hub.party.settings.ocpi_platform_id)
    assert [r["valid"] for _, r in evs] == [True, False, False, False, False, False]
    assert evs[1][1]["raw"] == '{"id": "GOOD-1", '


def test_unknown_targets_are_2003_and_foreign_parties_404(hub, tnm) -> None:  # noqa: ANN001
    patch = ex("location_patch_example_status.json")
    refused(hub.patch(f"{LOC}/BE/BEC/NOWHERE", patch), 2003, 404)
    refused(hub.patch(f"{LOC}/BE/BEC/NOWHERE/1", patch), 2003, 404)
    refused(hub.get(f"{LOC}/BE/BEC/NOWHERE"), 2003, 404)
    ok(hub.put(f"{LOC}/BE/BEC/LOC1", ex("location_example.json")))
    refused(hub.patch(f"{LOC}/BE/BEC/LOC1/NO-EVSE", patch), 2003, 404)
    refused(hub.put(f"{LOC}/BE/BEC/NOWHERE/3256", ex("location_put_example_add_evse.json")), 2003, 404)
    refused(hub.patch("/emsp/2.2.1/sessions/NL/STK/none", ex("session_patch_example_total_cost.json")), 2001, 404)
    # a direct connection may only push for its own parties, and never sees another connection's objects
    refused(tnm.put(f"{LOC}/BE/BEC/LOC1", ex("location_example.json")), 2001, 404)
    loc = dict(loads(ex("location_example.json")), country_code="NL", party_id="TNM")
    from projections.postgres.ocpi_fold import dumps

    ok(tnm.put(f"{LOC}/NL/TNM/LOC1", dumps(loc)))
    assert served(tnm.get(f"{LOC}/NL/TNM/LOC1"))["party_id"] == "TNM"
    assert served(hub.get(f"{LOC}/BE/BEC/LOC1"))["party_id"] == "BEC"
    refused(hub.get(f"{LOC}/NL/TNM/LOC1"), 2003, 404)  # the hub has no NL/TNM LOC1 of its own


def test_message_ids_and_routing_headers(hub) -> None:  # noqa: ANN001
    r = hub.http.get(f"{LOC}/BE/BEC/LOC1", headers=hub.h(**{
        "X-Request-ID": "req-1", "X-Correlation-ID": "corr-1", "OCPI-from-country-code": "BE",
        "OCPI-from-party-id": "BEC", "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CVS"}))
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-1" and r.headers["X-Correlation-ID"] == "corr-1"
    assert (r.headers["OCPI-to-country-code"], r.headers["OCPI-to-party-id"]) == ("BE", "BEC")
    assert (r.headers["OCPI-from-country-code"], r.headers["OCPI-from-party-id"]) == ("NL", "CVS")
    r = hub.http.get(f"{LOC}/BE/BEC/LOC1", headers=hub.h())
    assert r.headers["X-Request-ID"] and r.headers["X-Correlation-ID"]  # made up when the request had none
    r = hub.http.get(f"{LOC}/BE/BEC/LOC1", headers=hub.h(**{"OCPI-to-country-code": "FR",
                                                           "OCPI-to-party-id": "XXX"}))
    assert r.json()["status_code"] == 4001


def test_tnm_cannot_claim_another_party_in_routing_headers(tnm) -> None:  # noqa: ANN001
    r = tnm.http.get(f"{LOC}/NL/TNM/LOC1", headers=tnm.h(**{"OCPI-from-country-code": "BE",
                                                           "OCPI-from-party-id": "BEC"}))
    assert r.json()["status_code"] == 2001


# ---- the CPO Locations sender: paging with a capped limit ------------------------------------------------------


def test_the_locations_sender_caps_the_limit_and_links_every_page(party, hub) -> None:  # noqa: ANN001
    u = party.settings.ocpi_platform_id
    producer = EventProducer()
    ids = [f"S{u}-{i}" for i in range(4)]
    for i, sid in enumerate(ids):
        rec, _ = registration(sid, name=sid, operator="cv", latitude=50.0, longitude=5.0 + i / 10)
        producer.publish_sync("stations", sid, "StationRegistered", rec)
    producer.close()
    dsn = party.settings.postgres_dsn.get_secret_value()

    def projected() -> bool:
        with psycopg.connect(dsn, options=f"-c search_path={party.settings.ocpi_schema_name},public") as c:
            return c.execute("SELECT count(*) FROM stations WHERE station_id = ANY(%s)", (ids,)).fetchone()[0] == 4

    wait_for("stations projected", projected)
    r = hub.get("/cpo/2.2.1/locations", params={"limit": "1000"})
    assert r.headers["X-Limit"] == "3"
    total = int(r.headers["X-Total-Count"])
    seen, pages = [], 0
    url: str | None = f"{party.url}/cpo/2.2.1/locations?limit=1000"
    while url:
        r = hub.http.get(url, headers=hub.h())
        data = served(r)
        assert len(data) <= 3
        seen += [d["id"] for d in data]
        pages += 1
        from edges.ocpi.paging import next_link

        url = next_link(r.headers.get("Link"))
    assert len(seen) == len(set(seen)) == total and set(ids) <= set(seen) and pages == -(-total // 3)
    refused(hub.get("/cpo/2.2.1/locations", params={"limit": "many"}), 2001, 400)
    refused(hub.get("/cpo/2.2.1/locations/NOT-A-STATION"), 2003, 404)


# ---- replay ----------------------------------------------------------------------------------------------------


def test_replay_into_an_empty_schema_rebuilds_the_same_objects(party, hub) -> None:  # noqa: ANN001
    # its own connection: the follower's projection object is busy in the follower thread
    live = OcpiObjectsProjection(party.settings.postgres_dsn.get_secret_value(), party.settings.ocpi_schema_name,
                                 party.settings.ocpi_platform_id)
    wait_for("the follower to be idle", lambda: live.offsets() and _caught_up(live))
    copy_ = OcpiObjectsProjection(party.settings.postgres_dsn.get_secret_value(),
                                  f"{party.settings.ocpi_schema_name}_rb", party.settings.ocpi_platform_id)
    try:
        stats = replay(copy_)
        assert stats.applied > 0
        assert copy_.checksum() == live.checksum()
        assert replay(copy_, from_start=False).applied == 0
    finally:
        copy_.close()
        live.close()


def _caught_up(p: OcpiObjectsProjection) -> bool:
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config

    c = Consumer({**base_config(), "group.id": f"t-{uuid.uuid4().hex[:6]}"})
    try:
        offs = p.offsets()
        return all(offs.get(("ocpi.inbound", i), 0) >= c.get_watermark_offsets(TopicPartition("ocpi.inbound", i),
                                                                               timeout=5)[1] for i in range(6))
    finally:
        c.close()



def test_the_cli_onboards_and_shows_partners_through_the_admin_api(party, hub, capsys) -> None:  # noqa: ANN001
    from edges.ocpi.admin import main

    assert main(["--url", party.url, "onboard", "cli-partner", "--name", "Via the CLI"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["partner_id"] == "cli-partner" and len(out["token_a"]) == 43
    # the printed token A opens the versions endpoint, nothing more
    r = httpx.get(f"{party.url}/versions", headers={"Authorization": authorization(out["token_a"])})
    assert r.status_code == 200
    assert main(["--url", party.url, "show", "hub"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "REGISTERED" and "token" not in json.dumps(shown).lower().replace("plain_token", "")
    assert main(["--url", party.url, "onboard", "cli-partner", "--name", "again"]) == 1  # exists: refused
    capsys.readouterr()
    assert main(["--url", party.url, "register", "cli-partner"]) == 1  # they register with us, not we with them


def test_a_pull_with_garbage_keeps_the_previous_good_data(party) -> None:  # noqa: ANN001
    """A partner's sender serving broken objects: those are on the log as invalid, the good ones are applied, and
    what was good before stays visible."""
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from chargeverse.stack import free_port
    from chargeverse.tokens import issue
    from projections.postgres.ocpi_fold import dumps

    def loc(i: int, **kw: object) -> dict:
        return {**loads(ex("location_example.json")), "country_code": "NL", "party_id": "GRB", "id": f"G{i}", **kw}

    served_now: list[str] = []

    async def locations(request: Request) -> Response:
        offset = int(request.query_params.get("offset", "0"))
        page = served_now[offset:offset + 2]
        headers = {"X-Total-Count": str(len(served_now)), "X-Limit": "2"}
        if offset + 2 < len(served_now):
            headers["Link"] = f'<{request.url.replace(query=f"offset={offset + 2}")}>; rel="next"'
        return Response('{"data": [' + ", ".join(page) + '], "status_code": 1000, "timestamp": '
                        '"2020-01-01T00:00:00Z"}', media_type="application/json", headers=headers)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/locations", locations)]), host="127.0.0.1",
                                           port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_for("the fake sender", lambda: server.started)
    try:
        connect(party, "grb", [("CPO", "NL", "GRB")],
                endpoints=[{"identifier": "locations", "role": "SENDER",
                            "url": f"http://127.0.0.1:{port}/locations"}])
        adm = httpx.Client(base_url=f"{party.url}/admin", timeout=60,
                           headers={"Authorization": "Bearer " + issue("t", ["admin"], ttl_seconds=300)})
        served_now[:] = [dumps(loc(1)), dumps(loc(2)), dumps(loc(3))]
        r = adm.post("/partners/grb/pull/locations")
        assert r.json() == {"pages": 2, "objects": 3, "invalid": 0, "total": 3}, r.text
        bad = loc(1)
        bad["coordinates"] = {"latitude": "x", "longitude": "y"}
        served_now[:] = [dumps(bad), dumps(loc(2, name="Renamed")), dumps(loc(4, party_id="XXX")), "42",
                         dumps(loc(3))]
        r = adm.post("/partners/grb/pull/locations")
        assert r.json() == {"pages": 3, "objects": 5, "invalid": 3, "total": 5}, r.text
        dsn = party.settings.postgres_dsn.get_secret_value()
        with psycopg.connect(dsn, options=f"-c search_path={party.settings.ocpi_schema_name},public") as c:
            rows = {i: loads(d) for i, d in c.execute("SELECT id, doc FROM ocpi_locations WHERE partner_id = 'grb'")}
        assert sorted(rows) == ["G1", "G2", "G3"]  # nothing of the foreign party, nothing of the non-object
        assert rows["G1"] == loc(1)  # the garbage did not replace the good G1
        assert rows["G2"]["name"] == "Renamed"
    finally:
        server.should_exit = True
        t.join(10)
