"""Every charger-initiated action of both versions has a handler, an example and a schema-valid answer; the
authorization decision follows the id_tokens projection exactly (edges/ocpp/context.py invariants)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edges.ocpp.context import Context, TokenRecord, decide
from edges.ocpp.examples import BY_VERSION
from edges.ocpp.v16 import handlers as h16
from edges.ocpp.v201 import handlers as h201
from edges.ocpp.versions import VERSIONS

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
TOKENS = {
    "TAG-1": TokenRecord("TAG-1", "ISO14443", "Accepted", NOW + timedelta(days=30), "GROUP-7"),
    "OLD": TokenRecord("OLD", None, "Accepted", NOW - timedelta(seconds=1)),
    "STOLEN": TokenRecord("STOLEN", None, "Blocked"),
    "GONE": TokenRecord("GONE", None, "Expired"),
    "BAD": TokenRecord("BAD", None, "Invalid"),
}


def ctx(**kw: object) -> Context:
    base = dict(charge_point_id="CP-1", now=NOW, heartbeat_interval=300, tokens=TOKENS, transaction_id=42)
    base.update(kw)
    return Context(**base)  # type: ignore[arg-type]


def test_examples_handlers_and_action_sets_stay_in_step() -> None:
    for sp, examples in BY_VERSION.items():
        v = VERSIONS[sp]
        assert set(examples) == set(v.cp_initiated) == set(v.handlers), sp
        assert not v.cp_initiated & {"RemoteStartTransaction", "RequestStartTransaction", "Reset"}
        assert set(v.needs) <= set(v.handlers)
        assert v.certificate_operations <= v.cp_initiated


@pytest.mark.parametrize("sp, action", [(sp, a) for sp, ex in BY_VERSION.items() for a in sorted(ex)])
@pytest.mark.parametrize("profile, status", [(1, "Accepted"), (3, "Pending")])
def test_every_example_is_valid_and_its_answer_is_schema_valid(sp, action, profile, status) -> None:  # noqa: ANN001
    v = VERSIONS[sp]
    payload = BY_VERSION[sp][action]
    assert v.schemas.check(action, payload) is None
    answer = v.handlers[action](ctx(security_profile=profile, registration_status=status), payload)
    assert v.schemas.response_errors(action, answer) == []


@pytest.mark.parametrize("uid, typ, expected16, expected201", [
    ("TAG-1", "ISO14443", "Accepted", "Accepted"),
    ("TAG-1", "eMAID", "Accepted", "Unknown"),  # 1.6 has no type; 2.0.1: an RFID uid is not an eMAID
    ("OLD", None, "Expired", "Expired"),  # valid_until passed wins over the stored Accepted
    ("STOLEN", None, "Blocked", "Blocked"),
    ("GONE", None, "Expired", "Expired"),
    ("BAD", None, "Invalid", "Invalid"),
    ("NEVER-SEEN", None, "Invalid", "Unknown"),
])
def test_authorization_follows_the_projection(uid, typ, expected16, expected201) -> None:  # noqa: ANN001
    assert decide(uid, None, TOKENS.get(uid), NOW, unknown="Invalid").status == expected16
    assert decide(uid, typ, TOKENS.get(uid), NOW, unknown="Unknown").status == expected201


def test_an_unknown_stored_status_is_never_accepted() -> None:
    assert decide("X", None, TokenRecord("X", None, "Maybe"), NOW).status == "Invalid"
    assert decide("X", None, TokenRecord("Y", None, "Accepted"), NOW).status == "Invalid"  # wrong row


def test_expiry_is_exactly_valid_until() -> None:
    row = TokenRecord("T", None, "Accepted", NOW)
    assert decide("T", None, row, NOW).status == "Expired"
    assert decide("T", None, row, NOW - timedelta(microseconds=1)).status == "Accepted"


def test_16_id_tag_info_carries_expiry_and_parent() -> None:
    a = h16.authorize(ctx(), {"idTag": "TAG-1"})
    assert a == {"idTagInfo": {"status": "Accepted", "expiryDate": "2026-03-31T12:00:00.000Z",
                               "parentIdTag": "GROUP-7"}}
    assert h16.authorize(ctx(), {"idTag": "NOPE"}) == {"idTagInfo": {"status": "Invalid"}}


def test_16_start_transaction_always_gets_the_drawn_id_even_when_refused() -> None:
    ok = h16.start_transaction(ctx(), {"idTag": "TAG-1", "connectorId": 1, "meterStart": 0, "timestamp": "x"})
    refused = h16.start_transaction(ctx(transaction_id=43), {"idTag": "STOLEN"})
    assert ok["transactionId"] == 42 and ok["idTagInfo"]["status"] == "Accepted"
    assert refused == {"idTagInfo": {"status": "Blocked"}, "transactionId": 43}
    with pytest.raises(ValueError):
        h16.start_transaction(ctx(transaction_id=None), {"idTag": "TAG-1"})


def test_16_stop_transaction_answers_the_tag_only_when_given() -> None:
    assert h16.stop_transaction(ctx(), {"transactionId": 1}) == {}
    assert h16.stop_transaction(ctx(), {"idTag": "BAD"}) == {"idTagInfo": {"status": "Invalid"}}


def test_needs_ask_for_exactly_the_data_the_answer_uses() -> None:
    assert h16.NEEDS["StartTransaction"]({"idTag": "A"}).transaction_id is True
    assert h16.NEEDS["StopTransaction"]({}).tokens == ()
    assert h201.NEEDS["TransactionEvent"]({"idToken": {"idToken": "", "type": "NoAuthorization"}}).tokens == ()
    assert h201.NEEDS["TransactionEvent"]({"idToken": {"idToken": "T", "type": "Central"}}).tokens == ("T",)
    assert h201.NEEDS["Authorize"]({"idToken": {"idToken": "T", "type": "Central"}}).transaction_id is False


def test_201_transaction_event_answers_id_token_info_only_for_a_presented_token() -> None:
    ev = dict(BY_VERSION["ocpp2.0.1"]["TransactionEvent"])
    assert h201.transaction_event(ctx(), ev) == {"idTokenInfo": {
        "status": "Accepted", "cacheExpiryDateTime": "2026-03-31T12:00:00.000Z",
        "groupIdToken": {"idToken": "GROUP-7", "type": "Central"}}}
    ev.pop("idToken")
    assert h201.transaction_event(ctx(), ev) == {}
    ev["idToken"] = {"idToken": "", "type": "NoAuthorization"}
    assert h201.transaction_event(ctx(), ev) == {}


@pytest.mark.parametrize("status", ["Accepted", "Pending", "Rejected"])
def test_boot_answers_the_operators_registration_status(status) -> None:  # noqa: ANN001
    for h in (h16.boot_notification, h201.boot_notification):
        a = h(ctx(registration_status=status, heartbeat_interval=77), {})
        assert a == {"status": status, "currentTime": "2026-03-01T12:00:00.000Z", "interval": 77}


def test_data_transfer_is_unknown_vendor_unless_configured() -> None:
    p = {"vendorId": "com.example", "messageId": "hello"}
    assert h16.data_transfer(ctx(), p) == {"status": "UnknownVendorId"}
    assert h16.data_transfer(ctx(data_transfer={"com.example": frozenset()}), p) == {"status": "Accepted"}
    assert h201.data_transfer(ctx(data_transfer={"com.example": frozenset({"other"})}), p) == {
        "status": "UnknownMessageId"}


def test_certificate_requests_are_refused_until_a_signer_is_wired() -> None:
    assert h16.sign_certificate(ctx(), {}) == {"status": "Rejected"}
    assert h16.sign_certificate(ctx(can_sign=True), {}) == {"status": "Accepted"}
    r = h201.sign_certificate(ctx(), {})
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "NotEnabled"
    for action in ("Get15118EVCertificate", "GetCertificateStatus"):
        a = h201.HANDLERS[action](ctx(security_profile=3), BY_VERSION["ocpp2.0.1"][action])
        assert a["status"] == "Failed" and a["statusInfo"]["reasonCode"] == "NotEnabled"
