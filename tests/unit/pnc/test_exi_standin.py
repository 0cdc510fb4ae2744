"""The CVX1 container (chargeverse/pnc/exi_standin.py): what is accepted, what is refused and why, and a full
installation through it (the car's side included: unwrap the key, check it belongs to the certificate)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from chargeverse.pnc import exi_standin as cvx
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.provisioning import (contract_private_key_matches, decrypt_private_key, install_contract,
                                          parse_get15118ev_certificate)
from pnc_fixtures import NOW

DER = serialization.Encoding.DER


def _reason(fn, *a) -> Reason:  # noqa: ANN001
    with pytest.raises(PncRejection) as exc:
        fn(*a)
    return exc.value.reason


def test_an_installation_request_round_trips(oem) -> None:  # noqa: ANN001
    stream = cvx.encode_request_installation(oem.leaf.public_bytes(DER), [c.public_bytes(DER) for c in oem.subs], "m7")
    assert stream.startswith(b"\x80CVX1")
    req = cvx.decode_request(stream, "Install")
    assert isinstance(req, cvx.InstallationRequest) and req.message_id == "m7"
    assert x509.load_der_x509_certificate(req.oem_provisioning_cert) == oem.leaf
    assert len(req.oem_sub_certificates) == 2


def test_an_update_request_round_trips(oem) -> None:  # noqa: ANN001
    stream = cvx.encode_request_update(oem.leaf.public_bytes(DER), [oem.sub2.certificate.public_bytes(DER)],
                                       "NL-CVE-C12345678-X")
    req = cvx.decode_request(stream, "Update")
    assert isinstance(req, cvx.UpdateRequest) and req.emaid == "NL-CVE-C12345678-X"


@pytest.mark.parametrize("stream, reason", [
    (b"<CertificateInstallationReq/>", Reason.MALFORMED_EXI),          # XML, not EXI
    (b"\x80\x01\x02real schema-informed exi", Reason.MALFORMED_EXI),  # real EXI: not decoded, named as such
    (cvx.PREFIX + b"not json", Reason.MALFORMED_EXI),
    (cvx.PREFIX + b"[1, 2]", Reason.MALFORMED_EXI),
    (cvx.PREFIX + b"\xff\xfe", Reason.MALFORMED_EXI),
    (cvx.encode({"msg": "CertificateUpdateReq"}), Reason.MALFORMED_EXI),  # action says Install
    (cvx.encode({"msg": "CertificateInstallationReq", "OEMProvisioningCert": "AAAA", "Extra": 1}), Reason.MALFORMED_EXI),
    (cvx.encode({"msg": "CertificateInstallationReq"}), Reason.MALFORMED_EXI),  # no certificate
    (cvx.encode({"msg": "CertificateInstallationReq", "OEMProvisioningCert": "!!notb64"}), Reason.MALFORMED_BASE64),
    (cvx.encode({"msg": "CertificateInstallationReq", "OEMProvisioningCert": "A" * 2000}), Reason.MALFORMED_EXI),
    (cvx.encode({"msg": "CertificateInstallationReq", "OEMProvisioningCert": "AAAA",
                 "OEMSubCertificates": ["AAAA"] * 3}), Reason.MALFORMED_EXI),
    (cvx.PREFIX + b" " * 5000, Reason.OVERSIZED_INPUT),
])
def test_bad_containers_are_refused_with_a_reason(stream: bytes, reason: Reason) -> None:
    assert _reason(cvx.decode_request, stream, "Install") is reason


def test_a_non_exi_request_is_refused_before_the_container_is_read() -> None:
    payload = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
               "exiRequest": base64.b64encode(b"{json}").decode()}
    assert _reason(parse_get15118ev_certificate, payload) is Reason.MALFORMED_EXI


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash_the_decoder(data: bytes) -> None:
    for stream in (data, cvx.PREFIX + data):
        try:
            cvx.decode_request(stream, "Install")
        except PncRejection:
            pass


def test_an_ok_response_needs_everything_and_a_failed_one_carries_only_the_code() -> None:
    with pytest.raises(ValueError):
        cvx.encode_response("Install", "OK")
    doc = cvx.decode_response(cvx.encode_response("Update", "FAILED_CertChainError"))
    assert doc == {"msg": "CertificateUpdateRes", "ResponseCode": "FAILED_CertChainError"}


def test_installation_through_the_container_gives_the_car_a_key_only_it_can_unwrap(mo, oem) -> None:  # noqa: ANN001
    req = cvx.decode_request(cvx.encode_request_installation(oem.leaf.public_bytes(DER),
                                                             [c.public_bytes(DER) for c in oem.subs]), "Install")
    assert isinstance(req, cvx.InstallationRequest)
    issued = install_contract(mo, "NLCVEC12345678Q", req.oem_provisioning_cert, req.oem_sub_certificates,
                              [oem.root.certificate], now=NOW)
    stream = cvx.encode_response("Install", "OK", chain_der=issued.chain_der(),
                                 encrypted_private_key=issued.encrypted_private_key,
                                 dh_public_key=issued.dh_public_key, emaid=issued.emaid)
    doc = cvx.decode_response(stream)
    assert "PRIVATE" not in json.dumps(doc)
    cert = x509.load_der_x509_certificate(base64.b64decode(doc["ContractSignatureCertChain"]["Certificate"]))
    key = decrypt_private_key(base64.b64decode(doc["ContractSignatureEncryptedPrivateKey"]), oem.leaf_key,
                              base64.b64decode(doc["DHpublickey"]))
    assert contract_private_key_matches(cert, key)
    other = ec.generate_private_key(ec.SECP256R1())  # anybody else's key unwraps garbage (or fails)
    try:
        wrong = decrypt_private_key(base64.b64decode(doc["ContractSignatureEncryptedPrivateKey"]), other,
                                    base64.b64decode(doc["DHpublickey"]))
        assert not contract_private_key_matches(cert, wrong)
    except PncRejection:
        pass


def test_an_rsa_provisioning_certificate_in_the_container_is_refused(mo, oem) -> None:  # noqa: ANN001
    import datetime as dt

    from cryptography.hazmat.primitives import hashes

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "RSACAR")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(oem.sub2.certificate.subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1)).sign(oem.sub2.signer.private_key, hashes.SHA256()))
    req = cvx.decode_request(cvx.encode_request_installation(cert.public_bytes(DER)), "Install")
    with pytest.raises(PncRejection) as exc:
        install_contract(mo, "NLCVEC12345678Q", req.oem_provisioning_cert, [c.public_bytes(DER) for c in oem.subs],
                         [oem.root.certificate], now=NOW)
    assert exc.value.reason is Reason.RSA_KEY
    assert exc.value.iso15118_response_code == "FAILED_CertChainError"
