"""The OCPI events (edges/ocpi/events.py) match their Avro contracts and never carry a credentials token."""

from __future__ import annotations

import json

from chargeverse.avro import Codec
from ocpi_examples import example
from edges.ocpi.config import Party
from edges.ocpi.credtokens import TokenBox, new_token, token_hash
from edges.ocpi.events import (REDACTED, deleted, exchanged, object_key, object_received, onboarded,
                               our_credentials, token_issued)
from projections.postgres.ocpi_fold import loads

CODEC = Codec()
BOX = TokenBox("x" * 32)


def _roundtrip(etype: str, rec: dict) -> dict:
    got_type, got = CODEC.decode(CODEC.encode(etype, rec))
    assert got_type == etype
    return got


def test_partner_events_encode_and_carry_no_token() -> None:
    token_a, theirs = new_token(), new_token()
    creds = loads(example("credentials_example2.json"))
    creds["token"] = theirs
    recs = {
        "OcpiPartnerOnboarded": onboarded(platform_id="p", partner_id="x", name="X", source="t", correlation_id="c",
                                          token_a_hash=token_hash(token_a)),
        "OcpiTokenIssued": token_issued(platform_id="p", partner_id="x", token_hash=token_hash(token_a), kind="B",
                                        source="t", correlation_id="c"),
        "OcpiPartnerRegistered": exchanged(
            "OcpiPartnerRegistered", platform_id="p", partner_id="x", initiated_by="PARTNER",
            our_token_hash=token_hash(token_a), their_token_sealed=BOX.seal(theirs, "x"),
            their_versions_url=creds["url"], version="2.2.1",
            endpoints=[{"identifier": "locations", "role": "SENDER", "url": "https://x/l"}], credentials=creds,
            grace_seconds=300, source="t", correlation_id="c"),
        "OcpiPartnerDeleted": deleted(platform_id="p", partner_id="x", initiated_by="US", reason=None, source="t",
                                      correlation_id="c"),
    }
    rot = dict(recs["OcpiPartnerRegistered"])
    recs["OcpiCredentialsRotated"] = rot
    for etype, rec in recs.items():
        wire = CODEC.encode(etype, rec)
        assert token_a.encode() not in wire and theirs.encode() not in wire, etype
        _roundtrip(etype, rec)
    reg = _roundtrip("OcpiPartnerRegistered", recs["OcpiPartnerRegistered"])
    assert json.loads(reg["their_credentials"])["token"] == REDACTED
    assert [(r["role"], r["country_code"], r["party_id"], r["name"]) for r in reg["roles"]] == [
        ("CPO", "NL", "EXA", "Example Operator"), ("EMSP", "NL", "EXA", "Example Provider")]
    assert BOX.open(reg["their_token_sealed"], "x") == theirs


def test_object_events_keep_the_body_verbatim_and_are_keyed_per_object() -> None:
    raw = example("location_example.json")
    rec = object_received(platform_id="p", partner_id="x", module="locations", method="PUT", country_code="be",
                          party_id="bec", object_id="LOC1", raw=raw, valid=True, source="t", correlation_id="c",
                          warnings=["w"], sender=("BE", "BEC"))
    got = _roundtrip("OcpiObjectReceived", rec)
    assert got["raw"] == raw and got["country_code"] == "BE" and got["from_party_id"] == "BEC"
    assert object_key("x", "locations", "be", "bec", "loc1") == object_key("x", "locations", "BE", "BEC", "LOC1")
    assert object_key("x", "tokens", "NL", "TNM", "1", "RFID") != object_key("x", "tokens", "NL", "TNM", "1",
                                                                             "APP_USER")


def test_our_credentials_name_every_role() -> None:
    c = our_credentials("tok", "https://us/ocpi/versions",
                        [Party("CPO", "NL", "CVS", "cv"), Party("EMSP", "NL", "CVS", "cv")], "https://cv.example")
    assert [r["role"] for r in c["roles"]] == ["CPO", "EMSP"]
    assert c["roles"][0]["business_details"] == {"name": "cv", "website": "https://cv.example"}
