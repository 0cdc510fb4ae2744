"""The Token an eMSP's START_SESSION / RESERVE_NOW carries is kept for the CPO side (billing, authorisation)."""

from __future__ import annotations

import json

from projections.postgres.ocpi_objects import command_token

TOKEN = {"country_code": "nl", "party_id": "emx", "uid": "abc1", "type": "APP_USER", "contract_id": "NL-EMX-C1",
         "issuer": "X", "valid": True, "whitelist": "ALLOWED", "last_updated": "2024-05-01T10:00:00Z"}


def rec(command: str = "START_SESSION", result: str = "ACCEPTED", body: object = None) -> dict:
    raw = json.dumps({"response_url": "https://x/r", "token": TOKEN, "location_id": "L1"} if body is None else body)
    return {"partner_id": "x", "command": command, "result": result, "raw": raw}


def test_an_accepted_start_or_reservation_yields_the_token_under_its_row_key() -> None:
    for command in ("START_SESSION", "RESERVE_NOW"):
        key, text = command_token(rec(command))  # type: ignore[misc]
        assert key == ("x", "NL", "EMX", "ABC1", "APP_USER")
        assert json.loads(text)["contract_id"] == "NL-EMX-C1"


def test_refused_commands_other_commands_and_bad_bodies_yield_nothing() -> None:
    assert command_token(rec(result="REJECTED")) is None
    assert command_token(rec(result="INVALID")) is None
    assert command_token(rec("STOP_SESSION")) is None
    assert command_token(rec(body={"token": "abc"})) is None
    assert command_token(rec(body={"token": {**TOKEN, "uid": ""}})) is None
    assert command_token({**rec(), "raw": "{not json"}) is None
