"""The forecasts processor's decisions, pure: status events -> occupancy forecasts, sessions -> forecasts at start
and labels at stop (once), health verdicts, a checkpoint that resumes exactly.  Each invariant of
streams/forecasts_service/decide.py is named by a test here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edges.api.forecasts import forecast_out
from streams.forecasting.checkpoint import Checkpoint
from streams.forecasts_service.decide import Models, step, summary

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)  # a Monday
_n = iter(range(10**9))


def ev(t: datetime, **kw: Any) -> dict[str, Any]:
    rec = {"event_id": f"e-{next(_n)}", "occurred_at": t, "recorded_at": t, "source": "test", "correlation_id": "c",
           "causation_id": None}
    rec.update(kw)
    return rec


def status(t: datetime, conn: int, st: str, station: str = "S") -> tuple[str, dict[str, Any]]:
    return "ConnectorStatusChanged", ev(t, station_id=station, connector_id=conn, status=st, error_code="NoError")


def feed(m: Models, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for etype, rec in events:
        out += step(m, etype, rec, "forecasts")
    return out


def evening_week(days: int = 9) -> list[tuple[str, dict[str, Any]]]:
    """Every day two cars plug in at 17:00 UTC for two hours; one connector also busy 08:00-09:00."""
    out = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        out += [status(day + timedelta(hours=8), 1, "Charging"), status(day + timedelta(hours=9), 1, "Available"),
                status(day + timedelta(hours=17), 1, "Preparing"), status(day + timedelta(hours=17), 2, "Occupied"),
                status(day + timedelta(hours=19), 1, "Available"), status(day + timedelta(hours=19), 2, "Available")]
    return out


def test_every_status_event_of_a_connector_yields_a_forecast_for_its_station() -> None:
    m = Models(default_tz="UTC")
    events = evening_week(2)
    outs = feed(m, events)
    assert len(outs) == len(events)
    assert all(o[2] == "StationOccupancyForecast" and o[1] == "S" for o in outs)
    last = outs[-1][3]
    assert last["connectors"] == 2 and last["occupied_now"] == 0 and len(last["hours"]) == 24


def test_the_forecast_learns_when_the_station_is_busy() -> None:
    m = Models(default_tz="UTC")
    last = feed(m, evening_week(9))[-1][3]
    by_hour = {h["starts_at"].hour: h["expected_occupied"] for h in last["hours"]}
    assert by_hour[17] > 1.5 and by_hour[18] > 1.5  # both connectors, every evening
    assert by_hour[8] == pytest.approx(1.0, abs=0.3)
    assert by_hour[3] < 0.2
    assert last["hours_learned"] == 8 * 24 + 11  # closed hours from the first event to the last


def test_connector_zero_never_counts_as_a_parked_car() -> None:
    m = Models(default_tz="UTC")
    assert feed(m, [status(T0, 0, "Charging")]) == []
    assert "S" not in m.occupancy


def test_an_event_older_than_the_stations_last_is_taken_at_the_last_time() -> None:
    m = Models(default_tz="UTC")
    feed(m, [status(T0 + timedelta(hours=5), 1, "Charging")])
    outs = feed(m, [status(T0 + timedelta(hours=1), 1, "Available")])  # a late, offline-delivered status
    assert outs[0][3]["as_of"] == T0 + timedelta(hours=5) and outs[0][3]["occupied_now"] == 0


def test_the_station_zone_comes_from_its_tariff() -> None:
    m = Models(default_tz="UTC")
    feed(m, [("StationTariffSet", ev(T0, station_id="S", time_zone="Europe/Oslo"))])
    out = feed(m, [status(T0, 1, "Charging")])[0][3]
    assert out["time_zone"] == "Europe/Oslo"


def test_a_session_forecast_is_made_at_start_and_labels_are_learned_once_at_stop() -> None:
    m = Models(default_tz="UTC")
    outs = []
    for d in range(5):
        start = T0 + timedelta(days=d, hours=18)
        sid = f"s{d}"
        outs += feed(m, [("SessionStarted", ev(start, session_id=sid, charge_point_id="S", id_token="TAG",
                                              started_at=start))])
        stop = ev(start + timedelta(hours=10), session_id=sid, charge_point_id="S", id_token="TAG", started_at=start,
                  stopped_at=start + timedelta(hours=10), energy_wh=12_000.0)
        feed(m, [("SessionStopped", stop)])
        assert feed(m, [("SessionStopped", stop)]) == []  # a re-delivered stop is not learned twice
    first, last = outs[0][3], outs[-1][3]
    assert first["user_sessions_seen"] == 0 and last["user_sessions_seen"] == 4
    assert last["predicted_kwh"] == pytest.approx(12.0, abs=0.5)
    assert last["predicted_duration_h"] == pytest.approx(10.0, abs=0.5)
    assert last["expected_unplug_at"] == last["started_at"] + timedelta(hours=last["predicted_duration_h"])
    assert m.user_sessions["TAG"] == 5


def test_repeated_zero_energy_sessions_raise_one_fault_suspicion() -> None:
    m = Models(default_tz="UTC")
    verdicts = []
    for d in range(15):  # ten healthy sessions, then the charger stops delivering
        start = T0 + timedelta(days=d, hours=9)
        sid = f"z{d}"
        feed(m, [("SessionStarted", ev(start, session_id=sid, charge_point_id="BAD", id_token="T",
                                       started_at=start))])
        verdicts += feed(m, [("SessionStopped", ev(start + timedelta(hours=1), session_id=sid, charge_point_id="BAD",
                                                   id_token="T", started_at=start,
                                                   stopped_at=start + timedelta(hours=1),
                                                   energy_wh=7_000.0 if d < 10 else 0.0))])
    assert [v[2] for v in verdicts] == ["ChargerFaultSuspected"]
    assert verdicts[0][1] == "BAD/repeated zero-energy sessions" and verdicts[0][3]["session_id"] == "z12"


def test_dropped_connections_raise_a_fault_suspicion() -> None:
    m = Models(default_tz="UTC")
    outs = feed(m, [("StationConnectionChanged", ev(T0 + timedelta(minutes=i), station_id="FLAKY", online=False,
                                                    edge_instance="e")) for i in range(5)])
    assert len(outs) == 1 and outs[0][3]["kind"] == "dropped connections"


def test_a_checkpoint_resumes_exactly_where_it_was_taken() -> None:
    events = evening_week(3)
    whole = Models(default_tz="UTC")
    expected = feed(whole, events)[-1][3]["hours"]
    m = Models(default_tz="UTC")
    cp = Checkpoint({"models": m}, {})
    for off, (etype, rec) in enumerate(events[:10]):
        step(cp.models["models"], etype, rec, "forecasts")
        cp.advance("stations/0", off)
    restored = Checkpoint.from_bytes(cp.to_bytes())
    assert restored.offsets == {"stations/0": 10}
    out = []
    for off, (etype, rec) in enumerate(events):
        if off >= restored.offsets["stations/0"]:  # replay only what the checkpoint does not reflect
            out = step(restored.models["models"], etype, rec, "forecasts")
    assert out[-1][3]["hours"] == expected


def test_the_summary_names_the_busiest_local_hour() -> None:
    tz = ZoneInfo("Europe/Amsterdam")
    hours = [(datetime(2026, 11, 27, h, tzinfo=tz), 1.8 if h == 17 else 0.2) for h in range(24)]
    assert summary(hours, 2) == "usually busy at 17:00 (1.8 of 2 connectors occupied)"
    plateau = [(t, {17: 1.9, 18: 1.95}.get(t.hour, 0.1)) for t, _ in hours]
    assert summary(plateau, 2).startswith("usually busy at 17:00")  # where the busy evening starts
    assert summary([(t, 0.0) for t, _ in hours], 2) == "usually free for the next 24 hours"
    assert summary([], 2).startswith("no forecast yet")


def test_the_api_shows_hours_in_the_stations_local_time_and_marks_busy_ones() -> None:
    hours = [{"starts_at": (T0 + timedelta(hours=h)).isoformat(), "expected_occupied": 1.5 if h == 16 else 0.1}
             for h in range(24)]
    out = forecast_out(("S", T0, "Europe/Amsterdam", 2, 1, 200, hours))
    busy = [h for h in out.hours if h.busy]
    assert [h.hour for h in busy] == ["17:00"]  # 16:00 UTC is 17:00 in Amsterdam in November
    assert out.summary.startswith("usually busy at 17:00")
