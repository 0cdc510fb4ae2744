"""Every account input is validated with a reason, and the ids that decide event keys are stable."""

from __future__ import annotations

import pydantic
import pytest

from edges.api import identity as idm


@pytest.mark.parametrize("raw, norm", [
    ("Ada@Example.COM", "ada@example.com"),
    ("  ada.lovelace+ev@mail.example.org ", "ada.lovelace+ev@mail.example.org"),
    ("o'brien@xn--bcher-kva.example", "o'brien@xn--bcher-kva.example"),
])
def test_emails_normalise_to_trimmed_lower_case(raw: str, norm: str) -> None:
    assert idm.normalise_email(raw) == norm


@pytest.mark.parametrize("raw", [
    "", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "ada @example.com", "ada@exa mple.com",
    ".ada@example.com", "ada.@example.com", "a..da@example.com", "ädä@example.com", "ada@exämple.com",
    "ada@example.com\x00", "a" * 65 + "@example.com", "a@" + "b" * 250 + ".com", "ada@-example.com",
])
def test_unusable_emails_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(ValueError, match="email"):
        idm.normalise_email(raw)


def test_the_account_id_is_the_same_for_every_spelling_of_an_email_and_differs_between_emails() -> None:
    a = idm.account_id_for("Ada@Example.com")
    assert a == idm.account_id_for(" ada@example.COM ") == idm.account_id_for("ada@example.com")
    assert a != idm.account_id_for("ada2@example.com")
    assert len(a) == 36 and a.count("-") == 4
    assert idm.id_token_key("04A1B2C3") != idm.id_token_key("04A1B2C4")
    assert idm.id_token_key("04A1B2C3") != idm.account_id_for("04a1b2c3@x.io")


@pytest.mark.parametrize("pw, why", [
    ("short", "12-128"), ("x" * 129, "12-128"), ("aaaaaaaaaaaaaaaa", "repetitive"), ("abababababab", "repetitive"),
    ("valid-but\x00nul", "control"), ("ada@example.com", "email"),
])
def test_weak_or_malformed_new_passwords_are_refused(pw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        idm.check_new_password(pw, "ada@example.com")


def test_a_long_passphrase_is_accepted() -> None:
    idm.check_new_password("correct horse battery staple", "ada@example.com")
    idm.check_new_password("ünïcödé pässwörd ok", None)


def _errors(model: type[pydantic.BaseModel], data: dict) -> list[dict]:
    with pytest.raises(pydantic.ValidationError) as exc:
        model.model_validate(data)
    return exc.value.errors(include_input=False)


def test_register_body_normalises_the_email_and_only_offers_self_service_roles() -> None:
    b = idm.RegisterBody.model_validate({"email": "Ada@Example.com", "password": "correct horse battery"})
    assert b.email == "ada@example.com" and b.role == "driver"
    assert idm.RegisterBody.model_validate({"email": "f@x.io", "password": "correct horse battery",
                                           "role": "fleet_manager"}).role == "fleet_manager"
    for role in ("admin", "operator", "auditor", "root"):
        errs = _errors(idm.RegisterBody, {"email": "f@x.io", "password": "correct horse battery", "role": role})
        assert errs[0]["loc"] == ("role",)
    assert _errors(idm.RegisterBody, {"email": "f@x.io", "password": "correct horse battery", "is_admin": True})
    assert _errors(idm.RegisterBody, {"email": 5, "password": "correct horse battery"})[0]["loc"] == ("email",)
    assert "12-128" in _errors(idm.RegisterBody, {"email": "f@x.io", "password": "short"})[0]["msg"]


def test_password_change_needs_a_different_policy_compliant_password() -> None:
    assert idm.PasswordBody.model_validate({"current_password": "x", "new_password": "correct horse battery"})
    assert "differ" in _errors(idm.PasswordBody, {"current_password": "correct horse battery",
                                                  "new_password": "correct horse battery"})[0]["msg"]
    assert _errors(idm.PasswordBody, {"current_password": "x", "new_password": "tooshort"})


def test_profile_patch_takes_only_present_fields_and_validates_each() -> None:
    p = idm.ProfilePatch.model_validate({"display_name": "  Ada  ", "phone": None})
    assert p.model_fields_set == {"display_name", "phone"} and p.display_name == "Ada" and p.phone is None
    assert "nothing to change" in _errors(idm.ProfilePatch, {})[0]["msg"]
    assert "E.164" in _errors(idm.ProfilePatch, {"phone": "0612345678"})[0]["msg"]
    assert "locale" in _errors(idm.ProfilePatch, {"locale": "english"})[0]["msg"]
    assert "control" in _errors(idm.ProfilePatch, {"display_name": "Ada\u2028Evil"})[0]["msg"]
    assert idm.ProfilePatch.model_validate({"locale": "nl-NL", "phone": "+31201234567"}).locale == "nl-NL"


def test_vehicles_need_known_connectors_and_plausible_figures() -> None:
    ok = {"make": "Kia", "model": "EV6", "battery_kwh": 77.4, "connector_types": ["IEC_62196_T2_COMBO"]}
    v = idm.VehicleBody.model_validate(ok)
    assert v.battery_kwh == 77.4 and v.max_dc_kw is None
    assert idm.VehicleBody.model_validate({**ok, "battery_kwh": 77}).battery_kwh == 77.0
    for bad, field in [({"battery_kwh": 0}, "battery_kwh"), ({"battery_kwh": -1}, "battery_kwh"),
                       ({"battery_kwh": 1e308}, "battery_kwh"), ({"battery_kwh": "77"}, "battery_kwh"),
                       ({"battery_kwh": float("nan")}, "battery_kwh"), ({"max_dc_kw": 5000}, "max_dc_kw"),
                       ({"year": 1800}, "year"), ({"connector_types": []}, "connector_types"),
                       ({"connector_types": ["TYPE2"]}, "connector_types"),
                       ({"connector_types": ["IEC_62196_T2", "IEC_62196_T2"]}, "connector_types"),
                       ({"make": ""}, "make"), ({"make": "K\x00ia"}, "make"), ({"colour": "red"}, "colour")]:
        errs = _errors(idm.VehicleBody, {**ok, **bad})
        assert errs[0]["loc"][0] == field, (bad, errs)


def test_rfid_uids_are_normalised_hex_of_a_real_uid_length() -> None:
    assert idm.normalise_rfid_uid("04:a2:b3:c4:d5:e6:f7") == "04A2B3C4D5E6F7"
    assert idm.normalise_rfid_uid("deadbeef") == "DEADBEEF"
    for bad in ("", "xyz12345", "DEADBEE", "0" * 22, "DEAD BEEF 1", "DEADBEEF\x00"):
        with pytest.raises(ValueError, match="RFID uid"):
            idm.normalise_rfid_uid(bad)
    t = idm.IdTokenBody.model_validate({"type": "RFID", "uid": "04-a2-b3-c4"})
    assert t.uid == "04A2B3C4"
    assert _errors(idm.IdTokenBody, {"type": "RFID"})
    assert _errors(idm.IdTokenBody, {"type": "APP_USER", "uid": "DEADBEEF"})
    assert _errors(idm.IdTokenBody, {"type": "eMAID", "uid": "DEADBEEF"})


def test_app_token_uids_are_random_and_fit_an_ocpp_16_idtag() -> None:
    uids = {idm.new_app_token_uid() for _ in range(100)}
    assert len(uids) == 100
    assert all(len(u) == 20 and u.startswith("APP") and u.isalnum() for u in uids)


def test_charge_time_estimate_follows_the_stated_model() -> None:
    # 77.4 kWh from 20 to 80 % on 11 kW AC: 46.44 kWh / 0.9 / 11 kW = 4.69 h
    assert idm.estimate_charge_minutes(77.4, 20, 80, 11, dc=False) == 281
    # DC 150 kW to 80 %: 51.6 kWh / 150 kW = 20.64 min; 80-100 % at a third (50 kW): 17.2 kWh / 50 kW = 20.64 min
    assert idm.estimate_charge_minutes(77.4, 20, 80, 150, dc=True) == 21
    assert idm.estimate_charge_minutes(77.4, 20, 100, 150, dc=True) == 41
    assert idm.estimate_charge_minutes(77.4, 85, 100, 150, dc=True) == 15  # 12.9 kWh at 50 kW = 15.48 min
    assert idm.charge_power_kw(11, 240, 22, dc=False) == 11
    assert idm.charge_power_kw(11, 240, 150, dc=True) == 150
    assert idm.charge_power_kw(None, None, None, dc=True) is None
    with pytest.raises(ValueError):
        idm.estimate_charge_minutes(77.4, 80, 20, 11, dc=False)
