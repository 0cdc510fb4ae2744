"""OCPP profile dicts validate against the official schemas shipped in the `ocpp` package."""

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import jsonschema
import ocpp
import pytest

from streams.smartcharging.profiles import periods, set_charging_profile_v201, tx_profile_v16

SCHEMAS = Path(ocpp.__file__).parent
V16 = json.loads((SCHEMAS / "v16/schemas/SetChargingProfile.json").read_text(), parse_float=Decimal)
V201 = json.loads((SCHEMAS / "v201/schemas/SetChargingProfileRequest.json").read_text(), parse_float=Decimal)
START = datetime(2021, 5, 3, 7, 0, tzinfo=timezone.utc)
PLAN = [0.0, 6.6, 6.6, 3.3333, 3.3333, 0.0, 1.05]


def check(schema, payload):
    # The ocpp library validates decoded JSON with parse_float=Decimal (multipleOf 0.1 on floats).
    doc = json.loads(json.dumps(payload), parse_float=Decimal)
    jsonschema.Draft4Validator(schema).validate(doc)


@pytest.mark.parametrize("unit", ["W", "A"])
def test_v16_tx_profile_validates(unit):
    p = tx_profile_v16(PLAN, START, 900, connector_id=1, profile_id=7, transaction_id=42, unit=unit, min_kw=1.4)
    check(V16, p)
    assert p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"


@pytest.mark.parametrize("unit", ["W", "A"])
def test_v201_profile_validates(unit):
    p = set_charging_profile_v201(PLAN, START, 900, evse_id=1, profile_id=7, transaction_id="tx-1", unit=unit)
    check(V201, p)
    assert p["chargingProfile"]["chargingSchedule"][0]["startSchedule"] == "2021-05-03T07:00:00Z"


def test_schema_check_is_not_vacuous():
    bad = tx_profile_v16(PLAN, START, 900, 1, 7)
    bad["csChargingProfiles"]["chargingProfilePurpose"] = "Nonsense"
    with pytest.raises(jsonschema.ValidationError):
        check(V16, bad)
    bad2 = set_charging_profile_v201(PLAN, START, 900, 1, 7)
    del bad2["chargingProfile"]["chargingSchedule"][0]["id"]
    with pytest.raises(jsonschema.ValidationError):
        check(V201, bad2)


def test_periods_merge_equal_slots_and_round_down():
    ps = periods(PLAN, 900, "W")
    assert [x["startPeriod"] for x in ps] == [0, 900, 2700, 4500, 5400]
    assert [x["limit"] for x in ps] == [0.0, 6600.0, 3333.3, 0.0, 1050.0]
    amps = periods([6.9], 900, "A", phases=3, voltage=230)
    assert amps[0]["limit"] == 10.0  # 6900 / 690 = 10 A per phase
    assert periods([7.0], 900, "A", phases=1, voltage=230)[0]["limit"] == 30.4  # 30.43 rounded down


def test_naive_start_is_rejected():
    with pytest.raises(ValueError):
        tx_profile_v16(PLAN, datetime(2021, 5, 3), 900, 1, 7)
