"""SignCertificate: station CSRs signed by CPO sub-CA 2, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.station_certs import CertificateSigningUse, sign_station_csr

from pnc_fixtures import CPO_IDENTITY, NOW, openssl_verify


def _csr(cn: str = "CS-0042", org: str = CPO_IDENTITY.organization, key=None) -> str:  # noqa: ANN001
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_station_certificate_is_signed_and_verifies(cpo, tmp_path: Path) -> None:  # noqa: ANN001
    root, sub1, sub2 = cpo
    key = ec.generate_private_key(ec.SECP256R1())
    cert = sign_station_csr(sub2, _csr(key=key), station_id="CS-0042", security_profile=3, now=NOW)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CS-0042"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    result = openssl_verify(tmp_path, cert, [sub2.certificate, sub1.certificate], root.certificate, "-purpose", "sslclient")
    assert result.returncode == 0, result.stderr + result.stdout
    verify_chain(cert, [sub2.certificate, sub1.certificate], [root.certificate], now=NOW)


def test_v2g_certificate_uses_secc_profile(cpo) -> None:  # noqa: ANN001
    cert = sign_station_csr(cpo[2], _csr(), station_id="CS-0042", security_profile=3, use=CertificateSigningUse.V2G, now=NOW)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_agreement and not ku.key_cert_sign
    assert cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "CPO"


@pytest.mark.parametrize("profile", [0, 1, 2])
def test_certificate_operations_refused_below_security_profile_3(cpo, profile: int) -> None:  # noqa: ANN001
    with pytest.raises(PncRejection) as info:
        sign_station_csr(cpo[2], _csr(), station_id="CS-0042", security_profile=profile, now=NOW)
    assert info.value.reason is Reason.PROFILE_VIOLATION


def test_csr_for_another_station_is_refused(cpo) -> None:  # noqa: ANN001
    with pytest.raises(PncRejection) as info:
        sign_station_csr(cpo[2], _csr(cn="CS-9999"), station_id="CS-0042", security_profile=3, now=NOW)
    assert info.value.reason is Reason.CSR_IDENTITY_MISMATCH


def test_csr_for_another_organisation_is_refused(cpo) -> None:  # noqa: ANN001
    with pytest.raises(PncRejection) as info:
        sign_station_csr(cpo[2], _csr(org="Evil CPO"), station_id="CS-0042", security_profile=3, now=NOW)
    assert info.value.reason is Reason.CSR_IDENTITY_MISMATCH


def test_rsa_and_wrong_curve_csrs_are_refused(cpo) -> None:  # noqa: ANN001
    for key, reason in (
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), Reason.RSA_KEY),
        (ec.generate_private_key(ec.SECP384R1()), Reason.WRONG_CURVE),
    ):
        with pytest.raises(PncRejection) as info:
            sign_station_csr(cpo[2], _csr(key=key), station_id="CS-0042", security_profile=3, now=NOW)
        assert info.value.reason is reason


def test_tampered_csr_signature_is_refused(cpo) -> None:  # noqa: ANN001
    pem = _csr()
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # flip a bit inside the signature
    import base64

    body = base64.encodebytes(bytes(der)).decode()
    tampered = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(PncRejection) as info:
        sign_station_csr(cpo[2], tampered, station_id="CS-0042", security_profile=3, now=NOW)
    assert info.value.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(("csr", "reason"), [("hello", Reason.INVALID_CSR), ("A" * 6000, Reason.OVERSIZED_INPUT)])
def test_garbage_csr_gives_typed_rejection(cpo, csr: str, reason: Reason) -> None:  # noqa: ANN001
    with pytest.raises(PncRejection) as info:
        sign_station_csr(cpo[2], csr, station_id="CS-0042", security_profile=3, now=NOW)
    assert info.value.reason is reason
