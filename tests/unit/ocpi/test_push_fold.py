"""The OCPI push fold (streams/ocpi_push/fold.py): our station, tariff, session and CDR changes -> pushes to the
right partners.  Each test names an invariant of the module docstring."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from chargeverse.avro import default_codec
from chargeverse.events import envelope
from streams.ocpi_push.fold import Lookups, Policy, Target, apply

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
POL = Policy(platform_id="cv", country_code="NL", party_id="CVS")
E1 = Target("emsp-1", "DE", "EM1", T0 - timedelta(days=1))
E2 = Target("emsp-2", "FR", "EM2", T0 + timedelta(hours=1))  # registered after T0
LOOK = Lookups(emsps=lambda module: [E1, E2], token_owner=lambda uid: E1 if uid.upper() == "TOK-E1" else None)


def _ev(when: datetime = T0, **fields: Any) -> dict[str, Any]:
    rec = envelope(source="test", correlation_id="c", occurred_at=when)
    rec.update(fields)
    return rec


def _run(events: list[tuple[str, dict[str, Any]]], states: dict[str, Any] | None = None):  # noqa: ANN202
    from streams.ocpi_push.fold import state_key

    states = dict(states or {})
    outs: list[Any] = []
    for etype, rec in events:
        k = state_key(etype, rec)
        st, o = apply(states.get(k), etype, rec, LOOK, POL)
        states[k] = st
        outs.extend(o)
    return states, outs


def _station(own: bool = True, at: datetime = T0) -> tuple[str, dict[str, Any]]:
    return "StationRegistered", _ev(at, station_id="ST-1", name="Depot", operator="CV", latitude=52.1,
                                    longitude=4.3, address="Kade 1", own=own,
                                    connectors=[{"connector_id": 1, "standard": "IEC_62196_T2", "max_power_kw": 22.0}],
                                    password_hash=None, security_profile=1, revoked=False,
                                    registration_status="Accepted")


def test_a_station_change_goes_to_every_emsp_registered_before_it_in_its_own_lane() -> None:
    _, outs = _run([_station()])
    assert [(o[0], o[1], o[2]) for o in outs] == [("ocpi.outbound", "emsp-1", "OcpiPushRequested")]
    rec = outs[0][3]
    assert (rec["module"], rec["method"], rec["object_id"], rec["to_party_id"]) == ("locations", "PUT", "ST-1",
                                                                                     "EM1")
    loc = json.loads(rec["body"])
    assert loc["id"] == "ST-1" and loc["party_id"] == "CVS" and loc["evses"][0]["uid"] == "ST-1-1"
    codec = default_codec()
    assert codec.decode(codec.encode("OcpiPushRequested", rec))[1]["body"] == rec["body"]
    # a later change also reaches the partner registered in between
    _, outs = _run([_station(at=T0 + timedelta(hours=2))])
    assert {o[1] for o in outs} == {"emsp-1", "emsp-2"}


def test_changes_only_heartbeats_and_redeliveries_push_nothing_a_status_does() -> None:
    states, _ = _run([_station()])
    hb = ("StationHeartbeat", _ev(T0 + timedelta(minutes=1), station_id="ST-1"))
    states, outs = _run([hb, _station(at=T0 + timedelta(minutes=2))], states)
    assert outs == []
    online = ("StationConnectionChanged", _ev(T0 + timedelta(minutes=3), station_id="ST-1", online=True,
                                              edge_instance="e1"))
    status = ("ConnectorStatusChanged", _ev(T0 + timedelta(minutes=4), station_id="ST-1", connector_id=1,
                                            status="Charging", error_code="NoError", info=None,
                                            vendor_error_code=None))
    # offline, a status is not shown (UNKNOWN: nothing to push); coming online shows it
    states, outs = _run([status], states)
    assert outs == []
    states, outs = _run([online], states)
    assert [json.loads(o[3]["body"])["evses"][0]["status"] for o in outs] == ["CHARGING"]


def test_own_only_roamed_stations_and_sessions_are_never_pushed() -> None:
    _, outs = _run([_station(own=False)])
    assert outs == []
    start = ("SessionStarted", _ev(session_id="roamed:NL:X:1", charge_point_id="roamed:NL:X:L", id_token="TOK-E1",
                                   started_at=T0, connector_id=1))
    assert _run([start])[1] == []


def _session(uid: str) -> list[tuple[str, dict[str, Any]]]:
    base = dict(session_id="S-1", charge_point_id="ST-1", transaction_id="7", ocpp_version="ocpp1.6")
    return [("SessionStarted", _ev(**base, connector_id=1, id_token=uid, id_token_type=None, started_at=T0)),
            ("SessionMeterSample", _ev(T0 + timedelta(minutes=10), **base, at=T0 + timedelta(minutes=10),
                                       energy_wh=3000.0)),
            ("SessionStopped", _ev(T0 + timedelta(minutes=20), **base, started_at=T0,
                                   stopped_at=T0 + timedelta(minutes=20), energy_wh=5000.0, reason="Local",
                                   baseline_inferred=False))]


def test_private_a_session_goes_only_to_the_emsp_owning_the_token() -> None:
    _, outs = _run(_session("tok-e1"))
    assert {o[1] for o in outs} == {"emsp-1"} and len(outs) == 3
    docs = [json.loads(o[3]["body"]) for o in outs]
    assert [(d["status"], d["kwh"]) for d in docs] == [("ACTIVE", 0.0), ("ACTIVE", 3.0), ("COMPLETED", 5.0)]
    assert docs[-1]["end_date_time"] == "2026-01-05T08:20:00Z"
    assert docs[0]["cdr_token"] == {"country_code": "DE", "party_id": "EM1", "uid": "tok-e1", "type": "RFID",
                                    "contract_id": "tok-e1"}
    assert _run(_session("our-own-driver"))[1] == []


def test_a_cdr_is_posted_once_to_the_token_owner() -> None:
    cdr = {"country_code": "NL", "party_id": "CVS", "id": "S-1", "cdr_token": {"uid": "TOK-E1"}}
    priced = ("CdrPriced", _ev(session_id="S-1", origin="OWN", cdr=json.dumps(cdr)))
    states, outs = _run([priced])
    assert [(o[1], o[3]["module"], o[3]["method"], o[3]["body"]) for o in outs] == [
        ("emsp-1", "cdrs", "POST", json.dumps(cdr))]
    assert _run([priced], states)[1] == []
    roamed = ("CdrPriced", _ev(session_id="roamed:X", origin="ROAMED", cdr=json.dumps(cdr)))
    assert _run([roamed])[1] == []


def test_a_tariff_is_pushed_as_ours_and_only_when_it_changed() -> None:
    tariff = {"country_code": "DE", "party_id": "ALL", "id": "x", "currency": "EUR",
              "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}]}
    ev = ("StationTariffSet", _ev(station_id="ST-1", tariff_id="T-1", tariff=json.dumps(tariff), currency="EUR",
                                  time_zone="Europe/Amsterdam", valid_from=T0, set_by="op"))
    states, outs = _run([ev])
    body = json.loads(outs[0][3]["body"])
    assert (body["country_code"], body["party_id"], body["id"]) == ("NL", "CVS", "T-1")
    assert body["last_updated"] == "2026-01-05T08:00:00Z" and outs[0][3]["object_id"] == "T-1"
    assert _run([ev], states)[1] == []  # the same tariff set again on another station: nothing new
