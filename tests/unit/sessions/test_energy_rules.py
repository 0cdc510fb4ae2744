"""Energy from register readings (streams/sessions/energy.py): the rules, and properties over random readings."""

from __future__ import annotations

import json
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from session_frames import Charger, at, mv16, mv201, of, run, sv16, sv201

from streams.sessions.energy import Rules, baseline_inferred, credible, energy_wh, insert

MIN = 60_000_000  # microseconds


def fold(readings: list[tuple[int, int | Decimal]], rules: Rules = Rules()) -> list:
    segs: list = []
    for t, wh in readings:
        segs = insert(segs, t, Decimal(wh), rules)
    return segs


# ---- the rules, one by one ---------------------------------------------------------------------------------------

def test_energy_is_last_register_minus_first_not_a_sum_of_readings() -> None:
    segs = fold([(0, 5_000_000), (15 * MIN, 5_003_000), (30 * MIN, 5_007_500)])
    assert energy_wh(segs) == 7500


def test_a_zero_start_followed_by_a_lifetime_register_is_not_billed_the_first_real_reading_is_the_baseline() -> None:
    segs = fold([(0, 0), (60 * MIN, 900_000), (90 * MIN, 906_500)])
    assert energy_wh(segs) == 6500
    assert baseline_inferred(segs, Decimal(0), 0)


def test_a_zero_start_is_credible_for_a_session_relative_meter() -> None:
    segs = fold([(0, 0), (15 * MIN, 1200), (30 * MIN, 2500)])
    assert energy_wh(segs) == 2500
    assert not baseline_inferred(segs, Decimal(0), 0)


def test_a_zero_start_is_never_a_900_kwh_bill_however_long_the_gap() -> None:
    """Ten hours at 1 MW would 'explain' 900 kWh; a zero register is still not a baseline for it."""
    segs = fold([(0, 0), (600 * MIN, 900_000), (660 * MIN, 911_000)])
    assert energy_wh(segs) == 11_000


def test_a_register_going_backwards_starts_a_new_segment_and_the_segments_are_summed() -> None:
    # meter replaced after 4 kWh; the new meter counts on from 120 Wh
    segs = fold([(0, 50_000), (10 * MIN, 54_000), (20 * MIN, 120), (30 * MIN, 3_120)])
    assert len(segs) == 2
    assert energy_wh(segs) == 4000 + 3000


def test_rounding_jitter_backwards_is_ignored_not_a_reset() -> None:
    segs = fold([(0, 10_000), (10 * MIN, 12_350), (11 * MIN, 12_345), (20 * MIN, 13_000)])
    assert len(segs) == 1 and energy_wh(segs) == 3000


def test_a_glitch_far_above_the_truth_is_never_billed() -> None:
    segs = fold([(0, 10_000), (1 * MIN, 10_500), (2 * MIN, 99_999_999), (3 * MIN, 11_000), (4 * MIN, 11_500)])
    assert energy_wh(segs) == 500 + 500  # the glitch is a lone segment worth 0; 10.5k -> 11k is lost, not invented


def test_credibility_is_bounded_by_power_and_time() -> None:
    r = Rules(max_power_w=Decimal(22_000), slack_wh=Decimal(0))
    assert credible(0, Decimal(1000), 60 * MIN, Decimal(1000 + 22_000), r)
    assert not credible(0, Decimal(1000), 60 * MIN, Decimal(1000 + 22_001), r)
    assert not credible(0, Decimal(1000), 60 * MIN, Decimal(980), Rules(jitter_wh=Decimal(10)))
    assert credible(0, Decimal(1000), 60 * MIN, Decimal(990), Rules(jitter_wh=Decimal(10)))


def test_a_late_reading_before_the_span_extends_it_and_one_inside_never_changes_it() -> None:
    segs = fold([(10 * MIN, 2000), (20 * MIN, 3000)])
    segs = insert(segs, 0, Decimal(1000))
    assert energy_wh(segs) == 2000
    assert insert(segs, 15 * MIN, Decimal(9999)) == segs  # inconsistent interior reading: ignored


def test_a_missing_start_reading_means_the_baseline_was_inferred() -> None:
    assert baseline_inferred(fold([(0, 5000), (MIN, 6000)]), None, 0)


def test_kwh_wh_and_multipliers_give_the_same_energy_through_the_fold() -> None:
    c16 = Charger("CP-U16")
    frames = c16.start16(1, meter_start=1_234_000)
    frames.append(c16.meter16(1, mv16(at(10), sv16("1234.5", unit="kWh"))))
    frames.append(c16.meter16(1, mv16(at(20), sv16("1235500", unit="Wh"))))
    frames.append(c16.meter16(1, mv16(at(30), sv16("1236250"))))  # no unit: Wh
    frames += c16.stop16(1, meter_stop=1_236_400, t=at(31))
    c2 = Charger("CP-U201", "ocpp2.0.1")
    f2 = c2.event201("Started", 0, "u", t=at(0), trigger="CablePluggedIn",
                     meter=[mv201(at(0), sv201(1234.0, unit="kWh", context="Transaction.Begin"))])
    f2 += c2.event201("Updated", 1, "u", t=at(10), meter=[mv201(at(10), sv201(123.45, multiplier=4))])  # Wh x 10^4
    f2 += c2.event201("Updated", 2, "u", t=at(20), meter=[mv201(at(20), sv201(1.2355, unit="kWh", multiplier=3))])
    f2 += c2.event201("Ended", 3, "u", t=at(31), trigger="EVDeparted",
                      meter=[mv201(at(31), sv201(1236400, context="Transaction.End"))])
    [stop16] = of(run(frames)[1], "SessionStopped")
    [stop201] = of(run(f2)[1], "SessionStopped")
    assert stop16["energy_wh"] == stop201["energy_wh"] == 2400.0
    samples = of(run(f2)[1], "SessionMeterSample")
    assert [s["register_wh"] for s in samples] == [1234000.0, 1234500.0, 1235500.0, 1236400.0]


# ---- properties ------------------------------------------------------------------------------------------------

reading = st.tuples(st.integers(0, 500), st.integers(0, 3_000_000))
seeds = st.integers(0, 2**32)  # arrival order: a seeded shuffle is much cheaper to draw than st.randoms()


@settings(max_examples=150, deadline=None)
@given(st.lists(reading, min_size=0, max_size=30), seeds)
def test_property_energy_is_never_negative(readings: list[tuple[int, int]], seed: int) -> None:
    rnd = random.Random(seed)
    readings = [(m * MIN, wh) for m, wh in readings]
    rnd.shuffle(readings)
    assert energy_wh(fold(readings + readings[: len(readings) // 2])) >= 0


def _series(draw_steps: list[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    """A register that never goes backwards and never needs more than 100 kW: (time_us, Wh) in time order."""
    t, wh, out = 0, start, [(0, start)]
    for minutes, frac in draw_steps:
        t += minutes * MIN
        wh += 100_000 * minutes * frac // (60 * 100)  # frac % of 100 kW for `minutes`
        out.append((t, wh))
    return out


steps = st.lists(st.tuples(st.integers(1, 90), st.integers(0, 100)), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(1, 10_000_000), seeds)
def test_property_a_register_that_never_goes_back_gives_latest_minus_earliest_in_any_order(
        draw: list[tuple[int, int]], start: int, seed: int) -> None:
    rnd = random.Random(seed)
    series = _series(draw, start)
    arrival = series + rnd.sample(series, k=len(series) // 2)  # with redeliveries
    rnd.shuffle(arrival)
    e = energy_wh(fold(arrival))
    assert e == series[-1][1] - series[0][1]
    values = [wh for _, wh in series]
    assert e <= max(values) - min(values)  # "never exceeds max register - min register"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2_000_000), min_size=1, max_size=30), seeds)
def test_property_energy_never_exceeds_the_rises_of_the_register_in_time_order(
        values: list[int], seed: int) -> None:
    """With resets the bound is the sum of the register's rises (each run's max - min), in any arrival order."""
    rnd = random.Random(seed)
    series = [(i * 10 * MIN, v) for i, v in enumerate(values)]
    rises = sum(max(0, b - a) for a, b in zip(values, values[1:]))
    arrival = list(series)
    rnd.shuffle(arrival)
    assert 0 <= energy_wh(fold(arrival)) <= rises


@settings(max_examples=150, deadline=None)
@given(st.lists(reading, min_size=1, max_size=25), seeds)
def test_property_inserting_a_known_reading_again_changes_nothing(readings: list[tuple[int, int]],
                                                                  seed: int) -> None:
    rnd = random.Random(seed)
    readings = [(m * MIN, wh) for m, wh in readings]
    segs = fold(readings)
    t, wh = rnd.choice(readings)
    again = insert(segs, t, Decimal(wh))
    assert insert(again, t, Decimal(wh)) == again
    assert json.loads(json.dumps(segs)) == segs


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3_000_000), min_size=1, max_size=25), seeds)
def test_property_a_reading_inserted_earlier_changes_nothing_when_it_comes_again_later(
        values: list[int], seed: int) -> None:
    """Redelivery long after the original (one reading per timestamp, as one meter gives)."""
    rnd = random.Random(seed)
    readings = [(i * 7 * MIN, v) for i, v in enumerate(values)]
    rnd.shuffle(readings)
    segs = fold(readings)
    for t, wh in readings:
        assert insert(segs, t, Decimal(wh)) == segs
