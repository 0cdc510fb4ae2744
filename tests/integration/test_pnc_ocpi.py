"""Plug & Charge at a roamed charger, all real: a partner CPO (Y, its own OCPI platform) asks us (X, the eMSP)
over HTTP to authorise the eMAID its charger read from the car's contract certificate
(`POST /ocpi/emsp/2.2.1/tokens/{eMAID}/authorize?type=OTHER`).

The contract is made as in test_pnc_flow.py: the car's OEM root trusted and the car enrolled through the API
(the platform's pnc and identity projections), the contract issued by the PnC service (the code path of
Get15118EVCertificate and `cv pnc issue`).  X's OCPI edge runs in its own schema with its own identity and pnc
projections, reading the same log.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chargeverse.pnc.emaid import generate
from chargeverse.pnc.emaid import parse as parse_emaid
from edges.ocpi.credtokens import authorization
from edges.ocpi.local import LocalParty
from projections.postgres.fleets import FleetsProjection
from projections.postgres.identity import IdentityProjection
from projections.postgres.pnc import PncProjection
from support import events, wait_for
from test_ocpi_commands import _q, _register, their_token
from test_pnc_flow import Car, _account, pnc_service  # noqa: F401 - the fixture
from test_pnc_flow import _admin as _api_admin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def parties(settings, topics):  # noqa: ANN001, ANN201
    u = uuid.uuid4().hex[:8]
    dsn = settings.postgres_dsn.get_secret_value()
    x = LocalParty.make(settings, platform_id=f"px-{u}", schema=f"ocpi_px_{u}", country_code="NL", party_id="CVS",
                        roles="EMSP", name="chargeverse")
    x.extra_projections = [IdentityProjection(dsn, f"ocpi_px_{u}"), PncProjection(dsn, f"ocpi_px_{u}"),
                           FleetsProjection(dsn, f"ocpi_px_{u}")]
    y = LocalParty.make(settings, platform_id=f"py-{u}", schema=f"ocpi_py_{u}", country_code="DE", party_id="CPY",
                        roles="CPO", name="Y charging")
    x.start()
    y.start()
    try:
        _register(x, y)
        yield x, y
    finally:
        x.stop()
        y.stop()
        for p in (x, y):
            assert not p.follower.errors, p.follower.errors


def _manager(api: httpx.Client) -> dict[str, str]:
    email, password = f"mgr-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple 42"
    r = api.post("/api/auth/register", json={"email": email, "password": password, "role": "fleet_manager"})
    assert r.status_code == 201, r.text
    r = api.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _contract(api: httpx.Client, unique: str) -> tuple[str, str, x509.Certificate]:
    """An enrolled car with an issued contract: (eMAID, account id, contract certificate)."""
    from chargeverse.pnc import exi_standin
    from edges.pnc.service import shared

    car = Car(f"PCID{unique}".upper()[:18])
    r = api.post("/pnc/trusted-roots", headers=_api_admin(), json={
        "kind": "OEM", "certificate_pem": car.root.certificate.public_bytes(serialization.Encoding.PEM).decode()})
    assert r.status_code == 200, r.text
    account_id = _account(unique)
    r = api.post("/pnc/enrolments", headers=_api_admin(), json={
        "account_id": account_id, "pcid": car.cert.subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME)[0].value})
    assert r.status_code == 200, r.text
    emaid = r.json()["emaid"]
    req = car.installation_request()
    res = shared().get_15118_ev_certificate({"iso15118SchemaVersion": req["iso15118_schema_version"],
                                             "action": "Install", "exiRequest": req["exi_request"]}, "test-pnc-ocpi")
    assert res["status"] == "Accepted", res
    import base64

    chain = exi_standin.decode_response(base64.b64decode(res["exiResponse"]))["ContractSignatureCertChain"]
    return emaid, account_id, x509.load_der_x509_certificate(base64.b64decode(chain["Certificate"]))


def test_partner_cpo_authorises_our_emaid_good_revoked_unknown(pnc_service, platform,  # noqa: ANN001, F811
                                                               parties, unique) -> None:  # noqa: ANN001
    x, y = parties
    api = httpx.Client(base_url=platform.api, timeout=30)
    emaid, account_id, contract = _contract(api, unique)
    wait_for("X sees the contract", lambda: _q(x, "SELECT status FROM contract_certificates WHERE emaid = %s",
                                               emaid) == [("good",)])
    wait_for("X sees the contract's token", lambda: _q(x, "SELECT 1 FROM id_tokens WHERE uid = %s", emaid))

    h = {"Authorization": authorization(their_token(y, "x")), "OCPI-from-country-code": "DE",
         "OCPI-from-party-id": "CPY", "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CVS"}
    base = f"{x.url}/emsp/2.2.1/tokens"
    spaced = parse_emaid(emaid).with_separators  # as printed on a card or sent by a CPO: separators, check digit
    r = httpx.post(f"{base}/{spaced}/authorize", params={"type": "OTHER"}, headers=h,
                   json={"location_id": "LOC-7", "evse_uids": ["LOC-7-1"]})
    assert r.status_code == 200, r.text
    info = r.json()["data"]
    assert info["allowed"] == "ALLOWED" and info["authorization_reference"], info
    assert info["token"]["uid"] == info["token"]["contract_id"] == emaid and info["token"]["type"] == "OTHER"
    assert info["location"] == {"location_id": "LOC-7", "evse_uids": ["LOC-7-1"]}
    # the certificate the CPO's charger saw carries this very eMAID
    assert contract.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == emaid
    # the contract is not an RFID card: asked as one, it is unknown (uid and type identify a token)
    r = httpx.post(f"{base}/{emaid}/authorize", headers=h)
    assert r.status_code == 404 and r.json()["status_code"] == 2004

    # the tokens list shows the contract as a token of type OTHER, contract_id = eMAID
    r = httpx.get(base, headers=h, params={"limit": "1000"})
    listed = [t for t in r.json()["data"] if t["uid"] == emaid]
    assert len(listed) == 1 and listed[0]["type"] == "OTHER" and listed[0]["contract_id"] == emaid

    # the driver's fleet rules apply at roamed chargers as at ours: a spent budget is NO_CREDIT ...
    mgr = _manager(api)
    r = api.post("/api/fleets", headers=mgr, json={"name": "PnC vans", "company": "ACME BV", "currency": "EUR",
                                                   "time_zone": "UTC"})
    assert r.status_code == 201, r.text
    fid = r.json()["fleet_id"]
    assert api.post(f"/api/fleets/{fid}/members", headers=mgr, json={"account_id": account_id}).status_code == 200

    def policy(body: dict, expect: tuple) -> None:
        assert api.put(f"/api/fleets/{fid}/policy", headers=mgr, json=body).status_code == 200
        wait_for("X sees the policy", lambda: _q(
            x, "SELECT monthly_budget::text, allowed_station_ids FROM fleet_policies WHERE fleet_id = %s "
            "AND account_id = ''", fid) == [expect])

    policy({"monthly_budget": "0.00"}, ("0.00", None))
    r = httpx.post(f"{base}/{emaid}/authorize", params={"type": "OTHER"}, headers=h, json={"location_id": "LOC-7"})
    assert r.status_code == 200 and r.json()["data"]["allowed"] == "NO_CREDIT", r.text
    # ... and a station the fleet does not allow is NOT_ALLOWED (our name for the CPO's location)
    policy({"allowed_station_ids": ["roamed:DE:CPY:LOC-7"]}, (None, ["roamed:DE:CPY:LOC-7"]))
    r = httpx.post(f"{base}/{emaid}/authorize", params={"type": "OTHER"}, headers=h, json={"location_id": "LOC-8"})
    assert r.status_code == 200 and r.json()["data"]["allowed"] == "NOT_ALLOWED", r.text
    r = httpx.post(f"{base}/{emaid}/authorize", params={"type": "OTHER"}, headers=h, json={"location_id": "loc-7"})
    assert r.status_code == 200 and r.json()["data"]["allowed"] == "ALLOWED", r.text  # OCPI ids: case-insensitive
    r = httpx.post(f"{base}/{emaid}/authorize", params={"type": "OTHER"}, headers=h)  # where? we cannot say
    assert r.status_code == 200 and r.json()["status_code"] == 2002 and "data" not in r.json(), r.text

    # the car is sold: the contract is revoked, and the next real-time authorization is BLOCKED
    r = api.post("/pnc/revocations", headers=_api_admin(), json={"emaid": emaid, "cause": "vehicle_sold"})
    assert r.status_code == 200, r.text
    wait_for("X sees the revocation", lambda: _q(x, "SELECT status FROM contract_certificates WHERE emaid = %s",
                                                 emaid) == [("revoked",)])
    r = httpx.post(f"{base}/{emaid}/authorize", params={"type": "OTHER"}, headers=h,
                   json={"location_id": "LOC-7"})
    assert r.status_code == 200, r.text
    blocked = r.json()["data"]
    assert blocked["allowed"] == "BLOCKED" and "authorization_reference" not in blocked and "location" not in blocked
    assert "revoked" in blocked["info"]["text"]

    # an eMAID that is not ours (well formed, right check digit): OCPI 2004 unknown token, HTTP 404, no data
    stranger = generate("NL", "CVS", f"C{unique.upper()[:8]:0<8}").normalised
    if stranger == emaid:  # vanishingly unlikely; keep the test honest
        stranger = generate("NL", "CVS", "CZZZZZZZZ").normalised
    r = httpx.post(f"{base}/{stranger}/authorize", params={"type": "OTHER"}, headers=h)
    assert r.status_code == 404 and r.json()["status_code"] == 2004 and "data" not in r.json()

    # every answer is on the log as the CPO was told it
    told = [rec for _, rec in events("ocpi.inbound", lambda t, rec: t == "OcpiTokenAuthorized"
                                     and rec["platform_id"] == x.settings.ocpi_platform_id)]
    assert sorted((rec["token_uid"], rec["token_type"], rec["allowed"]) for rec in told) == sorted([
        (spaced, "OTHER", "ALLOWED"), (emaid, "RFID", "UNKNOWN_TOKEN"), (emaid, "OTHER", "NO_CREDIT"),
        (emaid, "OTHER", "NOT_ALLOWED"), (emaid, "OTHER", "ALLOWED"), (emaid, "OTHER", "BLOCKED"),
        (stranger, "OTHER", "UNKNOWN_TOKEN")])  # the 2002 decided nothing and is not there
    allowed = next(rec for rec in told if rec["allowed"] == "ALLOWED" and rec["token_uid"] == spaced)
    assert json.loads(allowed["answer"])["authorization_reference"] == info["authorization_reference"]
    assert allowed["account_id"] and allowed["from_party_id"] == "CPY"
