"""A session's samples -> OCPI-style charging periods (streams/sessions/periods.py), from the fold's own output."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from session_frames import V201, Charger, at, mv16, mv201, of, run, sv16, sv201

from streams.sessions import charging_periods


def dims(period: dict) -> dict[str, Decimal]:
    return {d["type"]: d["volume"] for d in period["dimensions"]}


def periods_of(events: list) -> list[dict]:
    [stopped] = of(events, "SessionStopped")
    return charging_periods(of(events, "SessionMeterSample"), started_at=stopped["started_at"],
                            stopped_at=stopped["stopped_at"], total_energy_wh=stopped["energy_wh"])


def test_charging_then_power_zero_while_plugged_is_parking_time_in_1_6() -> None:
    c = Charger()
    frames = [*c.start16(1, meter_start=100_000)]
    for minute in (15, 30, 45, 60):
        frames.append(c.meter16(1, mv16(at(minute), sv16(str(100_000 + minute * 11_000 // 60)),
                                        sv16("11000", "Power.Active.Import"), sv16("16", "Current.Import"))))
    for minute in (75, 90):
        frames.append(c.meter16(1, mv16(at(minute), sv16("111000"), sv16("0", "Power.Active.Import"))))
    frames += c.stop16(1, meter_stop=111_000, t=at(90))
    periods = periods_of(run(frames)[1])
    assert [p["start_date_time"] for p in periods] == [at(0), at(60)]
    assert dims(periods[0]) == {"ENERGY": Decimal("11.000"), "TIME": Decimal("1.000000"),
                                "MAX_POWER": Decimal("11.000"), "MAX_CURRENT": Decimal("16")}
    assert dims(periods[1]) == {"PARKING_TIME": Decimal("0.500000")}


def test_charging_state_decides_in_2_0_1_and_an_evse_pause_is_not_parking() -> None:
    c = Charger("CS", V201)
    frames = [*c.event201("Started", 0, "t", t=at(0), charging_state="Charging",
                          meter=[mv201(at(0), sv201(5000.0, context="Transaction.Begin"))]),
              *c.event201("Updated", 1, "t", t=at(30), charging_state="SuspendedEVSE",
                          meter=[mv201(at(30), sv201(8000.0))]),
              *c.event201("Updated", 2, "t", t=at(40), charging_state="Charging", meter=[mv201(at(40), sv201(8000.0))]),
              *c.event201("Updated", 3, "t", t=at(60), charging_state="SuspendedEV",
                          meter=[mv201(at(60), sv201(10_000.0))]),
              *c.event201("Ended", 4, "t", t=at(120), charging_state="EVConnected",
                          meter=[mv201(at(120), sv201(10_000.0, context="Transaction.End"))])]
    periods = periods_of(run(frames)[1])
    assert [(p["start_date_time"], dims(p)) for p in periods] == [
        (at(0), {"ENERGY": Decimal("5.000"), "TIME": Decimal("1.000000")}),
        (at(60), {"PARKING_TIME": Decimal("1.000000")}),
    ]


def test_energy_alone_tells_charging_from_parking_in_1_6() -> None:
    c = Charger()
    frames = [*c.start16(2, meter_start=1000), c.meter16(2, mv16(at(30), sv16("8000"))),
              c.meter16(2, mv16(at(60), sv16("15000"))), c.meter16(2, mv16(at(90), sv16("15005"))),
              *c.stop16(2, meter_stop=15_005, t=at(120))]
    periods = periods_of(run(frames)[1])
    assert [(p["start_date_time"], dims(p)) for p in periods] == [
        (at(0), {"ENERGY": Decimal("14.000"), "TIME": Decimal("1.000000")}),
        (at(60), {"ENERGY": Decimal("0.005"), "PARKING_TIME": Decimal("0.500000")}),
        (at(90), {"ENERGY": Decimal("0.000"), "TIME": Decimal("0.500000")}),  # nothing known after: not parking
    ]


def test_energy_after_the_last_sample_goes_to_the_last_charging_period_and_totals_match() -> None:
    c = Charger()
    frames = [*c.start16(3, meter_start=0), c.meter16(3, mv16(at(10), sv16("2000"))),
              *c.stop16(3, meter_stop=9000, t=at(40))]
    events = run(frames)[1]
    periods = periods_of(events)
    assert sum(dims(p)["ENERGY"] for p in periods) == Decimal("9.000")


def test_a_session_without_samples_is_one_charging_period() -> None:
    start, stop = at(0), at(90)
    [p] = charging_periods([], started_at=start, stopped_at=stop, total_energy_wh=12_345.0)
    assert p["start_date_time"] == start and dims(p) == {"ENERGY": Decimal("12.345"), "TIME": Decimal("1.500000")}


def test_unplugged_idle_time_is_neither_charging_nor_parking() -> None:
    samples = [{"at": at(0), "energy_wh": 0.0, "register_wh": 1.0, "power_w": None, "current_a": None,
                "charging_state": "Charging"},
               {"at": at(30), "energy_wh": 3000.0, "register_wh": 3001.0, "power_w": None, "current_a": None,
                "charging_state": "Idle"}]
    periods = charging_periods(samples, started_at=at(0), stopped_at=at(45))
    assert [dims(p) for p in periods] == [{"ENERGY": Decimal("3.000"), "TIME": Decimal("0.500000")},
                                          {"ENERGY": Decimal("0.000")}]


samples_st = st.lists(st.tuples(st.integers(1, 600), st.integers(0, 5000), st.one_of(st.none(), st.integers(0, 22000)),
                                st.sampled_from([None, "Charging", "SuspendedEV", "EVConnected", "Idle"])),
                      max_size=20)


@settings(max_examples=100, deadline=None)
@given(samples_st, st.integers(0, 50_000))
def test_property_periods_cover_the_session_and_add_up_to_the_billed_energy(raw: list, extra: int) -> None:
    raw = sorted(raw, key=lambda r: r[0])
    energy, samples = Decimal(0), []
    for minute, step, power, state in raw:
        energy += step + Decimal("0.4995")  # fractional Wh: per-period rounding must still add up
        samples.append({"at": at(minute), "energy_wh": float(energy), "register_wh": 1.0, "power_w": power,
                        "current_a": None, "charging_state": state})
    total = energy + extra
    periods = charging_periods(list(reversed(samples)), started_at=at(0), stopped_at=at(601),
                               total_energy_wh=float(total))
    assert sum(dims(p).get("ENERGY", Decimal(0)) for p in periods) == (Decimal(total) / 1000).quantize(
        Decimal("0.001"))
    hours = sum(dims(p).get("TIME", Decimal(0)) + dims(p).get("PARKING_TIME", Decimal(0)) for p in periods)
    idle = [p for p in periods if "TIME" not in dims(p) and "PARKING_TIME" not in dims(p)]
    if not idle:
        assert hours == (Decimal(601) / 60).quantize(Decimal("0.000001"))
    starts = [p["start_date_time"] for p in periods]
    assert starts == sorted(starts) and starts[0] == at(0)
