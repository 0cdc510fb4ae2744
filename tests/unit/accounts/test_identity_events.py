"""The identity events the API builds match their Avro contracts, round-trip through the codec, never carry a
password, and every one of them has a projection handler."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chargeverse.avro import Codec, EncodeError
from edges.api import identity as idm
from projections.postgres.identity import HANDLERS

EVENT_TYPES = ("AccountRegistered", "PasswordChanged", "ProfileUpdated", "VehicleAdded", "VehicleRemoved",
               "FavouriteAdded", "FavouriteRemoved", "PaymentMethodAdded", "PaymentMethodRemoved", "IdTokenIssued",
               "IdTokenBlocked")
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
KW = {"source": "api:test", "correlation_id": "req-1"}


def _events() -> list[tuple[str, dict]]:
    acct = idm.account_id_for("ada@example.com")
    vehicle = idm.VehicleBody.model_validate({"make": "Kia", "model": "EV6", "battery_kwh": 77.4,
                                              "connector_types": ["IEC_62196_T2", "IEC_62196_T2_COMBO"]})
    pm = idm.PaymentMethodBody.model_validate({"payment_method_id": "pm_1NvHhL2eZvKYlo2C"})
    return [
        ("AccountRegistered", idm.account_registered(account_id=acct, email="ada@example.com", password_hash=HASH,
                                                     display_name="Ada", roles=["driver"],
                                                     contract_id="NLCVEC12345678X", **KW)),
        ("PasswordChanged", idm.password_changed(account_id=acct, password_hash=HASH, **KW)),
        ("ProfileUpdated", idm.profile_updated(account_id=acct, changes={"phone": "+31201234567", "locale": None},
                                               **KW)),
        ("VehicleAdded", idm.vehicle_added(account_id=acct, vehicle_id="0190a0a0-0000-7000-8000-000000000001",
                                           body=vehicle, **KW)),
        ("VehicleRemoved", idm.vehicle_removed(account_id=acct, vehicle_id="0190a0a0-0000-7000-8000-000000000001",
                                               **KW)),
        ("FavouriteAdded", idm.favourite(account_id=acct, station_id="CP-1", **KW)),
        ("FavouriteRemoved", idm.favourite(account_id=acct, station_id="CP-1", **KW)),
        ("PaymentMethodAdded", idm.payment_method_added(account_id=acct, body=pm, **KW)),
        ("PaymentMethodRemoved", idm.payment_method_removed(account_id=acct, payment_method_id="pm_1NvHhL2eZvKY",
                                                            **KW)),
        ("IdTokenIssued", idm.id_token_issued(account_id=acct, uid="04A2B3C4", token_type="RFID",
                                              contract_id="NLCVEC12345678X", label="blue card",
                                              valid_until=datetime(2030, 1, 1, tzinfo=timezone.utc), **KW)),
        ("IdTokenBlocked", idm.id_token_blocked(account_id=acct, uid="04A2B3C4", reason="lost", **KW)),
    ]


def test_every_identity_event_round_trips_through_its_avro_schema() -> None:
    codec = Codec()
    built = _events()
    assert {t for t, _ in built} == set(EVENT_TYPES)
    for etype, rec in built:
        decoded_type, back = codec.decode(codec.encode(etype, rec))
        assert decoded_type == etype
        assert back["event_id"] == rec["event_id"] and back["account_id"] == rec["account_id"]
        for k, v in rec.items():
            if k not in ("occurred_at", "recorded_at"):
                assert back[k] == v, (etype, k)


def test_every_identity_event_has_a_projection_handler() -> None:
    assert set(HANDLERS) == set(EVENT_TYPES)


def test_only_argon2id_hashes_go_on_the_log() -> None:
    for bad in ("correct horse battery", "$2b$12$bcrypthashbcrypthash", "$argon2i$v=19$m=65536,t=3,p=4$x$y"):
        with pytest.raises(ValueError, match="argon2id"):
            idm.password_changed(account_id="a", password_hash=bad, **KW)
        with pytest.raises(ValueError, match="argon2id"):
            idm.account_registered(account_id="a", email="a@b.io", password_hash=bad, display_name=None,
                                   roles=["driver"], contract_id="c", **KW)


def test_profile_updates_name_exactly_the_fields_they_set() -> None:
    rec = idm.profile_updated(account_id="a", changes={"display_name": None}, **KW)
    assert rec["fields_set"] == ["display_name"] and rec["display_name"] is None and rec["phone"] is None
    with pytest.raises(ValueError):
        idm.profile_updated(account_id="a", changes={"email": "x@y.io"}, **KW)
    with pytest.raises(ValueError):
        idm.profile_updated(account_id="a", changes={}, **KW)


def test_a_record_missing_a_field_is_refused_by_the_codec() -> None:
    rec = idm.favourite(account_id="a", station_id="CP-1", **KW)
    del rec["station_id"]
    with pytest.raises(EncodeError):
        Codec().encode("FavouriteAdded", rec)
