"""The acceptance rule (edges/ocpi/models.py): every example payload of OCPI 2.2.1 is accepted as what it is, and
problems at core paths or in the structure are refused while descriptive deviations are only warned about."""

from __future__ import annotations

import copy

import pytest

from ocpi_examples import EXAMPLES, example
from edges.ocpi.models import check
from projections.postgres.ocpi_fold import loads

#: file prefix -> (kind, is a PATCH body); the first matching prefix wins
KINDS = [
    ("location_put_example_add_evse", "evse", False),
    ("location_patch_example_location", "location", True),
    ("location_patch_example_status", "evse", True),
    ("location_patch_example_remove_evse", "evse", True),
    ("location_patch_example_tariff", "connector", True),
    ("location_energymix", "energy_mix", False),
    ("location_regularhours", "hours", False),
    ("location_hours", "hours", False),
    ("location_", "location", False),
    ("session_patch", "session", True),
    ("session_", "session", False),
    ("cdr_", "cdr", False),
    ("tariff", "tariff", False),
    ("token_patch", "token", True),
    ("token_", "token", False),
    ("credentials", "credentials", False),
    ("version_details", "version_details", False),
    ("versions_info", "versions", False),
    ("type_displaytext", "display_text", False),
    ("transport_and_format_get_token_list", "token", False),
    ("transport_and_format_get_token_example", "token", False),
    ("transport_and_format_version_details", "version_details", False),
    ("transport_and_format_version_info", "versions", False),
]


def classify(name: str) -> tuple[str, bool]:
    return next((k, p) for prefix, k, p in KINDS if name.startswith(prefix))


def payloads(name: str) -> list[object]:
    """The object(s) a file holds: envelopes are unwrapped, fragments taken from their wrapper."""
    obj = loads(example(name))
    kind, _ = classify(name)
    if name.startswith("transport_and_format"):
        obj = obj["data"]
    if kind == "versions":
        return [{"versions": obj}]
    if name.startswith("location_energymix"):
        return [obj["energy_mix"]]
    if name.startswith("location_regularhours"):
        return [obj["opening_times"]]
    return obj if isinstance(obj, list) else [obj]


ALL = sorted(p.name for p in EXAMPLES.glob("*.json"))


def test_every_example_file_is_classified() -> None:
    assert len(ALL) == 59
    for name in ALL:
        classify(name)


@pytest.mark.parametrize("name", ALL)
def test_every_specification_example_is_accepted(name: str) -> None:
    kind, partial = classify(name)
    for obj in payloads(name):
        v = check(kind, obj, partial=partial)
        assert v.ok, f"{name} refused as {kind}: {v.errors}"


def test_the_non_conforming_examples_are_accepted_with_warnings_naming_each_deviation() -> None:
    v = check("evse", loads(example("location_put_example_add_evse.json")))
    assert v.ok
    assert {w.split(":")[0] for w in v.warnings} == {
        "connectors[0].power_type", "connectors[0].max_voltage", "connectors[0].max_amperage",
        "connectors[0].last_updated", "physical_reference"}
    v = check("tariff", loads(example("tariff_put_example.json")))
    assert v.ok and [w.split(":")[0] for w in v.warnings] == ["last_updated"]
    v = check("location", loads(example("location_example.json")))
    assert v.ok and v.warnings == []


def _location() -> dict:
    return loads(example("location_example.json"))


@pytest.mark.parametrize("mutate, where", [
    (lambda o: o.pop("id"), "id"),
    (lambda o: o.update(country_code=7), "country_code"),
    (lambda o: o["coordinates"].update(latitude="north"), "coordinates"),
    (lambda o: o["coordinates"].update(latitude="95.000000"), "coordinates"),
    (lambda o: o.update(coordinates="51.0,3.7"), "coordinates"),
    (lambda o: o["evses"][0].update(status="DANCING"), "evses[0].status"),
    (lambda o: o["evses"][1].pop("uid"), "evses[1].uid"),
    (lambda o: o["evses"][0]["connectors"][1].pop("id"), "evses[0].connectors[1].id"),
    (lambda o: o.update(evses={"uid": "1"}), "evses"),
    (lambda o: o["evses"][0].update(connectors="1"), "evses[0].connectors"),
    (lambda o: o.update(operator="BeCharged"), "operator"),
    (lambda o: o.update(last_updated="yesterday"), "last_updated"),
])
def test_core_and_structural_problems_refuse_a_location(mutate, where: str) -> None:  # noqa: ANN001
    obj = _location()
    mutate(obj)
    v = check("location", obj)
    assert not v.ok
    assert any(e.startswith(where) for e in v.errors), v.errors


@pytest.mark.parametrize("mutate, where", [
    (lambda o: o.pop("city"), "city"),
    (lambda o: o.update(name="x" * 300), "name"),
    (lambda o: o.update(facilities=["EV_CHARGING_HUB"]), "facilities[0]"),
    (lambda o: o["evses"][0]["connectors"][0].update(max_voltage="220"), "evses[0].connectors[0].max_voltage"),
    (lambda o: o["coordinates"].update(latitude="51.04"), "coordinates"),
])
def test_descriptive_deviations_are_warnings_not_refusals(mutate, where: str) -> None:  # noqa: ANN001
    obj = _location()
    mutate(obj)
    v = check("location", obj)
    if where == "coordinates":  # two decimals: readable degrees, only the spec's pattern is missed - no error
        assert v.ok
        return
    assert v.ok, v.errors
    assert any(w.startswith(where) for w in v.warnings), v.warnings


def test_a_patch_may_leave_fields_out_but_must_carry_last_updated() -> None:
    assert check("evse", {"status": "CHARGING", "last_updated": "2019-06-24T12:39:09Z"}, partial=True).ok
    v = check("evse", {"status": "CHARGING"}, partial=True)
    assert not v.ok and "last_updated" in v.message()
    v = check("evse", {"status": "FLYING", "last_updated": "2019-06-24T12:39:09Z"}, partial=True)
    assert not v.ok and v.errors[0].startswith("status")
    # a PUT without last_updated is only warned about (the Tariff PUT example has none), an unreadable one refused
    session = loads(example("session_example_1_simple_start.json"))
    del session["last_updated"]
    assert check("session", session).ok
    session["last_updated"] = None
    assert not check("session", session).ok


def test_a_body_that_is_not_an_object_is_refused() -> None:
    for body in ([], "x", 3, None):
        assert not check("location", body).ok


def test_tokens_and_credentials_core_fields() -> None:
    tok = loads(example("token_example_1_app_user.json"))
    assert check("token", tok).ok
    for field, value in (("valid", "yes"), ("whitelist", "SOMETIMES"), ("type", "BADGE")):
        bad = copy.deepcopy(tok)
        bad[field] = value
        assert not check("token", bad).ok, field
    cred = loads(example("credentials_example2.json"))
    assert check("credentials", cred).ok
    bad = copy.deepcopy(cred)
    bad["roles"][1]["role"] = "DRIVER"
    assert not check("credentials", bad).ok
    bad = copy.deepcopy(cred)
    bad["roles"] = []
    assert not check("credentials", bad).ok  # at least one role
