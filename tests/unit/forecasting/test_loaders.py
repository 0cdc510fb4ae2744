"""Loaders: every row is either parsed or skipped with a reason, on inline samples and on the real files."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from streams.forecasting import loaders as L

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sessions"

TR_HEADER = ("session_ID;Garage_ID;User_ID;User_type;Shared_ID;Start_plugin;Start_plugin_hour;End_plugout;"
             "End_plugout_hour;El_kWh;Duration_hours;month_plugin;weekdays_plugin\n")


def test_trondheim_inline_counts_each_dirty_reason() -> None:
    text = TR_HEADER + "\n".join([
        "1;G1;U1;Private;NA;21.12.2018 10:20;10;21.12.2018 10:23;10;0,3;0,05;Dec;Friday",       # ok
        "2;G1;U1;Private;NA;21.12.2018 11:00;11;NA;NA;4,2;NA;Dec;Friday",                       # missing end
        "3;G1;U1;Private;NA;21.12.2018 12:00;12;21.12.2018 13:00;13;0;1;Dec;Friday",            # zero kWh
        "4;G1;U2;Private;NA;22.12.2018 12:00;12;22.12.2018 13:00;13;-1,5;1;Dec;Saturday",       # negative kWh
        "5;G1;U2;Private;NA;01.02.2019 08:00;8;01.02.2019 09:30;9;5,5;1,5;Jan;Wednesday",       # swapped: 2 Jan
        "6;G1;U2;Private;NA;yesterday;8;01.02.2019 09:30;9;5,5;1,5;Jan;Wednesday",              # unparseable
        "7;G1;U2;Private;NA;05.01.2019 08:00;8;04.01.2019 09:30;9;5,5;1,5;Jan;Saturday",        # end before start
    ]) + "\n"
    recs, rep = L.parse_trondheim(io.StringIO(text))
    assert rep.rows == 7 and rep.parsed == 2 and len(recs) == 2
    assert rep.skipped == {L.MISSING_END: 1, L.NON_POSITIVE_KWH: 2, L.UNPARSEABLE: 1, L.END_BEFORE_START: 1}
    assert rep.repaired == {L.SWAPPED_DAY_MONTH: 1}
    assert rep.examples[L.NON_POSITIVE_KWH] == [3, 4]
    swapped = [r for r in recs if r.session_id == "5"][0]
    assert (swapped.plug_in.month, swapped.plug_in.day) == (1, 2)
    assert swapped.duration_h == pytest.approx(1.5)
    assert swapped.plug_in.utcoffset() == timedelta(hours=1)  # Oslo winter time, tz-aware


def test_acn_inline_counts_and_first_user_input_only() -> None:
    base = {"connectionTime": "Sat, 01 May 2021 20:42:47 GMT", "disconnectTime": "Sat, 01 May 2021 21:42:47 GMT",
            "doneChargingTime": None, "kWhDelivered": 3.0, "sessionID": "s", "siteID": "0002",
            "stationID": "st", "timezone": "America/Los_Angeles", "userID": "7", "userInputs": None}
    rows = [
        dict(base, userInputs=[
            {"modifiedAt": "Sat, 01 May 2021 20:50:00 GMT", "kWhRequested": 99.0,
             "requestedDeparture": "Sun, 02 May 2021 08:00:00 GMT", "WhPerMile": 400, "milesRequested": 250},
            {"modifiedAt": "Sat, 01 May 2021 20:42:50 GMT", "kWhRequested": 10.0,
             "requestedDeparture": "Sat, 01 May 2021 22:42:47 GMT", "WhPerMile": 250, "milesRequested": 40}]),
        dict(base, disconnectTime=None),
        dict(base, kWhDelivered=0.0),
        dict(base, connectionTime="not a date"),
        dict(base, userID=None),
    ]
    recs, rep = L.parse_acn(json.loads(json.dumps(rows)))
    assert (rep.rows, rep.parsed) == (5, 2)
    assert rep.skipped == {L.MISSING_END: 1, L.NON_POSITIVE_KWH: 1, L.UNPARSEABLE: 1}
    assert rep.flagged[L.NO_USER] == 1
    first = [r for r in recs if r.user_id == "7"][0]
    assert first.requested_kwh == 10.0  # the earliest input, not the later edit
    assert (first.wh_per_mile, first.miles_requested) == (250.0, 40.0)  # the car and range of that same input
    assert [r for r in recs if r.user_id is None][0].wh_per_mile is None  # no app input: not stated
    assert first.plug_in.hour == 13  # 20:42 GMT is 13:42 in Los Angeles (PDT)


def test_palo_alto_inline_swapped_and_dst() -> None:
    header = ("Station Name,Start Date,Start Time Zone,End Date,End Time Zone,Total Duration (hh:mm:ss),"
              "Charging Time (hh:mm:ss),Energy (kWh),Port Number,Plug In Event Id,User ID\n")
    text = header + "\n".join([
        "S,3/10/2012 18:00,PST,3/11/2012 9:36,PDT,14:36:00,2:00:00,6.0,1,1,u1",   # over the DST change: 14.6 h
        "S,25/3/2012 18:00,PDT,25/3/2012 19:00,PDT,1:00:00,1:00:00,2.0,1,2,u1",   # day first: month 25 impossible
        "S,3/12/2012 18:00,PDT,3/12/2012 19:00,PDT,1:00:00,1:00:00,0,1,3,u1",     # zero kWh
        "S,3/12/2012 18:00,PDT,,PDT,1:00:00,1:00:00,2.0,1,4,u1",                  # missing end
    ]) + "\n"
    recs, rep = L.parse_palo_alto(io.StringIO(text))
    assert (rep.rows, rep.parsed) == (4, 2)
    assert rep.skipped == {L.NON_POSITIVE_KWH: 1, L.MISSING_END: 1}
    assert rep.repaired == {L.SWAPPED_DAY_MONTH: 1}
    dst = [r for r in recs if r.session_id == "1"][0]
    assert dst.duration_h == pytest.approx(14.6)  # a naive subtraction would say 15.6
    assert L.DURATION_COLUMN_DISAGREES not in rep.flagged


def test_real_acn_counts() -> None:
    recs, rep = L.load_acn(DATA / "acn_caltech_2021.json")
    assert rep.rows == 2114 and rep.consistent
    assert rep.parsed == len(recs) == 2114 and not rep.skipped
    assert rep.flagged == {L.NO_USER: 203, L.DONE_AFTER_UNPLUG: 19}
    assert sum(r.requested_kwh is not None for r in recs) == 1911
    assert sum(r.wh_per_mile is not None for r in recs) == 1911
    assert all(a.plug_in <= b.plug_in for a, b in zip(recs, recs[1:]))


def test_real_trondheim_counts() -> None:
    recs, rep = L.load_trondheim(DATA / "norway_trondheim_2018_2020.csv")
    assert rep.rows == 6878
    assert rep.skipped == {L.MISSING_END: 34}
    assert rep.parsed == len(recs) == 6844 == rep.rows - 34
    assert not rep.repaired
    # 11, not 22: the DST nights agree once durations are computed on absolute time (naive subtraction: 22)
    assert rep.flagged == {L.DURATION_COLUMN_DISAGREES: 11}
    assert len({r.user_id for r in recs}) == 96  # one of the 97 users has only sessions without an end


def test_real_palo_alto_counts() -> None:
    recs, rep = L.load_palo_alto(DATA / "palo_alto_2011_2013.csv")
    assert rep.rows == 9999 and rep.parsed == len(recs) == 9999 and not rep.skipped
    assert rep.flagged == {L.DURATION_COLUMN_DISAGREES: 35, L.NO_USER: 179}
    assert all(r.kwh > 0 and r.unplug >= r.plug_in for r in recs)
