"""The OCPI directory fold (streams/ocpi_directory/fold.py): partner Locations -> station events, partner Sessions
-> OcpiSessionUpdated.  Each test names the invariant of the module docstring it checks."""

from __future__ import annotations

import json
from typing import Any

from chargeverse.avro import default_codec
from chargeverse.events import envelope
from streams.ocpi_directory.fold import Policy, apply, session_id, station_id, state_key, view

from ocpi_examples import example

PLATFORM = "cv-test"
POL = Policy(platform_id=PLATFORM)


def _ev(raw: str, *, module: str = "locations", method: str = "PUT", oid: str = "LOC1", valid: bool = True,
        evse: str | None = None, conn: str | None = None, platform: str = PLATFORM, cc: str = "BE",
        pid: str = "BEC") -> dict[str, Any]:
    rec = envelope(source="test", correlation_id="c-1")
    rec.update(platform_id=platform, partner_id="p1", module=module, method=method, country_code=cc, party_id=pid,
               object_id=oid, evse_uid=evse, connector_id=conn, token_type=None, raw=raw, valid=valid, errors=[],
               warnings=[], request_id=None, from_country_code=None, from_party_id=None)
    return rec


def _run(events: list[dict[str, Any]], state: dict[str, Any] | None = None):  # noqa: ANN202
    outs: list[Any] = []
    for e in events:
        state, o = apply(state, "OcpiObjectReceived", e, POL)
        outs.extend(o)
    return state, outs


def _types(outs: list[Any]) -> list[str]:
    return [o[2] for o in outs]


def test_a_location_registers_a_roamed_station_with_its_connectors_status_and_online() -> None:
    state, outs = _run([_ev(example("location_example.json"))])
    sid = station_id("BE", "BEC", "LOC1")
    assert sid == "roamed:BE:BEC:LOC1" and all(o[0] == "stations" and o[1] == sid for o in outs)
    assert _types(outs) == ["StationRegistered", "ConnectorStatusChanged", "ConnectorStatusChanged",
                            "ConnectorStatusChanged", "StationConnectionChanged"]
    reg = outs[0][3]
    assert reg["own"] is False and reg["operator"] == "BeCharged" and reg["name"] == "Gent Zuid"
    assert reg["address"] == "F.Rooseveltlaan 3A, 9000 Gent"
    assert (reg["latitude"], reg["longitude"]) == (51.047599, 3.729944)
    # 220 V x 16 A x 3 phases
    assert [(c["connector_id"], c["standard"], c["max_power_kw"]) for c in reg["connectors"]] == [
        (1, "IEC_62196_T2", 10.56), (2, "IEC_62196_T2", 10.56), (3, "IEC_62196_T2", 10.56)]
    assert [(o[3]["connector_id"], o[3]["status"]) for o in outs[1:4]] == [(1, "Available"), (2, "Available"),
                                                                            (3, "Reserved")]
    assert outs[4][3]["online"] is True
    # every output is a valid event of its schema
    codec = default_codec()
    for _, _, etype, rec in outs:
        assert codec.decode(codec.encode(etype, rec))[0] == etype


def test_never_a_charger_login_roamed_stations_are_registered_revoked_and_rejected() -> None:
    _, outs = _run([_ev(example("location_example.json"))])
    reg = outs[0][3]
    assert reg["revoked"] is True and reg["registration_status"] == "Rejected" and reg["password_hash"] is None


def test_a_status_patch_emits_one_status_change_and_a_redelivery_nothing() -> None:
    state, _ = _run([_ev(example("location_example.json"))])
    patch = _ev(example("location_patch_example_status.json"), method="PATCH", evse="3256")
    state2, outs = _run([patch], state)
    assert _types(outs) == ["ConnectorStatusChanged", "ConnectorStatusChanged"]  # both connectors of EVSE 3256
    assert {(o[3]["connector_id"], o[3]["status"], o[3]["info"]) for o in outs} == {
        (1, "Charging", "OCPI CHARGING"), (2, "Charging", "OCPI CHARGING")}
    _, again = _run([_ev(example("location_patch_example_status.json"), method="PATCH", evse="3256")], state2)
    assert again == []


def test_stable_ids_connector_numbers_survive_reordering_and_additions() -> None:
    loc = json.loads(example("location_example.json"))
    state, _ = _run([_ev(json.dumps(loc))])
    first = {f"{e['uid']}|{c['id']}": n for e in loc["evses"] for c in e["connectors"]
             for n in [state["numbers"][f"{e['uid'].upper()}|{c['id'].upper()}"]]}
    loc["evses"].reverse()
    loc["evses"].append({"uid": "9999", "status": "AVAILABLE", "last_updated": "2015-06-29T20:39:09Z",
                         "connectors": [{"id": "1", "standard": "CHADEMO", "format": "CABLE", "power_type": "DC",
                                         "max_voltage": 500, "max_amperage": 100, "max_electric_power": 50000,
                                         "last_updated": "2015-06-29T20:39:09Z"}]})
    state, outs = _run([_ev(json.dumps(loc))], state)
    for ref, n in first.items():
        assert state["numbers"][ref.upper()] == n
    assert state["numbers"]["9999|1"] == 4
    assert _types(outs) == ["StationRegistered", "ConnectorStatusChanged"]  # the new connector only
    assert outs[0][3]["connectors"][-1] == {"connector_id": 4, "standard": "CHADEMO", "max_power_kw": 50.0}


def test_only_our_valid_objects_and_garbage_keeps_the_good_data() -> None:
    state, _ = _run([_ev(example("location_example.json"))])
    for bad in (_ev("{not json", valid=False), _ev(example("location_example.json"), platform="other"),
                _ev(example("tariff_1_simple_2hour.json"), module="tariffs"),
                _ev('{"status": "CHARGING"}', method="PATCH", evse="NO-SUCH-EVSE")):
        assert apply(state, "OcpiObjectReceived", bad, POL) == (state, [])
    # a PATCH of a location never seen, and an EVSE PUT into one: nothing to apply to
    assert _run([_ev('{"name": "x"}', method="PATCH", oid="NEW")]) == (None, [])
    assert apply(None, "OcpiPartnerOnboarded", {"platform_id": PLATFORM}, POL) == (None, [])


def test_not_published_not_shown() -> None:
    loc = json.loads(example("location_example.json"))
    loc["publish"] = False
    state, outs = _run([_ev(json.dumps(loc))])
    assert outs == [] and state["view"]["shown"] is False
    loc["publish"] = True
    _, outs = _run([_ev(json.dumps(loc))], state)
    assert _types(outs)[0] == "StationRegistered"


def test_offline_when_every_evse_is_unknown() -> None:
    loc = json.loads(example("location_example.json"))
    for e in loc["evses"]:
        e["status"] = "UNKNOWN"
    _, outs = _run([_ev(json.dumps(loc))])
    assert outs[-1][2] == "StationConnectionChanged" and outs[-1][3]["online"] is False
    assert view(loc, {})["connectors"][0]["status"] == "Unknown"


def test_deterministic_the_same_batch_gives_identical_outputs() -> None:
    evs = [_ev(example("location_example.json")),
           _ev(example("location_patch_example_status.json"), method="PATCH", evse="3256")]
    assert _run(evs) == _run(evs)


def test_a_session_and_its_patch_become_one_live_roamed_session() -> None:
    start = _ev(example("session_example_1_simple_start.json"), module="sessions", oid="101", cc="NL", pid="STK")
    state, outs = _run([start])
    assert len(outs) == 1 and outs[0][:3] == ("sessions", "roamed:NL:STK:101", "OcpiSessionUpdated")
    s = outs[0][3]
    assert s["session_id"] == session_id("NL", "STK", "101") and s["station_id"] == "roamed:NL:STK:LOC1"
    assert (s["status"], s["id_token"], s["energy_wh"], s["total_cost_excl_vat"]) == ("PENDING", "123abc", 0.0,
                                                                                       "2.5")
    patch = _ev('{"status": "ACTIVE", "kwh": 12.5, "last_updated": "2020-03-09T11:00:00Z"}', module="sessions",
                method="PATCH", oid="101", cc="NL", pid="STK")
    state, outs = _run([patch], state)
    s = outs[0][3]
    assert (s["status"], s["energy_wh"], s["id_token"]) == ("ACTIVE", 12500.0, "123abc")  # merged, token kept
    assert json.loads(s["raw"])["location_id"] == "LOC1"
    codec = default_codec()
    assert codec.decode(codec.encode("OcpiSessionUpdated", s))[1]["session_id"] == "roamed:NL:STK:101"


def test_state_keys_follow_the_inbound_key() -> None:
    assert state_key(_ev("{}", oid="loc1")) == "p1|locations|BE|BEC|LOC1"
