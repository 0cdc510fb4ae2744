"""Home mode's arithmetic, pure: 'ready by 07:30' is the next 07:30 on the site's clock (across midnight and DST),
and the energy for a target state of charge comes from the vehicle's battery and the session's SoC."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from edges.api.smartcharging import energy_for_soc, next_local

AMS = ZoneInfo("Europe/Amsterdam")


def test_ready_by_is_the_next_time_the_site_clock_shows_it() -> None:
    evening = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)  # 19:00 in Amsterdam
    assert next_local("07:30", AMS, evening) == datetime(2026, 11, 28, 6, 30, tzinfo=timezone.utc)
    early = datetime(2026, 11, 27, 5, 0, tzinfo=timezone.utc)  # 06:00 in Amsterdam: today's 07:30 is still ahead
    assert next_local("07:30", AMS, early) == datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)


def test_ready_by_follows_the_local_clock_across_a_dst_change() -> None:
    before = datetime(2026, 10, 24, 20, 0, tzinfo=timezone.utc)  # the night the clocks go back
    assert next_local("07:30", AMS, before) == datetime(2026, 10, 25, 6, 30, tzinfo=timezone.utc)  # CET, +1


@pytest.mark.parametrize("bad", ["7:30", "24:00", "07:60", "", "half past seven"])
def test_a_bad_ready_by_time_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        next_local(bad, AMS, datetime(2026, 11, 27, tzinfo=timezone.utc))


def test_energy_for_a_target_soc_counts_from_the_known_soc_or_from_empty() -> None:
    assert energy_for_soc(60.0, 80, 30) == pytest.approx(30.0)
    assert energy_for_soc(60.0, 80, None) == pytest.approx(48.0)  # unknown SoC: plan the worst case
    assert energy_for_soc(60.0, 80, 95) == 0.0  # already above the target


@pytest.mark.parametrize("battery, target", [(0.0, 80), (-5.0, 80), (float("nan"), 80), (60.0, 0), (60.0, 120)])
def test_impossible_home_mode_inputs_are_refused(battery: float, target: float) -> None:
    with pytest.raises(ValueError):
        energy_for_soc(battery, target, None)
