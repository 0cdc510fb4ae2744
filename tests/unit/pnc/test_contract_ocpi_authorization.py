"""The Plug & Charge authorization rules (chargeverse/pnc/authorization.py) and the eMAID matching and Token
mapping the OCPI Tokens sender uses for contracts (edges/pnc/roaming.py, edges/ocpi/our_tokens.py).

The central property: for every combination of token state, certificate state and fleet verdict, a partner
CPO asking over OCPI is ALLOWED exactly when our own charger would be told Accepted by OCPP 2.0.1 Authorize
with certificate hash data (the real v201 handler, its PnC service replaced by the certificate answer).
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from chargeverse.pnc.authorization import (ALLOWED, BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED,
                                           OCPP_CERTIFICATE_STATUS, ContractCertificate, ContractStatus,
                                           certificate_status, contract_status, roaming_verdict)
from chargeverse.pnc.emaid import generate
from edges.ocpi.models import check
from edges.ocpi.our_tokens import IdTokenRow, token_doc, type_matches
from edges.ocpp.authorization import FleetRule, fleet_refusal
from edges.ocpp.context import Context, TokenRecord, decide
from edges.ocpp.v201 import handlers
from edges.pnc.roaming import normal_emaid
from edges.pnc.service import CertificateCheck

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
EMAID = generate("NL", "CVS", "C12345678").normalised  # NLCVSC12345678 + its check digit


def cert(status: str = "good", not_after: dt.datetime = NOW + DAY, issued_at: dt.datetime = NOW - DAY) \
        -> ContractCertificate:
    return ContractCertificate(status, not_after, issued_at)


# ---- one certificate ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,not_after,expected", [
    ("good", NOW + dt.timedelta(seconds=1), ContractStatus.GOOD),
    ("good", NOW, ContractStatus.EXPIRED),  # not_after is the first instant it is no longer valid
    ("good", NOW - DAY, ContractStatus.EXPIRED),
    ("revoked", NOW + DAY, ContractStatus.REVOKED),
    ("revoked", NOW - DAY, ContractStatus.REVOKED),  # revoked is the stronger statement
    ("something else", NOW + DAY, ContractStatus.REVOKED),  # never good by accident
])
def test_certificate_status(status: str, not_after: dt.datetime, expected: ContractStatus) -> None:
    assert certificate_status(status, not_after, NOW) is expected


def test_ocpp_certificate_status_names() -> None:
    assert OCPP_CERTIFICATE_STATUS == {ContractStatus.GOOD: "Accepted", ContractStatus.REVOKED: "CertificateRevoked",
                                       ContractStatus.EXPIRED: "CertificateExpired",
                                       ContractStatus.NONE: "NoCertificateAvailable"}


# ---- a contract over its certificates ----------------------------------------------------------------------------
@pytest.mark.parametrize("certs,expected", [
    ([], ContractStatus.NONE),
    ([cert()], ContractStatus.GOOD),
    # renewed: the old certificate expired, the new one is good
    ([cert(not_after=NOW - DAY, issued_at=NOW - 9 * DAY), cert(issued_at=NOW - DAY)], ContractStatus.GOOD),
    # renewed, the old one still good and the new one revoked (key compromise of the new key only)
    ([cert(issued_at=NOW - 9 * DAY), cert("revoked", issued_at=NOW - DAY)], ContractStatus.GOOD),
    # the whole contract revoked (vehicle sold): every certificate revoked
    ([cert("revoked", issued_at=NOW - 9 * DAY), cert("revoked", issued_at=NOW - DAY)], ContractStatus.REVOKED),
    # none good: the latest issued decides, whatever the order of the rows
    ([cert("revoked", issued_at=NOW - DAY), cert(not_after=NOW - DAY, issued_at=NOW - 9 * DAY)],
     ContractStatus.REVOKED),
    ([cert("revoked", issued_at=NOW - 9 * DAY), cert(not_after=NOW, issued_at=NOW - DAY)], ContractStatus.EXPIRED),
])
def test_contract_status(certs: list[ContractCertificate], expected: ContractStatus) -> None:
    assert contract_status(certs, NOW) is expected
    assert contract_status(list(reversed(certs)), NOW) is expected


# ---- the OCPI verdict --------------------------------------------------------------------------------------------
TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "Unknown")


@pytest.mark.parametrize("token,contract,budget,place,allowed", [
    ("Accepted", ContractStatus.GOOD, None, None, ALLOWED),
    ("Blocked", ContractStatus.GOOD, None, None, BLOCKED),
    ("Accepted", ContractStatus.REVOKED, None, None, BLOCKED),
    ("Expired", ContractStatus.REVOKED, None, None, BLOCKED),  # revoked beats expired
    ("Blocked", ContractStatus.EXPIRED, None, None, BLOCKED),
    ("Expired", ContractStatus.GOOD, None, None, EXPIRED),
    ("Accepted", ContractStatus.EXPIRED, None, None, EXPIRED),
    ("Invalid", ContractStatus.GOOD, None, None, NOT_ALLOWED),
    ("Unknown", ContractStatus.GOOD, None, None, NOT_ALLOWED),
    ("Accepted", ContractStatus.NONE, None, None, NOT_ALLOWED),
    ("Accepted", ContractStatus.GOOD, "budget spent", None, NO_CREDIT),
    ("Accepted", ContractStatus.GOOD, "budget spent", "station not allowed", NO_CREDIT),
    ("Accepted", ContractStatus.GOOD, None, "station not allowed", NOT_ALLOWED),
    ("Accepted", ContractStatus.REVOKED, "budget spent", "station not allowed", BLOCKED),
    ("Accepted", ContractStatus.EXPIRED, "budget spent", None, EXPIRED),
])
def test_roaming_verdict(token: str, contract: ContractStatus, budget: str | None, place: str | None,
                         allowed: str) -> None:
    v = roaming_verdict(token, contract, budget, place)
    assert v.allowed == allowed
    assert (v.reason is None) == (allowed == ALLOWED)
    if budget and allowed == NO_CREDIT:
        assert v.reason == budget  # the fleet's own words reach the driver
    if place and allowed == NOT_ALLOWED and contract is ContractStatus.GOOD and token == "Accepted":
        assert v.reason == place


@pytest.mark.parametrize("token,contract,budget,place", itertools.product(
    TOKEN_STATUSES, list(ContractStatus), (None, "budget"), (None, "place")))
def test_allowed_only_when_every_rule_admits(token: str, contract: ContractStatus, budget: str | None,
                                             place: str | None) -> None:
    allowed = roaming_verdict(token, contract, budget, place).allowed
    assert (allowed == ALLOWED) == (token == "Accepted" and contract is ContractStatus.GOOD and not budget
                                    and not place)


# ---- OCPI and OCPP agree -----------------------------------------------------------------------------------------
FLEETS = {
    "none": [],
    "budget spent": [FleetRule("F1", Decimal("50.00"), Decimal("50.00"), None, None)],
    "budget left": [FleetRule("F1", Decimal("50.00"), Decimal("49.99"), None, None)],
    "station allowed": [FleetRule("F1", None, Decimal("0"), ("CS-1",), None)],
    "station refused": [FleetRule("F1", None, Decimal("0"), ("CS-2",), None)],
    "network refused": [FleetRule("F1", None, Decimal("0"), None, ("OtherNet",))],
    "network allowed": [FleetRule("F1", None, Decimal("0"), None, ("OurNet",))],
}
ROWS = {
    "accepted": TokenRecord(EMAID, None, "Accepted", None, None, EMAID, "acc-1"),
    "blocked": TokenRecord(EMAID, None, "Blocked", None, None, EMAID, "acc-1"),
    "expired": TokenRecord(EMAID, None, "Accepted", NOW - DAY, None, EMAID, "acc-1"),
    "invalid": TokenRecord(EMAID, None, "Invalid", None, None, EMAID, "acc-1"),
    "unknown": None,
}


class _CertificateAnswer:
    """Stands in for the PnC service: the certificate part of Authorize, as check_hash_data answers it."""

    def __init__(self, status: ContractStatus) -> None:
        self.status = status

    def check_hash_data(self, hash_data: object, emaid: str, station_id: str) -> CertificateCheck:
        return CertificateCheck(OCPP_CERTIFICATE_STATUS[self.status], emaid, "1")


@pytest.mark.parametrize("row,contract,fleet", itertools.product(ROWS, list(ContractStatus), FLEETS))
def test_ocpi_allows_exactly_what_ocpp_authorize_accepts(monkeypatch: pytest.MonkeyPatch, row: str,
                                                         contract: ContractStatus, fleet: str) -> None:
    rules, record = FLEETS[fleet], ROWS[row]
    # the OCPP edge's token lookup: a fleet refusal at this station turns the row Blocked (IdTokenStore.lookup)
    ocpp_row = record
    if record is not None and record.status == "Accepted" and fleet_refusal(rules, "CS-1", "OurNet"):
        ocpp_row = TokenRecord(*(getattr(record, f) if f != "status" else "Blocked"
                                 for f in ("uid", "type", "status", "valid_until", "group_id", "contract_id",
                                           "account_id")))
    monkeypatch.setattr(handlers, "_pnc", lambda: _CertificateAnswer(contract))
    ctx = Context("CS-1", NOW, 300, tokens={EMAID: ocpp_row})
    ans = handlers.authorize(ctx, {"idToken": {"idToken": EMAID, "type": "eMAID"},
                                   "iso15118CertificateHashData": [{"serialNumber": "1"}]})
    ocpp_ok = ans["idTokenInfo"]["status"] == "Accepted" and ans["certificateStatus"] == "Accepted"

    # the OCPI side, as edges/pnc/roaming.py composes it (an unknown token never reaches it: 2004)
    token_status = decide(EMAID, None, record, NOW, unknown="Unknown").status
    budget = fleet_refusal(rules, None, None) if token_status == "Accepted" else None
    place = fleet_refusal(rules, "CS-1", "OurNet") if token_status == "Accepted" else None
    verdict = roaming_verdict(token_status, contract, budget, place)
    assert (verdict.allowed == ALLOWED) == ocpp_ok, (ans, verdict)
    if verdict.allowed == NO_CREDIT:
        assert fleet == "budget spent"


# ---- eMAID spellings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", [EMAID, EMAID.lower(), EMAID[:-1], f"NL-CVS-C12345678-{EMAID[-1]}",
                                      "NL-CVS-C12345678", "nlcvsc12345678"])
def test_every_spelling_of_an_emaid_finds_the_contract(spelling: str) -> None:
    assert normal_emaid(spelling, "reject") == EMAID
    assert normal_emaid(spelling, "flag") == EMAID


def test_a_wrong_check_digit_is_a_setting() -> None:
    wrong = EMAID[:-1] + ("0" if EMAID[-1] != "0" else "1")
    assert normal_emaid(wrong, "reject") is None  # then it is looked up as an ordinary uid: unknown
    assert normal_emaid(wrong, "flag") == EMAID


@pytest.mark.parametrize("uid", ["04A1B2C3", "", "NL-CVS", "NLCVSC12345678XY", "12CVSC12345678", "x" * 100])
def test_what_is_not_an_emaid_is_left_to_the_ordinary_token_path(uid: str) -> None:
    assert normal_emaid(uid, "flag") is None


# ---- contracts as OCPI Tokens ------------------------------------------------------------------------------------
def _row(**kw: object) -> IdTokenRow:
    base = dict(uid=EMAID, type=None, contract_id=EMAID, account_id="acc-1", status="Accepted", valid_until=None,
                group_id=None, updated_at=NOW - DAY, pnc=True)
    base.update(kw)
    return IdTokenRow(**base)  # type: ignore[arg-type]


def test_a_contract_is_an_ocpi_token_of_type_other_with_the_emaid_as_contract_id() -> None:
    d = token_doc(_row(), country_code="NL", party_id="CVS", issuer="chargeverse", now=NOW)
    assert check("token", d).ok, check("token", d)
    assert d["uid"] == d["contract_id"] == EMAID and d["type"] == "OTHER"
    assert d["whitelist"] == "ALLOWED_OFFLINE"  # revocations reach the CPO in real time
    plain = token_doc(_row(pnc=False), country_code="NL", party_id="CVS", issuer="chargeverse", now=NOW)
    assert plain["type"] == "RFID" and plain["whitelist"] == "ALLOWED"


@pytest.mark.parametrize("asked,matches", [("OTHER", True), ("other", True), ("EMAID", True), ("RFID", False),
                                           ("APP_USER", False), ("AD_HOC_USER", False)])
def test_a_contract_answers_to_type_other_or_emaid_only(asked: str, matches: bool) -> None:
    assert type_matches(_row(), asked) is matches
