"""A roaming partner's Token, as the eMSP pushed it, answers at our chargers by its validity and whitelist."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from edges.ocpp.authorization import partner_token_record
from edges.ocpp.context import decide

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def doc(**kw: object) -> str:
    base = {"country_code": "NL", "party_id": "EMX", "uid": "ABC123", "type": "RFID", "contract_id": "NL-EMX-C1",
            "valid": True, "whitelist": "ALWAYS", "last_updated": "2026-01-01T00:00:00Z"}
    return json.dumps({**base, **kw})


@pytest.mark.parametrize("whitelist, status", [("ALWAYS", "Accepted"), ("ALLOWED", "Accepted"),
                                               ("ALLOWED_OFFLINE", "Accepted"), ("NEVER", "Invalid")])
def test_the_whitelist_says_whether_we_may_accept_without_asking_the_emsp(whitelist: str, status: str) -> None:
    rec = partner_token_record("abc123", True, doc(whitelist=whitelist))
    assert decide("abc123", None, rec, NOW).status == status


def test_an_invalid_token_is_blocked_whatever_its_whitelist() -> None:
    assert decide("X", None, partner_token_record("X", False, doc()), NOW).status == "Blocked"
    assert decide("X", None, partner_token_record("X", None, doc(valid=False)), NOW).status == "Blocked"


def test_the_presented_ocpp_type_is_not_compared_with_the_ocpi_type_and_the_group_is_kept() -> None:
    rec = partner_token_record("X", True, doc(group_id="G-7"))
    d = decide("X", "ISO14443", rec, NOW)
    assert d.status == "Accepted" and d.group_id == "G-7"
    assert rec.contract_id == "NL-EMX-C1" and rec.account_id is None


def test_a_garbled_document_is_never_accepted() -> None:
    assert decide("X", None, partner_token_record("X", True, "{not json"), NOW).status == "Invalid"
