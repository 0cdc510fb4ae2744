"""Plug & Charge end to end, all real: an OEM PKI made here from the ISO 15118-2 profiles (the cnf files of
../shared/data/pki are checked against chargeverse.pnc.profiles by tests/unit/pnc), a charging station on the
`ocpp` package over TLS (security profile 2, an OCPP edge in this process), the platform's API, projections
worker and log.

The car's part (CertificateInstallationReq in the CVX1 container, unwrapping the contract key with the OEM
provisioning key) is played by the test.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from ocpp.v201 import call as call201

from chargeverse.kafka import EventProducer
from chargeverse.pnc import exi_standin
from chargeverse.pnc.ca import create_root
from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.profiles import PROFILES, Identity
from chargeverse.pnc.provisioning import contract_private_key_matches, decrypt_private_key
from chargeverse.pnc.revocation import ocpp_request_data
from chargeverse.pnc.signer import SoftwareSigner
from chargeverse.settings import get_settings
from chargeverse.simulator import boot
from chargeverse.tokens import issue
from edges.api.accounts import create_account_sync
from support import events, wait_for, TARIFFS_SINCE
from test_ocpp_security import _wss, pki  # noqa: F401 - the fixture
from test_ocpp_support import charger, edge_in_process, register_charger

pytestmark = pytest.mark.integration
SCHEMA = "urn:iso:15118:2:2013:MsgDef"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def pnc_enabled():  # noqa: ANN201
    """PnC on in this process too (the in-process edge); the platform's processes have it from conftest."""
    import os

    before = os.environ.get("CV_PNC_ENABLED")
    os.environ["CV_PNC_ENABLED"] = "true"
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CV_PNC_ENABLED", None)
        else:
            os.environ["CV_PNC_ENABLED"] = before
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def pnc_service(stack):  # noqa: ANN001, ANN201
    """The in-process edge's PnC service, closed before the stack stops."""
    yield
    from edges.pnc import service

    if service._shared is not None:  # the in-process edge's PnC service: closed before the stack stops
        service._shared.close()


class Car:
    """An EV's OEM side: OEM root -> sub-CA 1 -> sub-CA 2 -> provisioning certificate (CN = PCID)."""

    def __init__(self, pcid: str) -> None:
        ident = Identity("Test OEM", "DE", "http://oem.invalid/ocsp", "http://oem.invalid/ca")
        self.root = create_root("oemRootCA", ident, SoftwareSigner.generate(), now=NOW - dt.timedelta(hours=1))
        sub1 = self.root.issue_sub_ca("oemSubCA1", SoftwareSigner.generate(), now=NOW - dt.timedelta(hours=1))
        self.sub2 = sub1.issue_sub_ca("oemSubCA2", SoftwareSigner.generate(), now=NOW - dt.timedelta(hours=1))
        self.sub1 = sub1
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self.sub2.issue(PROFILES["oemLeaf"], self.key.public_key(), now=NOW - dt.timedelta(hours=1),
                                    common_name=pcid)

    def installation_request(self) -> dict[str, str]:
        der = serialization.Encoding.DER
        exi = exi_standin.encode_request_installation(
            self.cert.public_bytes(der), [self.sub2.certificate.public_bytes(der), self.sub1.certificate.public_bytes(der)])
        return {"iso15118_schema_version": SCHEMA, "action": "Install", "exi_request": base64.b64encode(exi).decode()}


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('pnc-test', ['admin'], ttl_seconds=600)}"}


def _account(unique: str) -> str:
    p = EventProducer()
    try:
        account_id, _ = create_account_sync(p, f"pnc-{unique}@example.com", "correct horse battery staple 42",
                                            ["driver"], "PnC driver")
    finally:
        p.close()
    with psycopg.connect(get_settings().postgres_dsn.get_secret_value(), autocommit=True) as conn:
        wait_for("account projected", lambda: conn.execute("SELECT 1 FROM accounts WHERE account_id = %s",
                                                           (account_id,)).fetchone())
    return account_id


def _openssl(*args: str, stdin: bytes | None = None) -> str:
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=30)
    return (r.stdout + r.stderr).decode()


async def test_TC_M_26_TC_C_50_TC_M_24_TC_M_28_CSMS_install_authorize_status_renew_revoke(pnc_service, platform, unique, pki, tmp_path: Path) -> None:  # noqa: ANN001,F811,E501
    """Install a contract (Get15118EVCertificate), the car unwraps its key, Authorize with the hash data is
    Accepted, the contract is renewed (action Update); after a revocation through the API, GetCertificateStatus, OCSP over HTTP (parsed by cryptography and
    by `openssl ocsp`), the CRL and Authorize all say revoked."""
    api = httpx.Client(base_url=platform.api, timeout=30)
    car = Car(f"PCID{unique}".upper()[:18])
    r = api.post("/pnc/trusted-roots", headers=_admin(), json={
        "kind": "OEM", "certificate_pem": car.root.certificate.public_bytes(serialization.Encoding.PEM).decode()})
    assert r.status_code == 200, r.text
    account_id = _account(unique)
    r = api.post("/pnc/enrolments", headers=_admin(), json={"account_id": account_id, "pcid": car.cert.subject
                 .get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value})
    assert r.status_code == 200, r.text
    emaid = r.json()["emaid"]
    # the MO chain, as any relying party fetches it (public)
    by_cn = {str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value): c
             for c in pkcs7.load_der_pkcs7_certificates(api.get("/pnc/ca-issuers.p7c").content)}
    mo_sub2, mo_sub1, mo_root = by_cn["MOSubCA2"], by_cn["MOSubCA1"], by_cn["MORootCA"]

    spec = register_charger("PNC", unique, version="ocpp2.0.1", profile=2)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client()) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            res = await cp.call(call201.Get15118EVCertificate(**car.installation_request()), suppress=False)
            assert res.status == "Accepted", res
            answer = exi_standin.decode_response(base64.b64decode(res.exi_response))
            assert answer["ResponseCode"] == "OK" and answer["eMAID"] == emaid
            contract = x509.load_der_x509_certificate(base64.b64decode(answer["ContractSignatureCertChain"]["Certificate"]))
            subs = [x509.load_der_x509_certificate(base64.b64decode(c))
                    for c in answer["ContractSignatureCertChain"]["SubCertificates"]]
            assert [c.subject for c in subs] == [mo_sub2.subject, mo_sub1.subject]
            key = decrypt_private_key(base64.b64decode(answer["ContractSignatureEncryptedPrivateKey"]), car.key,
                                      base64.b64decode(answer["DHpublickey"]))
            assert contract_private_key_matches(contract, key)
            assert str(contract.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value) == emaid
            verify_chain(contract, subs, [mo_root], now=dt.datetime.now(dt.UTC))
            pem = serialization.Encoding.PEM
            (tmp_path / "root.pem").write_bytes(mo_root.public_bytes(pem))
            (tmp_path / "subs.pem").write_bytes(b"".join(c.public_bytes(pem) for c in subs))
            (tmp_path / "contract.pem").write_bytes(contract.public_bytes(pem))
            out = _openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "subs.pem"),
                           str(tmp_path / "contract.pem"))
            assert "contract.pem: OK" in out, out

            hash_data = ocpp_request_data(contract, mo_sub2, "http://ocsp.invalid")
            snake = {"hash_algorithm": hash_data["hashAlgorithm"], "issuer_name_hash": hash_data["issuerNameHash"],
                     "issuer_key_hash": hash_data["issuerKeyHash"], "serial_number": hash_data["serialNumber"],
                     "responder_url": hash_data["responderURL"]}
            id_token = {"id_token": emaid, "type": "eMAID"}
            wait_for("issuance projected", lambda: api.get("/pnc/contracts", headers=_admin(),
                                                           params={"emaid": emaid}).json())
            auth = await cp.call(call201.Authorize(id_token=id_token, iso15118_certificate_hash_data=[snake]),
                                 suppress=False)
            assert auth.id_token_info["status"] == "Accepted" and auth.certificate_status == "Accepted", auth
            st = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake), suppress=False)
            assert st.status == "Accepted"
            assert ocsp.load_der_ocsp_response(base64.b64decode(st.ocsp_result)).certificate_status == \
                ocsp.OCSPCertStatus.GOOD

            # renewal before expiry (CertificateUpdateReq): the new key is wrapped to the current contract's key
            der = serialization.Encoding.DER
            update = exi_standin.encode_request_update(contract.public_bytes(der), [c.public_bytes(der) for c in subs],
                                                       emaid)
            res = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Update",
                                                              exi_request=base64.b64encode(update).decode()),
                                suppress=False)
            assert res.status == "Accepted", res
            renewed = exi_standin.decode_response(base64.b64decode(res.exi_response))
            assert renewed["msg"] == "CertificateUpdateRes" and renewed["eMAID"] == emaid
            new = x509.load_der_x509_certificate(base64.b64decode(renewed["ContractSignatureCertChain"]["Certificate"]))
            new_key = decrypt_private_key(base64.b64decode(renewed["ContractSignatureEncryptedPrivateKey"]), key,
                                          base64.b64decode(renewed["DHpublickey"]))
            assert contract_private_key_matches(new, new_key) and new.serial_number != contract.serial_number

            wait_for("renewal projected", lambda: len(api.get("/pnc/contracts", headers=_admin(),
                                                              params={"emaid": emaid}).json()) == 2)
            r = api.post("/pnc/revocations", headers=_admin(), json={"emaid": emaid, "cause": "vehicle_sold"})
            assert r.status_code == 200, r.text
            assert {x["serial_number"] for x in r.json()["revoked"]} == {hash_data["serialNumber"],
                                                                          format(new.serial_number, "x")}

            st = await cp.call(call201.GetCertificateStatus(ocsp_request_data=snake), suppress=False)
            resp = ocsp.load_der_ocsp_response(base64.b64decode(st.ocsp_result))
            assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
            assert resp.revocation_reason == x509.ReasonFlags.affiliation_changed
            auth = await cp.call(call201.Authorize(id_token=id_token, iso15118_certificate_hash_data=[snake]),
                                 suppress=False)
            assert auth.certificate_status == "CertificateRevoked" and auth.id_token_info["status"] != "Accepted"

            bad = dict(car.installation_request(), exi_request="not base64!")
            res = await cp.call(call201.Get15118EVCertificate(**bad), suppress=False)
            assert res.status == "Failed" and res.status_info["reason_code"] == "MalformedBase64"

    # OCSP over HTTP (POST and GET), parsed by cryptography and by openssl
    req = ocsp.OCSPRequestBuilder().add_certificate(contract, mo_sub2, __import__(
        "cryptography.hazmat.primitives.hashes", fromlist=["SHA1"]).SHA1()).build()
    der = req.public_bytes(serialization.Encoding.DER)
    posted = api.post("/pnc/ocsp", content=der, headers={"Content-Type": "application/ocsp-request"})
    assert posted.headers["content-type"] == "application/ocsp-response", (posted.status_code, posted.text)
    assert ocsp.load_der_ocsp_response(posted.content).certificate_status == ocsp.OCSPCertStatus.REVOKED
    got = api.get("/pnc/ocsp/" + base64.b64encode(der).decode())
    assert ocsp.load_der_ocsp_response(got.content).certificate_status == ocsp.OCSPCertStatus.REVOKED
    (tmp_path / "resp.der").write_bytes(posted.content)
    (tmp_path / "sub2.pem").write_bytes(mo_sub2.public_bytes(serialization.Encoding.PEM))
    out = _openssl("ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(tmp_path / "sub2.pem"),
                   "-cert", str(tmp_path / "contract.pem"), "-VAfile", str(tmp_path / "sub2.pem"), "-no_nonce")
    assert "contract.pem: revoked" in out, out
    # the operator's CLI sees the same projection
    import sys

    cli = subprocess.run([sys.executable, "-m", "chargeverse.cli", "pnc", "status", "--emaid", emaid],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert [c["status"] for c in __import__("json").loads(cli.stdout)] == ["revoked", "revoked"]
    crl = x509.load_der_x509_crl(api.get("/pnc/crl.der").content)
    assert crl.is_signature_valid(mo_sub2.public_key())
    assert crl.get_revoked_certificate_by_serial_number(contract.serial_number) is not None
    # the log has it all, and no private key
    kinds = [t for t, r in events("pnc", lambda t, r: r.get("emaid") == emaid or r.get("station_id") == spec.station_id)]
    for kind in ("PncContractEnrolled", "ContractCertificateIssued", "ContractCertificateRevoked",
                 "PncStatusAnswered", "PncRequestRejected"):
        assert kind in kinds, kinds
    assert not events("pnc", lambda t, r: "PRIVATE KEY" in str(r))
    # pg.pnc rebuilt from offset 0 into another schema is identical to the live one
    from projections.registry import build
    from projections.replay import replay

    copy, live = build("pnc", f"pnc_replay_{unique}"), build("pnc")
    try:
        replay(copy)

        def same() -> bool:
            replay(copy, from_start=False)
            return live.checksum() == copy.checksum()
        wait_for("replayed pg.pnc equals the live one", same)
    finally:
        copy.close()
        live.close()


async def test_installation_refusals_are_answered_with_a_reason_and_recorded(pnc_service, platform, unique, pki) -> None:  # noqa: ANN001,F811,E501
    """Bad input: an unknown car, an untrusted OEM chain, an RSA key in the chain, oversized, non-CVX1 EXI."""
    api = httpx.Client(base_url=platform.api, timeout=30)
    stranger = Car(f"STR{unique}".upper()[:18])  # its root is never trusted and it is never enrolled
    spec = register_charger("PNCBAD", unique, version="ocpp2.0.1", profile=2)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client()) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            res = await cp.call(call201.Get15118EVCertificate(**stranger.installation_request()), suppress=False)
            assert res.status == "Failed" and res.status_info["reason_code"] == "NoContract"
            assert exi_standin.decode_response(base64.b64decode(res.exi_response))["ResponseCode"] == \
                "FAILED_NoCertificateAvailable"
            account_id = _account(unique)
            r = api.post("/pnc/enrolments", headers=_admin(), json={
                "account_id": account_id, "pcid": stranger.cert.subject.get_attributes_for_oid(
                    x509.NameOID.COMMON_NAME)[0].value})
            assert r.status_code == 200
            res = await cp.call(call201.Get15118EVCertificate(**stranger.installation_request()), suppress=False)
            assert res.status == "Failed" and res.status_info["reason_code"] == "UntrustedChain"
            not_exi = base64.b64encode(b"<CertificateInstallationReq/>").decode()
            res = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                              exi_request=not_exi), suppress=False)
            assert res.status == "Failed" and res.status_info["reason_code"] == "MalformedExi"
            exi = base64.b64encode(exi_standin.PREFIX + b"{}").decode()
            res = await cp.call(call201.Get15118EVCertificate(iso15118_schema_version=SCHEMA, action="Install",
                                                              exi_request=exi), suppress=False)
            assert res.status == "Failed" and res.status_info["reason_code"] == "MalformedExi"
    rejected = wait_for("refusals recorded", lambda: (lambda e: e if len(e) >= 4 else None)(
        events("pnc", lambda t, r: t == "PncRequestRejected" and r["station_id"] == spec.station_id)))
    assert {r["reason"] for _, r in rejected} >= {"NoContract", "UntrustedChain", "MalformedExi"}


async def test_station_csr_on_profile_3_is_signed_by_the_cpo_sub_ca_and_sent_with_certificate_signed(
        pnc_service, platform, unique, pki, tmp_path: Path) -> None:  # noqa: ANN001,F811
    """SignCertificate (A03): a profile-3 station's CSR for its own identity is Accepted and the chain arrives by
    CertificateSigned; a CSR naming another station, and any CSR on profile 2, are Rejected with the reason."""
    from cryptography.hazmat.primitives import hashes

    from edges.pnc.service import shared

    spec = register_charger("PNC3", unique, version="ocpp2.0.1", profile=3)
    key = ec.generate_private_key(ec.SECP256R1())

    def csr(cn: str) -> str:
        return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
            x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, get_settings().pnc_organization)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())

    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client(spec.station_id)) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            # CertificateSigned travels through ocpp.commands: wait until this edge's route for the station is
            # in Redis (routes are written in batches), or another instance would answer OFFLINE for it
            import redis as _redis

            from edges.ocpp.dispatch import ROUTE_PREFIX

            routes = _redis.Redis.from_url(get_settings().redis_url.get_secret_value(), decode_responses=True)
            for _ in range(150):
                if routes.get(ROUTE_PREFIX + spec.station_id) == edge.instance:
                    break
                await asyncio.sleep(0.2)
            routes.close()
            res = await cp.call(call201.SignCertificate(csr=csr("SOMEONE-ELSE"),
                                                        certificate_type="ChargingStationCertificate"), suppress=False)
            assert res.status == "Rejected" and res.status_info["reason_code"] == "CsrIdentityMismatch"
            res = await cp.call(call201.SignCertificate(csr=csr(spec.station_id),
                                                        certificate_type="ChargingStationCertificate"), suppress=False)
            assert res.status == "Accepted"
            got = [kw for action, kw in cp.received if action == "CertificateSigned"]
            for _ in range(150):
                if got:
                    break
                await asyncio.sleep(0.2)  # the edge runs in this event loop: never block it while waiting
                got = [kw for action, kw in cp.received if action == "CertificateSigned"]
            assert got, events("ocpp.commands", lambda t, r: r.get("charge_point_id") == spec.station_id)
    chain = x509.load_pem_x509_certificates(got[0]["certificateChain"].encode())
    leaf = chain[0]
    assert leaf.public_key() == key.public_key()
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == spec.station_id
    v2g_root = shared().material.v2g_root
    verify_chain(leaf, chain[1:], [v2g_root], now=dt.datetime.now(dt.UTC))
    (tmp_path / "v2g.pem").write_bytes(v2g_root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "chain.pem").write_text(got[0]["certificateChain"])
    out = _openssl("verify", "-CAfile", str(tmp_path / "v2g.pem"), "-untrusted", str(tmp_path / "chain.pem"),
                   str(tmp_path / "chain.pem"))
    assert ": OK" in out, out
    assert events("pnc", lambda t, r: t == "StationCertificateSigned" and r["station_id"] == spec.station_id)

    s2 = register_charger("PNC2", unique, version="ocpp2.0.1", profile=2)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), s2, ssl=pki.client()) as cp:
            assert (await boot(cp, s2)).status == "Accepted"
            res = await cp.call(call201.SignCertificate(csr=csr(s2.station_id)), suppress=False)
            assert res.status == "Rejected" and res.status_info["reason_code"] == "ProfileViolation"


async def test_a_plug_and_charge_session_is_billed_like_any_other(pnc_service, platform, unique, pki) -> None:  # noqa: ANN001,F811,E501
    """The eMAID of the installed contract starts a 2.0.1 transaction; the sessions and billing processors price
    it from the station's tariff and the account behind the eMAID, and the driver sees the cost."""
    import json as _json

    from chargeverse.tariffs_admin import set_tariff

    tariff = _json.loads((Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples" /
                          "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh, VAT 10 %
    api = httpx.Client(base_url=platform.api, timeout=30)
    email = f"pnc-bill-{unique}@example.com"
    assert api.post("/api/auth/register", json={"email": email, "password": "correct horse battery staple"}
                    ).status_code in (201, 202)
    tok = api.post("/api/auth/login", json={"email": email, "password": "correct horse battery staple"})
    driver = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    account_id = api.get("/api/me", headers=driver).json()["account_id"]
    car = Car(f"BIL{unique}".upper()[:18])
    assert api.post("/pnc/trusted-roots", headers=_admin(), json={
        "kind": "OEM", "certificate_pem": car.root.certificate.public_bytes(serialization.Encoding.PEM).decode()}
    ).status_code == 200
    r = api.post("/pnc/enrolments", headers=_admin(), json={
        "account_id": account_id, "pcid": car.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value})
    assert r.status_code == 200, r.text
    emaid = r.json()["emaid"]

    spec = register_charger("PNCBILL", unique, version="ocpp2.0.1", profile=2)
    p = EventProducer()
    try:
        set_tariff(p, spec.station_id, tariff, time_zone="Europe/Rome", set_by="test", valid_from=TARIFFS_SINCE)
    finally:
        p.close()
    wait_for("the tariff projected", lambda: httpx.get(
        f"{platform.api}/api/operator/stations/{spec.station_id}/tariff",
        headers={"Authorization": f"Bearer {issue('op', ['operator'])}"}).status_code == 200)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client()) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            res = await cp.call(call201.Get15118EVCertificate(**car.installation_request()), suppress=False)
            assert res.status == "Accepted"
            tx = f"PNC-{unique}"
            token = {"id_token": emaid, "type": "eMAID"}
            for seq, (event, reason, wh, ts) in enumerate((("Started", "Authorized", 1_000_000, "10:00"),
                                                           ("Ended", "EVCommunicationLost", 1_010_000, "11:00"))):
                ev = await cp.call(call201.TransactionEvent(
                    event_type=event, timestamp=f"2026-11-27T{ts}:00Z", trigger_reason=reason, seq_no=seq,
                    transaction_info={"transaction_id": tx, **({"stopped_reason": "EVDisconnected"}
                                                               if event == "Ended" else {})},
                    evse={"id": 1, "connector_id": 1}, id_token=token if seq == 0 else None,
                    # Begin/End samples strictly inside the session: a sample AT the start or stop instant sends
                    # the session to billing review today (streams/billing/fold.py `_samples` adds its own start
                    # and stop points: "samples[1].timestamp ... is not after the previous sample"), reported
                    meter_value=[{"timestamp": "2026-11-27T10:00:01Z" if seq == 0 else "2026-11-27T10:59:59Z",
                                  "sampled_value": [
                        {"value": wh, "measurand": "Energy.Active.Import.Register",
                         "context": "Transaction.Begin" if seq == 0 else "Transaction.End"}]}]), suppress=False)
                if seq == 0:
                    assert ev.id_token_info["status"] == "Accepted"

    def billed():  # noqa: ANN202
        items = api.get("/api/sessions/history", headers=driver).json()["items"]
        mine = [s for s in items if s["charge_point_id"] == spec.station_id]
        return mine[0] if mine and mine[0]["cost"] else None

    try:
        s = wait_for("the PnC session billed", billed, timeout=60)
    except AssertionError:  # say why: the billing topic has the review reasons
        raise AssertionError(events("billing", lambda t, r: t == "BillingReview" and spec.station_id in str(r)))
    assert s["energy_kwh"] == 10.0
    assert s["cost"] == {"currency": "EUR", "excl_vat": "2.50", "incl_vat": "2.75", "final": True}


async def test_real_iso15118_exi_installation_is_signed_by_the_cps_and_completed_from_the_oem_sub_ca_pool(
        pnc_service, platform, unique, pki) -> None:  # noqa: ANN001,F811
    """A real ISO 15118-2 EXI CertificateInstallationReq (signed by the car, carrying only its OEM leaf, as real
    cars send it) through a real OCPP 2.0.1 charger: the OEM sub-CAs come from the pool registered through the API,
    the EXI answer is signed by our CPS leaf (chain up to our V2G root), the car unwraps a key that matches its
    contract, and the contract chains to our MO root.  A car whose sub-CA nobody registered gets
    FAILED_CertChainError.  Whether each request's signature was checked is on the log."""
    from chargeverse.pnc import exi

    if exi.unavailable_reason() is not None:
        pytest.skip(f"real EXI codec absent: {exi.unavailable_reason()}")
    from edges.pnc.service import shared

    api = httpx.Client(base_url=platform.api, timeout=30)
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    car = Car(f"EXI{unique}".upper()[:18])
    for kind, cert in (("OEM", car.root.certificate), ("OEM_SUB", car.sub2.certificate),
                       ("OEM_SUB", car.sub1.certificate)):
        r = api.post("/pnc/trusted-roots", headers=_admin(), json={"kind": kind,
                                                                   "certificate_pem": cert.public_bytes(pem).decode()})
        assert r.status_code == 200, r.text
    r = api.post("/pnc/trusted-roots", headers=_admin(), json={  # a sub-CA is no trust anchor: not as a root
        "kind": "OEM", "certificate_pem": car.sub1.certificate.public_bytes(pem).decode()})
    assert r.status_code == 422 and "ProfileViolation" in r.text
    stranger = Car(f"EXS{unique}".upper()[:18])  # its root is trusted, its sub-CAs never registered
    r = api.post("/pnc/trusted-roots", headers=_admin(), json={
        "kind": "OEM", "certificate_pem": stranger.root.certificate.public_bytes(pem).decode()})
    assert r.status_code == 200, r.text
    emaids = []
    for who, c in (("exi", car), ("exs", stranger)):
        r = api.post("/pnc/enrolments", headers=_admin(), json={
            "account_id": _account(f"{who}{unique}"),
            "pcid": c.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value})
        assert r.status_code == 200, r.text
        emaids.append(r.json()["emaid"])
    mo_root = {str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value): c
               for c in pkcs7.load_der_pkcs7_certificates(api.get("/pnc/ca-issuers.p7c").content)}["MORootCA"]

    session = bytes.fromhex("00112233445566ff")
    request = exi.encode_request_installation(car.cert.public_bytes(der), session_id=session, message_id="inst1",
                                              sign_with=car.key)
    unsigned = exi.encode_request_installation(stranger.cert.public_bytes(der))
    spec = register_charger("PNCEXI", unique, version="ocpp2.0.1", profile=2)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client()) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            res = await cp.call(call201.Get15118EVCertificate(
                iso15118_schema_version=SCHEMA, action="Install", exi_request=base64.b64encode(request).decode()),
                suppress=False)
            assert res.status == "Accepted", res
            refused = await cp.call(call201.Get15118EVCertificate(
                iso15118_schema_version=SCHEMA, action="Install", exi_request=base64.b64encode(unsigned).decode()),
                suppress=False)

    # the car's side: the answer is real EXI, signed by the CPS leaf whose chain ends at our V2G root
    header, name, body = exi.decode_response(base64.b64decode(res.exi_response))
    assert name == "CertificateInstallationRes" and body["ResponseCode"] == "OK"
    assert bytes.fromhex(header["SessionID"]) == session

    def certs(chain: dict) -> list[x509.Certificate]:
        subs = chain.get("SubCertificates", {}).get("Certificate", [])
        return [x509.load_der_x509_certificate(base64.b64decode(c))
                for c in [chain["Certificate"], *(subs if isinstance(subs, list) else [subs])]]

    cps_leaf, *cps_subs = certs(body["SAProvisioningCertificateChain"])
    now = dt.datetime.now(dt.UTC)
    assert verify_chain(cps_leaf, cps_subs, [shared().material.v2g_root], now=now)[-1] == shared().material.v2g_root
    assert cps_leaf.subject.get_attributes_for_oid(x509.NameOID.DOMAIN_COMPONENT)[0].value == "CPS"
    exi.verify_signature(exi.default_codec(), header["Signature"], {n: body[n] for n in exi.SIGNED_ELEMENTS},
                         cps_leaf.public_key())  # raises BadSignature otherwise
    contract, *subs = certs(body["ContractSignatureCertChain"])
    key = decrypt_private_key(base64.b64decode(body["ContractSignatureEncryptedPrivateKey"]["value"]), car.key,
                              base64.b64decode(body["DHpublickey"]["value"]))
    assert contract_private_key_matches(contract, key)
    assert body["eMAID"]["value"] == emaids[0]
    verify_chain(contract, subs, [mo_root], now=now)

    assert refused.status == "Failed" and refused.status_info["reason_code"] == "UntrustedChain", refused
    assert "registered OEM sub-CA" in refused.status_info["additional_info"]
    _, _, failed = exi.decode_response(base64.b64decode(refused.exi_response))
    assert failed["ResponseCode"] == "FAILED_CertChainError"

    # the log says which request's signature was checked (the car signed; the stranger did not)
    issued = wait_for("issuance on the log", lambda: events(
        "pnc", lambda t, r: t == "ContractCertificateIssued" and r["emaid"] == emaids[0]))
    assert [r["request_signature_checked"] for _, r in issued] == [True]
    rejected = wait_for("refusal on the log", lambda: events(
        "pnc", lambda t, r: t == "PncRequestRejected" and r["station_id"] == spec.station_id))
    assert [(r["reason"], r["request_signature_checked"]) for _, r in rejected] == [("UntrustedChain", False)]
