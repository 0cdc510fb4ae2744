"""Our drivers' tokens as OCPI Tokens and the real-time authorization decision (edges/ocpi/our_tokens.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edges.ocpi.models import check
from edges.ocpi.our_tokens import (ALLOWED, BLOCKED, EXPIRED, NOT_ALLOWED, BadLocationReferences, IdTokenRow,
                                   authorization_info, decide, last_updated, location_references, ocpi_type,
                                   token_doc, type_matches)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(days=10)


def row(**kw: object) -> IdTokenRow:
    base = dict(uid="04A1B2C3", type=None, contract_id="NL-CVS-C00000001-X", account_id="a-1", status="Accepted",
                valid_until=None, group_id=None, updated_at=T0)
    base.update(kw)
    return IdTokenRow(**base)  # type: ignore[arg-type]


def doc(r: IdTokenRow) -> dict:
    return token_doc(r, country_code="NL", party_id="CVS", issuer="chargeverse", now=NOW)


def test_token_document_is_a_valid_ocpi_token() -> None:
    d = doc(row(group_id="FLEET-1"))
    assert check("token", d).ok and not check("token", d).warnings
    assert d == {"country_code": "NL", "party_id": "CVS", "uid": "04A1B2C3", "type": "RFID",
                 "contract_id": "NL-CVS-C00000001-X", "issuer": "chargeverse", "group_id": "FLEET-1",
                 "valid": True, "whitelist": "ALLOWED", "last_updated": "2024-04-21T12:00:00Z"}


@pytest.mark.parametrize("ocpp,ocpi", [(None, "RFID"), ("ISO14443", "RFID"), ("ISO15693", "RFID"),
                                       ("Central", "APP_USER"), ("eMAID", "OTHER"), ("KeyCode", "OTHER")])
def test_type_mapping(ocpp: str | None, ocpi: str) -> None:
    assert ocpi_type(ocpp) == ocpi
    assert type_matches(row(type=ocpp), ocpi) and type_matches(row(type=ocpp), ocpi.lower())
    assert not type_matches(row(type=ocpp), "AD_HOC_USER")


def test_a_token_without_contract_uses_its_uid() -> None:
    assert doc(row(contract_id=None))["contract_id"] == "04A1B2C3"


@pytest.mark.parametrize("status,valid_until,allowed,valid", [
    ("Accepted", None, ALLOWED, True),
    ("Accepted", NOW + timedelta(seconds=1), ALLOWED, True),
    ("Accepted", NOW, EXPIRED, False),                  # valid_until is exclusive
    ("Accepted", NOW - timedelta(days=1), EXPIRED, False),
    ("Expired", None, EXPIRED, False),
    ("Blocked", None, BLOCKED, False),
    ("Blocked", NOW - timedelta(days=1), BLOCKED, False),  # blocked beats expired
    ("Invalid", None, NOT_ALLOWED, False),
])
def test_decision_and_valid_flag_agree(status: str, valid_until: datetime | None, allowed: str,
                                       valid: bool) -> None:
    r = row(status=status, valid_until=valid_until)
    got, reason = decide(r, NOW)
    assert got == allowed and (reason is None) == (allowed == ALLOWED)
    assert doc(r)["valid"] is valid


def test_last_updated_moves_to_the_moment_a_token_expired() -> None:
    exp = NOW - timedelta(days=1)
    assert last_updated(row(valid_until=exp), NOW) == exp
    assert last_updated(row(valid_until=NOW + timedelta(days=1)), NOW) == T0   # not yet: the row's own stamp
    assert last_updated(row(valid_until=T0 - timedelta(days=1)), NOW) == T0    # expired before its last change


@pytest.mark.parametrize("body,expect", [
    (None, None),
    ({"location_id": "LOC1"}, ("LOC1", [])),
    ({"location_id": "LOC1", "evse_uids": ["E1", "E2"]}, ("LOC1", ["E1", "E2"])),
    ({"location_id": "LOC1", "evse_uids": None}, ("LOC1", [])),
])
def test_location_references(body: object, expect: object) -> None:
    assert location_references(body) == expect


@pytest.mark.parametrize("body", [[], "LOC1", {}, {"location_id": ""}, {"location_id": "x" * 37},
                                  {"location_id": 5}, {"location_id": "L", "evse_uids": "E1"},
                                  {"location_id": "L", "evse_uids": [1]}])
def test_bad_location_references_are_refused(body: object) -> None:
    with pytest.raises(BadLocationReferences):
        location_references(body)


def test_authorization_info_allowed_echoes_location_and_reference() -> None:
    t = doc(row())
    info = authorization_info(ALLOWED, t, reference="ref1", location=("LOC1", ["E1"]), reason=None)
    assert info == {"allowed": "ALLOWED", "token": t, "location": {"location_id": "LOC1", "evse_uids": ["E1"]},
                    "authorization_reference": "ref1"}


def test_authorization_info_refused_says_why_and_grants_no_location() -> None:
    t = doc(row(status="Blocked"))
    info = authorization_info(BLOCKED, t, reference=None, location=("LOC1", []), reason="the token is blocked")
    assert info == {"allowed": "BLOCKED", "token": t, "info": {"language": "en", "text": "the token is blocked"}}
