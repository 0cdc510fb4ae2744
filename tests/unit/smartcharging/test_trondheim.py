"""Trondheim loader: noon-to-noon days, slot rounding, demand capping, dirty rows counted with reasons."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from streams.smartcharging.baselines import uncontrolled
from streams.smartcharging.trondheim import EV_KW, OSLO, day_instances, load_trondheim

DATA = Path(__file__).resolve().parents[4] / "shared/data/sessions/norway_trondheim_2018_2020.csv"
if not DATA.exists():  # the work tree may sit elsewhere; the data lives next to it
    DATA = Path("/work/shared/data/sessions/norway_trondheim_2018_2020.csv")

HEADER = ("session_ID;Garage_ID;User_ID;User_type;Shared_ID;Start_plugin;Start_plugin_hour;End_plugout;"
          "End_plugout_hour;El_kWh;Duration_hours;month_plugin;weekdays_plugin")


def line(sid, start, end, kwh, dur="1", garage="Bl2", user="Bl2-1", utype="Private", shared="NA"):
    return f"{sid};{garage};{user};{utype};{shared};{start};0;{end};0;{kwh};{dur};Jan;Monday"


def load(*rows):
    return load_trondheim([HEADER, *rows])


def test_dirty_rows_are_counted_by_reason_and_nothing_is_lost():
    sessions, rep = load(
        line(1, "21.12.2018 18:00", "22.12.2018 07:00", "12,5", "13"),
        line(1, "21.12.2018 18:00", "22.12.2018 07:00", "12,5", "13"),  # duplicate id
        line(2, "21.12.2018 18:00", "NA", "3,0", "NA"),  # no plug-out: 34 such rows in the real file
        line(3, "2018-12-21 18:00", "22.12.2018 07:00", "3,0"),  # not the file's date format
        line(4, "21.12.2018 18:00", "21.12.2018 18:00", "0,01", "0"),  # plugged out the same minute
        line(5, "21.12.2018 18:00", "22.12.2018 07:00", "0", "13"),
        line(6, "21.12.2018 18:00", "22.12.2018 07:00", "NA", "13"),
        "7;Bl2;only three fields",
        "",  # trailing blank line: not a row
    )
    assert [s.session_id for s in sessions] == ["1"]
    assert rep.rows == 8 and rep.used == 1
    assert rep.skipped == {
        "duplicate_session": 1, "missing_or_bad_plugout_time": 1, "missing_or_bad_plugin_time": 1,
        "plugout_not_after_plugin": 1, "non_positive_or_missing_kwh": 2, "wrong_number_of_fields": 1,
    }
    assert rep.used + sum(rep.skipped.values()) == rep.rows
    assert rep.examples["plugout_not_after_plugin"] == ["4"]
    assert "missing_or_bad_plugout_time=1" in rep.summary()


def test_header_without_needed_columns_is_a_clear_error():
    with pytest.raises(ValueError, match="El_kWh"):
        load_trondheim(["session_ID;Garage_ID;User_ID;Start_plugin;End_plugout", "1;a;b;21.12.2018 18:00;NA"])
    with pytest.raises(ValueError, match="empty"):
        load_trondheim([])


def test_decimal_comma_local_time_and_fields():
    (s,), rep = load(line(9, "21.12.2018 18:07", "22.12.2018 07:52", "29,87", "13,75", garage="UT9",
                          user="Share-14", utype="Shared", shared="Shared-12"))
    assert s.kwh == 29.87
    assert s.plugin == datetime(2018, 12, 21, 18, 7, tzinfo=OSLO)
    assert s.plugin.astimezone(timezone.utc).hour == 17  # CET = UTC+1 in December
    assert (s.garage_id, s.user_id, s.user_type, s.shared_id) == ("UT9", "Share-14", "Shared", "Shared-12")
    assert s.hours == pytest.approx(13.75)
    assert not rep.adjusted


def test_noon_to_noon_day_slot_rounding_and_demand_cap():
    sessions, rep = load(
        # Friday evening to Saturday morning: one instance, day = Friday, slot 0 = Friday 12:00.
        line("a", "21.12.2018 18:07", "22.12.2018 07:52", "20"),  # 6h07 -> 24.47 -> 24; 19h52 -> 79.47 -> 79
        line("b", "22.12.2018 11:50", "22.12.2018 12:20", "9"),  # before noon: still Friday's day; 95.3->95, 97.3->97
        line("c", "22.12.2018 12:00", "22.12.2018 12:05", "0,4"),  # Saturday's day; 0 and 0.33->0: one slot
        line("d", "22.12.2018 13:07", "22.12.2018 13:08", "0,1"),  # 4.47->4 and 4.53->5 (half up)
    )
    days = day_instances(sessions, report=rep)
    assert [d.day.isoformat() for d in days] == ["2018-12-21", "2018-12-22"]
    fri, sat = days
    assert fri.start == datetime(2018, 12, 21, 12, tzinfo=OSLO)
    a, b = fri.site.evs
    assert (a.arrival, a.departure, a.energy_kwh, a.max_kw) == (24, 79, 20.0, EV_KW)
    assert (b.arrival, b.departure) == (95, 97)
    assert b.energy_kwh == pytest.approx(7.2 * 2 * 0.25)  # 9 kWh charged, only 3.6 fit in two slots at 7.2 kW
    assert fri.site.n_slots == 97  # horizon stretched to the last departure, never cut
    c, d = sat.site.evs
    assert (c.arrival, c.departure, d.arrival, d.departure) == (0, 1, 4, 5)
    assert sat.site.n_slots == 96
    assert rep.adjusted["demand_capped_to_window"] == 1
    assert rep.adjusted["extended_to_one_slot"] == 1
    assert fri.site.name == "trondheim-2018-12-21" and fri.garage is None
    assert uncontrolled(fri.site).peak_kw() == pytest.approx(EV_KW)  # a left (slot 79) before b came (95)


def test_dst_night_counts_elapsed_time_not_wall_clock():
    # 2019-03-31 02:00 CET jumps to 03:00 CEST: 20:00 -> 08:00 is 11 h of charging time, not 12.
    # The file's Duration_hours column reads the wall clock on these rows; the loader notes the disagreement.
    sessions, rep = load(line("x", "30.03.2019 20:00", "31.03.2019 08:00", "40", "12"))
    assert sessions[0].hours == pytest.approx(11.0)
    assert rep.adjusted["duration_column_disagrees"] == 1
    (day,) = day_instances(sessions, report=rep)
    ev = day.site.evs[0]
    assert (ev.arrival, ev.departure) == (32, 76)  # 8 h then 11 h of 15-min slots after Saturday noon
    assert ev.energy_kwh == 40.0  # 44 slots * 1.8 kWh = 79.2 kWh would fit


def test_dst_ambiguous_and_nonexistent_wall_times_are_counted():
    sessions, rep = load(
        line("y", "27.10.2019 02:30", "27.10.2019 06:00", "5", "4,5"),  # 02:30 happens twice: first (CEST) taken
        line("z", "31.03.2019 02:30", "31.03.2019 06:00", "5", "2,5"),  # 02:30 never happens: read as 03:30 CEST
    )
    assert rep.adjusted["ambiguous_local_time"] == 1 and rep.adjusted["nonexistent_local_time"] == 1
    y, z = sessions
    assert y.plugin.utcoffset().total_seconds() == 7200 and y.hours == pytest.approx(4.5)
    assert z.hours == pytest.approx(2.5)


def test_by_garage_splits_a_day_into_one_site_per_garage_with_its_own_cap():
    sessions, _ = load(
        line("g1", "21.12.2018 18:00", "22.12.2018 07:00", "10", garage="Bl2"),
        line("g2", "21.12.2018 19:00", "22.12.2018 07:00", "10", garage="UT9"),
        line("g3", "21.12.2018 20:00", "22.12.2018 07:00", "10", garage="Bl2"),
    )
    whole = day_instances(sessions, cap_kw=11.0)
    assert len(whole) == 1 and len(whole[0].site.evs) == 3 and whole[0].site.tree.cap_kw == 11.0
    per = day_instances(sessions, by_garage=True)
    assert [(d.garage, [e.id for e in d.site.evs]) for d in per] == [("Bl2", ["g1", "g3"]), ("UT9", ["g2"])]
    assert per[0].site.name == "trondheim-Bl2-2018-12-21"
    with pytest.raises(ValueError, match="ev_kw"):
        day_instances(sessions, ev_kw=0)


def test_long_stays_end_at_the_48h_horizon_and_signals_cover_it():
    sessions, rep = load(
        line("p", "21.12.2018 18:00", "23.12.2018 18:00", "90"),  # plugged in two days: slots 24..216
        line("q", "22.12.2018 11:00", "22.12.2018 20:00", "10"),  # just before noon: still the 21st's day
    )
    asked = []

    def price(start, n):
        asked.append((start, n))
        return np.full(n, 0.1)

    (day,) = day_instances(sessions, price_fn=price, report=rep)
    p, q = day.site.evs
    assert (p.arrival, p.departure, p.energy_kwh) == (24, 192, 90.0)  # planned as leaving on the 23rd at noon
    assert (q.arrival, q.departure) == (92, 128)
    assert rep.adjusted["departure_truncated_to_horizon"] == 1
    assert asked == [(datetime(2018, 12, 21, 12, tzinfo=OSLO), 192)]
    assert len(day.site.price) == 192 and day.site.carbon is None
    (uncut,) = day_instances(sessions, max_horizon_slots=None)
    assert uncut.site.n_slots == 216 and uncut.site.evs[0].departure == 216
    with pytest.raises(ValueError, match="max_horizon_slots"):
        day_instances(sessions, max_horizon_slots=100)


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_real_file_counts_and_sums():
    sessions, rep = load_trondheim(DATA)
    # The data article: 6,878 sessions, 97 users, 24 garages, Dec 2018 - Jan 2020.
    assert rep.rows == 6878 and rep.used == 6827
    assert rep.skipped == {"missing_or_bad_plugout_time": 34, "plugout_not_after_plugin": 17}
    # 97 user ids in the file; "Share-32"'s only session has no plug-out, so 96 remain.
    assert len({s.user_id for s in sessions}) == 96 and len({s.garage_id for s in sessions}) == 24
    assert sum(s.kwh for s in sessions) == pytest.approx(87107.3, abs=0.05)
    assert sum(1 for s in sessions if s.garage_id == "Bl2") == 2237  # the paper's main garage: a third
    days = day_instances(sessions, report=rep)
    assert len(days) == 400 and sum(len(d.site.evs) for d in days) == 6827
    assert days[0].day.isoformat() == "2018-12-20"  # 21.12.2018 10:20 belongs to the day starting the 20th, noon
    assert rep.adjusted["demand_capped_to_window"] == 114  # of 6,827: 7.2 kW is what the chargers deliver
    assert rep.adjusted["departure_truncated_to_horizon"] == 191  # stays beyond D+2 12:00
    assert max(d.site.n_slots for d in days) == 192
    demand = sum(e.energy_kwh for d in days for e in d.site.evs)
    assert demand == pytest.approx(87023.6, abs=0.05)  # 99.9 % of the charged energy survives the cap
    peaks = [uncontrolled(d.site).peak_kw() for d in days]
    assert sum(peaks) / len(peaks) == pytest.approx(35.63, abs=0.01)
    assert max(peaks) == pytest.approx(15 * EV_KW)  # 15 cars charging at once on the busiest evening
