"""Pure fleet and session-control rules: who a fleet's policy refuses, months, budgets, report rows, commands."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from chargeverse.ocpp_commands import validate
from edges.api.fleets import ReportSession, parse_budget, parse_month, report_rows
from edges.api.session_control import lock_keys, start_command, start_status, stop_command
from edges.ocpp.authorization import FleetRule, fleet_refusal


def rule(budget: str | None = None, spent: str = "0", stations=None, networks=None) -> FleetRule:  # noqa: ANN001
    return FleetRule("F1", None if budget is None else Decimal(budget), Decimal(spent),
                     None if stations is None else tuple(stations), None if networks is None else tuple(networks))


def test_no_fleet_means_no_refusal() -> None:
    assert fleet_refusal([], "S1", "NetA") is None


def test_budget_spent_refuses_and_below_budget_admits() -> None:
    assert fleet_refusal([rule("50.00", "49.99")], "S1", "NetA") is None
    assert "budget" in fleet_refusal([rule("50.00", "50.00")], "S1", "NetA")
    assert "budget" in fleet_refusal([rule("0", "0")], None, None)  # a zero budget admits nothing


def test_station_and_network_lists() -> None:
    assert fleet_refusal([rule(stations=["S1"])], "S1", None) is None
    assert "station" in fleet_refusal([rule(stations=["S1"])], "S2", None)
    assert fleet_refusal([rule(networks=["NetA"])], "S9", "NetA") is None
    assert "network" in fleet_refusal([rule(networks=["NetA"])], "S9", "NetB")
    assert "network" in fleet_refusal([rule(networks=["NetA"])], "S9", None)  # unknown network: not allowed


def test_without_a_station_only_the_budget_is_checked() -> None:
    assert fleet_refusal([rule(stations=["S1"], networks=["X"])], None, None) is None


def test_every_fleet_must_admit() -> None:
    assert fleet_refusal([rule(), rule(stations=["S2"])], "S1", None) is not None


@pytest.mark.parametrize("text,expected", [("2026-11", (2026, 11)), ("2000-01", (2000, 1))])
def test_months(text: str, expected: tuple[int, int]) -> None:
    assert parse_month(text) == expected


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-11", "2026-1", "", "1999-12", "2026-11-01"])
def test_bad_months(text: str) -> None:
    with pytest.raises(ValueError):
        parse_month(text)


def test_budgets_are_decimals_never_floats() -> None:
    assert parse_budget("150") == Decimal("150") and parse_budget("0.10") == Decimal("0.10")
    assert parse_budget(None) is None
    for bad in ("-1", "1e3", "1.234", "NaN", "abc", "1,5"):
        with pytest.raises(ValueError):
            parse_budget(bad)


def test_report_rows_group_by_cost_centre_and_driver_and_add_up() -> None:
    t = datetime(2026, 11, 5, tzinfo=timezone.utc)
    s = [ReportSession("a", "d1", "CC1", "S", t, Decimal("10.5"), "EUR", Decimal("2.50"), Decimal("2.75")),
         ReportSession("b", "d1", "CC1", "S", t, Decimal("1"), "EUR", Decimal("0.10"), None),
         ReportSession("c", "d2", None, "S", t, Decimal("3"), "EUR", Decimal("1.00"), Decimal("1.21"))]
    rows = report_rows(s)
    assert [(r["cost_centre"], r["account_id"]) for r in rows] == [(None, "d2"), ("CC1", "d1")]
    d1 = rows[1]
    assert (d1["sessions"], d1["energy_kwh"], d1["excl_vat"], d1["incl_vat"]) == (2, "11.5", "2.60", "2.85")


def test_start_and_stop_commands_pass_the_official_schemas() -> None:
    for version in ("ocpp1.6", "ocpp2.0.1"):
        action, payload = start_command(version, "APPABC", 2, 7)
        assert validate(action, payload, version) == version
    assert start_command("ocpp1.6", "U", 1, 1) == ("RemoteStartTransaction", {"idTag": "U", "connectorId": 1})
    assert stop_command("ocpp1.6", "42") == ("RemoteStopTransaction", {"transactionId": 42})
    assert stop_command("ocpp2.0.1", "tx-1") == ("RequestStopTransaction", {"transactionId": "tx-1"})
    assert validate(*stop_command("ocpp2.0.1", "tx-1"), "ocpp2.0.1")
    with pytest.raises(ValueError):
        stop_command("ocpp1.6", "not-a-number")


def test_lock_keys_differ_per_connector_and_token() -> None:
    a, b = lock_keys("S1", 1, "U1"), lock_keys("S1", 2, "U1")
    assert a[0] != b[0] and a[1] == b[1]


def test_start_status() -> None:
    assert start_status(None, None, None) == "PENDING"
    assert start_status("RESULT", {"status": "Accepted"}, None) == "ACCEPTED"
    assert start_status("RESULT", {"status": "Rejected"}, None) == "REJECTED"
    assert start_status("OFFLINE", None, None) == "FAILED"
    assert start_status("RESULT", {"status": "Accepted"}, "s1") == "STARTED"
