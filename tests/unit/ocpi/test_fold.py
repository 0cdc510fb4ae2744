"""projections/postgres/ocpi_fold.py: exact JSON, PUT/PATCH merges of the Location tree, no half-application."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpi_examples import EXAMPLES, example
from projections.postgres.ocpi_fold import (dumps, extract, loads, parse_datetime, patch_location, patch_object,
                                            point_of, put_into_location)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_survives_loads_dumps_with_numbers_spelled_as_sent(name: str) -> None:
    text = example(name)
    obj = loads(text)
    again = dumps(obj)
    assert loads(again) == obj
    # every number literal of the file appears unchanged in the re-serialisation
    import re
    for lit in re.findall(r"(?<=[:\[,\s])-?\d+\.\d+(?=[,\s\]}])", text):
        assert lit in again, (name, lit)


def test_decimal_spelling_and_key_order_are_kept() -> None:
    text = '{"b": 2.00, "a": [1, 0.10, -3.5e2, true, null], "c": "\\u00e9\\n"}'
    obj = loads(text)
    assert obj["b"] == Decimal("2.00") and str(obj["b"]) == "2.00"
    assert dumps(obj) == '{"b":2.00,"a":[1,0.10,-3.5E+2,true,null],"c":"\\u00e9\\n"}'
    assert list(obj) == ["b", "a", "c"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() |
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_dumps_is_valid_json_that_loads_back_equal(value: object) -> None:
    text = dumps(value)
    json.loads(text)
    assert loads(text) == value


def _loc() -> dict:
    return loads(example("location_example.json"))


def test_patch_of_the_location_replaces_given_fields_and_keeps_the_rest() -> None:
    loc = _loc()
    before = copy.deepcopy(loc)
    patch = loads(example("location_patch_example_location.json"))
    new = patch_object(loc, patch)
    assert new["name"] == "Interparking Gent Zuid" and new["last_updated"] == "2019-06-24T12:39:09Z"
    assert new["evses"] == before["evses"] and new["address"] == before["address"]
    assert loc == before  # the input is never mutated


def test_patch_of_an_evse_updates_it_and_the_locations_last_updated() -> None:
    loc = _loc()
    new = patch_location(loc, loads(example("location_patch_example_status.json")), "3256")
    assert new is not None
    assert extract(new, "3256")["status"] == "CHARGING"
    assert extract(new, "3257")["status"] == "RESERVED"
    assert new["last_updated"] == "2019-06-24T12:39:09Z"
    assert extract(new, "3256")["connectors"] == extract(loc, "3256")["connectors"]


def test_patch_of_a_connector_updates_its_evse_and_location_last_updated() -> None:
    loc = _loc()
    new = patch_location(loc, loads(example("location_patch_example_tariff.json")), "3256", "2")
    assert extract(new, "3256", "2")["tariff_ids"] == ["15"]
    assert extract(new, "3256", "1")["tariff_ids"] == ["11"]
    assert extract(new, "3256")["last_updated"] == new["last_updated"] == "2019-06-24T12:39:09Z"
    assert extract(new, "3257")["last_updated"] == "2015-06-29T20:39:09Z"


def test_a_list_in_a_patch_replaces_the_whole_list() -> None:
    new = patch_location(_loc(), {"capabilities": [], "last_updated": "2020-01-01T00:00:00Z"}, "3256")
    assert extract(new, "3256")["capabilities"] == []


def test_put_of_an_evse_appends_a_new_one_or_replaces_an_existing_one() -> None:
    loc = _loc()
    evse = loads(example("location_put_example_add_evse.json"))
    evse = dict(evse, uid="4000")
    added = put_into_location(loc, evse, "4000", None)
    assert [e["uid"] for e in added["evses"]] == ["3256", "3257", "4000"]
    assert added["last_updated"] == "2019-06-24T12:39:09Z"
    replaced = put_into_location(loc, loads(example("location_put_example_add_evse.json")), "3256", None)
    assert [e["uid"] for e in replaced["evses"]] == ["3256", "3257"]
    assert replaced["evses"][0]["evse_id"] == "BE*BEC*E041503003" and "floor" in replaced["evses"][0]


def test_put_of_a_connector_needs_its_evse() -> None:
    loc = _loc()
    conn = {"id": "9", "standard": "CHADEMO", "format": "CABLE", "power_type": "DC", "max_voltage": 500,
            "max_amperage": 125, "last_updated": "2021-01-01T00:00:00Z"}
    new = put_into_location(loc, conn, "3257", "9")
    assert [c["id"] for c in extract(new, "3257")["connectors"]] == ["1", "9"]
    assert extract(new, "3257")["last_updated"] == new["last_updated"] == "2021-01-01T00:00:00Z"
    assert put_into_location(loc, conn, "nope", "9") is None


def test_missing_targets_give_none_and_ids_match_case_insensitively() -> None:
    loc = dict(_loc(), evses=[dict(_loc()["evses"][0], uid="abc-Def")])
    assert patch_location(loc, {"status": "BLOCKED", "last_updated": "2020-01-01T00:00:00Z"}, "missing") is None
    assert patch_location(loc, {"last_updated": "2020-01-01T00:00:00Z"}, "ABC-def", "7") is None
    assert extract(loc, "ABC-DEF")["uid"] == "abc-Def"
    assert patch_location(loc, {"status": "BLOCKED", "last_updated": "2020-01-01T00:00:00Z"}, "abc-def") is not None


def test_points_and_datetimes() -> None:
    assert point_of(_loc()) == (3.729944, 51.047599)
    assert point_of({"coordinates": {"latitude": "x", "longitude": "1"}}) is None
    assert point_of({"coordinates": {"latitude": "91.0", "longitude": "1"}}) is None
    assert parse_datetime("2015-06-29T20:39:09Z").isoformat() == "2015-06-29T20:39:09+00:00"
    assert parse_datetime("2015-06-29T20:39:09").isoformat() == "2015-06-29T20:39:09+00:00"  # no designator: UTC
    assert parse_datetime("2015-06-29T22:39:09.5+02:00").isoformat() == "2015-06-29T20:39:09.500000+00:00"
    for bad in ("2015-06-29", "yesterday", 1435610349, None, "2015-13-29T20:39:09Z"):
        assert parse_datetime(bad) is None
