"""Revocation registry, OCSP answers (checked by OpenSSL too), CRLs, GetCertificateStatus."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from chargeverse.pnc.ca import MoHierarchy, create_root, issue_contract_certificate
from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.revocation import (
    CertStatus,
    OcspResponder,
    RevocationCause,
    RevocationRegistry,
    build_crl,
    get_certificate_status,
    get_certificate_status_from_der,
    ocpp_request_data,
)
from chargeverse.pnc.signer import SoftwareSigner

from pnc_fixtures import MO_IDENTITY, NOW, ExternalSigner, pem


def _contract(mo: MoHierarchy, registry: RevocationRegistry) -> x509.Certificate:
    cert = issue_contract_certificate(mo.sub_ca2, "DE-8EO-C12345678", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    registry.record_issued(mo.sub_ca2, cert)
    return cert


def _request(cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _openssl_resp_text(tmp_path: Path, response_der: bytes, issuer: x509.Certificate, cert: x509.Certificate) -> str:
    (tmp_path / "resp.der").write_bytes(response_der)
    (tmp_path / "issuer.pem").write_bytes(pem(issuer))
    (tmp_path / "cert.pem").write_bytes(pem(cert))
    # -VAfile: the responder (the issuing CA itself) is trusted for this check;
    # -issuer/-sha256/-cert make openssl match the single response to our certificate.
    out = subprocess.run(
        ["openssl", "ocsp", "-respin", str(tmp_path / "resp.der"), "-resp_text", "-VAfile", str(tmp_path / "issuer.pem"),
         "-issuer", str(tmp_path / "issuer.pem"), "-sha256", "-cert", str(tmp_path / "cert.pem"), "-no_nonce"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout + out.stderr


def test_good_then_revoked_via_ocsp_parsed_by_cryptography_and_openssl(mo: MoHierarchy, tmp_path: Path) -> None:
    registry = RevocationRegistry()
    cert = _contract(mo, registry)
    responder = OcspResponder([mo.sub_ca2, mo.sub_ca1], registry)

    good = responder.respond_der(_request(cert, mo.sub_ca2.certificate, nonce=b"n" * 16), now=NOW)
    parsed = ocsp.load_der_ocsp_response(good)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == cert.serial_number
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    mo.sub_ca2.certificate.public_key().verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    text = _openssl_resp_text(tmp_path, good, mo.sub_ca2.certificate, cert)
    assert "Response verify OK" in text and ": good" in text

    event = registry.revoke(mo.sub_ca2, cert.serial_number, RevocationCause.KEY_COMPROMISE, at=NOW)
    assert event["cause"] == "key_compromise" and event["serial_number"] == str(cert.serial_number)
    revoked = ocsp.load_der_ocsp_response(responder.respond_der(_request(cert, mo.sub_ca2.certificate), now=NOW))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert revoked.revocation_time_utc == NOW
    text = _openssl_resp_text(tmp_path, revoked.public_bytes(serialization.Encoding.DER), mo.sub_ca2.certificate, cert)
    assert ": revoked" in text and "keyCompromise" in text


def test_never_issued_serial_is_unknown_not_good(mo: MoHierarchy, tmp_path: Path) -> None:
    registry = RevocationRegistry()
    responder = OcspResponder([mo.sub_ca2], registry)
    # A certificate with our issuer's name and key hash but a serial we never recorded.
    ghost = issue_contract_certificate(mo.sub_ca2, "DE-8EO-C12345678", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    body = responder.respond_der(_request(ghost, mo.sub_ca2.certificate), now=NOW)
    assert ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert ": unknown" in _openssl_resp_text(tmp_path, body, mo.sub_ca2.certificate, ghost)


def test_foreign_issuer_gets_unauthorized_and_garbage_gets_malformed(mo: MoHierarchy) -> None:
    registry = RevocationRegistry()
    responder = OcspResponder([mo.sub_ca2], registry)
    other = create_root("moRootCA", MO_IDENTITY, SoftwareSigner.generate(), now=NOW, common_name="Elsewhere")
    body = responder.respond_der(_request(other.certificate, other.certificate), now=NOW)
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    for junk in (b"", b"\x30\x00", b"\xff" * 50, b"\x30" * 10_000):
        assert ocsp.load_der_ocsp_response(responder.respond_der(junk, now=NOW)).response_status is (
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        )


def test_ocsp_signed_through_hsm_shaped_signer_verifies(tmp_path: Path) -> None:
    root = create_root("moRootCA", MO_IDENTITY, ExternalSigner(), now=NOW)
    sub1 = root.issue_sub_ca("moSubCA1", ExternalSigner(), now=NOW)
    sub2 = sub1.issue_sub_ca("moSubCA2", ExternalSigner(), now=NOW)
    registry = RevocationRegistry()
    cert = issue_contract_certificate(sub2, "DE-8EO-C12345678", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    registry.record_issued(sub2, cert)
    registry.revoke(sub2, cert.serial_number, RevocationCause.ACCOUNT_CLOSED, at=NOW)
    body = OcspResponder([sub2], registry).respond_der(_request(cert, sub2.certificate), now=NOW)
    parsed = ocsp.load_der_ocsp_response(body)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    sub2.certificate.public_key().verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert "Response verify OK" in _openssl_resp_text(tmp_path, body, sub2.certificate, cert)
    crl = build_crl(sub2, registry, now=NOW, crl_number=1)
    assert crl.is_signature_valid(sub2.certificate.public_key())  # type: ignore[arg-type]


def test_revoked_contract_is_refused_by_chain_verification(mo: MoHierarchy) -> None:
    registry = RevocationRegistry()
    cert = _contract(mo, registry)
    subs = [mo.sub_ca2.certificate, mo.sub_ca1.certificate]
    verify_chain(cert, subs, [mo.root_certificate], now=NOW, is_revoked=registry.is_revoked)
    registry.revoke(mo.sub_ca2, cert.serial_number, RevocationCause.ACCOUNT_CLOSED, at=NOW)
    with pytest.raises(PncRejection) as info:
        verify_chain(cert, subs, [mo.root_certificate], now=NOW, is_revoked=registry.is_revoked)
    assert info.value.reason is Reason.REVOKED


def test_revoking_a_serial_we_never_issued_is_refused_and_first_revocation_wins(mo: MoHierarchy) -> None:
    registry = RevocationRegistry()
    with pytest.raises(PncRejection):
        registry.revoke(mo.sub_ca2, 12345, RevocationCause.ACCOUNT_CLOSED, at=NOW)
    cert = _contract(mo, registry)
    registry.revoke(mo.sub_ca2, cert.serial_number, RevocationCause.KEY_COMPROMISE, at=NOW)
    later = registry.revoke(mo.sub_ca2, cert.serial_number, RevocationCause.ACCOUNT_CLOSED, at=NOW + dt.timedelta(days=3))
    assert later["cause"] == "key_compromise" and later["revoked_at"] == NOW.isoformat()
    status, entry = registry.status(mo.sub_ca2.key_identifier.hex(), cert.serial_number)
    assert status is CertStatus.REVOKED and entry is not None and entry.revoked_at == NOW


def test_crl_lists_revocations_and_openssl_checks_it(mo: MoHierarchy, tmp_path: Path) -> None:
    registry = RevocationRegistry()
    revoked = _contract(mo, registry)
    kept = _contract(mo, registry)
    registry.revoke(mo.sub_ca2, revoked.serial_number, RevocationCause.VEHICLE_SOLD, at=NOW)
    crl = build_crl(mo.sub_ca2, registry, now=NOW, crl_number=7)
    assert crl.is_signature_valid(mo.sub_ca2.certificate.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.affiliation_changed
    assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    # openssl verify with the CRL: the revoked contract fails, the other passes.
    (tmp_path / "ca.pem").write_bytes(pem(mo.sub_ca2.certificate, mo.sub_ca1.certificate, mo.root_certificate))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    for cert, ok in ((revoked, False), (kept, True)):
        (tmp_path / "leaf.pem").write_bytes(pem(cert))
        out = subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", str(tmp_path / "ca.pem"), "-CRLfile", str(tmp_path / "crl.pem"),
             str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=30,
        )
        assert (out.returncode == 0) is ok, out.stdout + out.stderr
        if not ok:
            assert "revoked" in (out.stdout + out.stderr)


def test_get_certificate_status_answers_ocpp_request_data(mo: MoHierarchy) -> None:
    registry = RevocationRegistry()
    cert = _contract(mo, registry)
    responder = OcspResponder([mo.sub_ca2], registry)
    data = ocpp_request_data(cert, mo.sub_ca2.certificate, MO_IDENTITY.ocsp_url)
    # Our CertID hashes equal the ones cryptography's OCSP request builder computes.
    request = ocsp.load_der_ocsp_request(_request(cert, mo.sub_ca2.certificate))
    assert bytes.fromhex(data["issuerKeyHash"]) == request.issuer_key_hash
    assert bytes.fromhex(data["issuerNameHash"]) == request.issuer_name_hash

    answer = get_certificate_status(responder, data, now=NOW)
    assert answer["status"] == "Accepted"
    parsed = ocsp.load_der_ocsp_response(base64.b64decode(answer["ocspResult"]))
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD and parsed.serial_number == cert.serial_number

    registry.revoke(mo.sub_ca2, cert.serial_number, RevocationCause.ACCOUNT_CLOSED, at=NOW)
    answer = get_certificate_status(responder, data, now=NOW)
    assert ocsp.load_der_ocsp_response(base64.b64decode(answer["ocspResult"])).certificate_status is ocsp.OCSPCertStatus.REVOKED
    # Same answer from a DER OCSP request, and url-safe base64 hashes as the ISO 15118 reference EVCC sends them.
    der_answer = get_certificate_status_from_der(responder, _request(cert, mo.sub_ca2.certificate), now=NOW)
    assert der_answer["status"] == "Accepted"
    b64 = dict(data, issuerKeyHash=base64.urlsafe_b64encode(bytes.fromhex(data["issuerKeyHash"])).decode())
    assert get_certificate_status(responder, b64, now=NOW)["status"] == "Accepted"


@pytest.mark.parametrize(
    "mutation",
    [
        {"hashAlgorithm": "MD5"},
        {"issuerNameHash": "zz"},
        {"issuerKeyHash": "00" * 31},
        {"serialNumber": "not-hex"},
        {"serialNumber": "f" * 41},
        {"issuerNameHash": None},
    ],
)
def test_get_certificate_status_rejects_bad_request_data(mo: MoHierarchy, mutation: dict[str, object]) -> None:
    registry = RevocationRegistry()
    cert = _contract(mo, registry)
    data = {**ocpp_request_data(cert, mo.sub_ca2.certificate, MO_IDENTITY.ocsp_url), **mutation}
    answer = get_certificate_status(OcspResponder([mo.sub_ca2], registry), data, now=NOW)
    assert answer["status"] == "Failed" and answer["statusInfo"]
    assert "ocspResult" not in answer


def test_get_certificate_status_for_foreign_issuer_fails(mo: MoHierarchy) -> None:
    registry = RevocationRegistry()
    other = create_root("moRootCA", MO_IDENTITY, SoftwareSigner.generate(), now=NOW, common_name="Elsewhere")
    data = ocpp_request_data(other.certificate, other.certificate, "http://elsewhere/")
    assert get_certificate_status(OcspResponder([mo.sub_ca2], registry), data, now=NOW) == {
        "status": "Failed", "statusInfo": "UnknownIssuer"}
