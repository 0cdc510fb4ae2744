"""MO / CPO hierarchies: profiles, OpenSSL + cryptography verification, key custody."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from chargeverse.pnc.ca import (
    CertificateAuthority,
    MoHierarchy,
    adopt_issued_sub_ca,
    build_mo_hierarchy_under,
    build_sub_ca_csr,
    create_root,
    import_ca,
    issue_contract_certificate,
)
from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import KEY_USAGE_FIELDS, PROFILES, parse_cnf
from chargeverse.pnc.signer import SoftwareSigner

from pnc_fixtures import MO_IDENTITY, NOW, PKI_DATA, ExternalSigner, openssl_verify

CNF_TO_PROFILE = {
    "contractLeafCert.cnf": "contractLeaf",
    "cpoSubCA1Cert.cnf": "cpoSubCA1",
    "cpoSubCA2Cert.cnf": "cpoSubCA2",
    "cpsLeafCert.cnf": "cpsLeaf",
    "cpsSubCA1Cert.cnf": "cpsSubCA1",
    "cpsSubCA2Cert.cnf": "cpsSubCA2",
    "moRootCACert.cnf": "moRootCA",
    "moSubCA1Cert.cnf": "moSubCA1",
    "moSubCA2Cert.cnf": "moSubCA2",
    "oemLeafCert.cnf": "oemLeaf",
    "oemRootCACert.cnf": "oemRootCA",
    "oemSubCA1Cert.cnf": "oemSubCA1",
    "oemSubCA2Cert.cnf": "oemSubCA2",
    "seccLeafCert.cnf": "seccLeaf",
    "v2gRootCACert.cnf": "v2gRootCA",
}


def test_every_reference_cnf_has_a_profile() -> None:
    assert sorted(p.name for p in PKI_DATA.glob("*.cnf")) == sorted(CNF_TO_PROFILE)


@pytest.mark.parametrize(("cnf_name", "profile_name"), sorted(CNF_TO_PROFILE.items()))
def test_profile_matches_reference_cnf(cnf_name: str, profile_name: str) -> None:
    cnf = parse_cnf((PKI_DATA / cnf_name).read_text())
    profile = PROFILES[profile_name]
    assert cnf.dn["domainComponent"] == profile.domain_component
    assert cnf.is_ca == profile.is_ca
    assert cnf.path_length == profile.path_length
    assert cnf.basic_constraints_critical and cnf.key_usage_critical
    assert cnf.key_usage == profile.key_usage
    assert cnf.subject_key_identifier
    assert bool(cnf.ocsp_urls) == profile.with_aia


def _der_len(cert: x509.Certificate) -> int:
    return len(cert.public_bytes(serialization.Encoding.DER))


def test_mo_chain_shape_matches_profiles(mo: MoHierarchy) -> None:
    contract_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_contract_certificate(mo.sub_ca2, "DE-8EO-C12345678", contract_key.public_key(), now=NOW)
    for cert, profile_name in (
        (leaf, "contractLeaf"),
        (mo.sub_ca2.certificate, "moSubCA2"),
        (mo.sub_ca1.certificate, "moSubCA1"),
        (mo.root_certificate, "moRootCA"),
    ):
        profile = PROFILES[profile_name]
        ext = cert.extensions
        bc = ext.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca == profile.is_ca and bc.value.path_length == profile.path_length
        ku = ext.get_extension_for_class(x509.KeyUsage)
        assert ku.critical
        set_usages = {name for name, attr in KEY_USAGE_FIELDS.items() if getattr(ku.value, attr)}
        assert set_usages == profile.key_usage
        aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP] == [
            MO_IDENTITY.ocsp_url
        ]
        assert cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "MO"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert cert.public_key().curve.name == "secp256r1"
        # ISO 15118-2 certificateType is base64Binary of at most 800 bytes.
        assert _der_len(cert) <= 800
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DE8EOC123456786"
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=730)


def test_mo_chain_verifies_with_openssl_and_cryptography(mo: MoHierarchy, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_contract_certificate(mo.sub_ca2, "NL-TNM-000122045", key.public_key(), now=NOW)
    subs = [mo.sub_ca2.certificate, mo.sub_ca1.certificate]
    result = openssl_verify(tmp_path, leaf, subs, mo.root_certificate)
    assert result.returncode == 0, result.stderr + result.stdout
    assert verify_chain(leaf, subs, [mo.root_certificate], now=NOW)[-1] == mo.root_certificate


def test_openssl_refuses_chain_under_another_root(mo: MoHierarchy, cpo, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_contract_certificate(mo.sub_ca2, "NL-TNM-000122045", key.public_key(), now=NOW)
    result = openssl_verify(tmp_path, leaf, [mo.sub_ca2.certificate, mo.sub_ca1.certificate], cpo[0].certificate)
    assert result.returncode != 0
    with pytest.raises(PncRejection) as info:
        verify_chain(leaf, [mo.sub_ca2.certificate, mo.sub_ca1.certificate], [cpo[0].certificate], now=NOW)
    assert info.value.reason is Reason.UNTRUSTED_CHAIN


def test_leaf_never_outlives_its_issuer(mo: MoHierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_contract_certificate(
        mo.sub_ca2, "NL-TNM-000122045", key.public_key(), now=NOW, validity=dt.timedelta(days=365 * 30)
    )
    assert leaf.not_valid_after_utc == mo.sub_ca2.certificate.not_valid_after_utc


def test_contract_with_wrong_check_digit_is_never_signed(mo: MoHierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PncRejection) as info:
        issue_contract_certificate(mo.sub_ca2, "DE-8EO-C12345678-9", key.public_key(), now=NOW)
    assert info.value.reason is Reason.BAD_CHECK_DIGIT


def test_only_sub_ca2_issues_contracts_and_pathlen_is_enforced(mo: MoHierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PncRejection):
        issue_contract_certificate(mo.sub_ca1, "NL-TNM-000122045", key.public_key(), now=NOW)
    with pytest.raises(PncRejection):
        mo.sub_ca2.issue_sub_ca("moSubCA2", SoftwareSigner.generate(), now=NOW)


def test_rsa_subject_key_is_refused(mo: MoHierarchy) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(PncRejection) as info:
        issue_contract_certificate(mo.sub_ca2, "NL-TNM-000122045", rsa_key.public_key(), now=NOW)  # type: ignore[arg-type]
    assert info.value.reason is Reason.RSA_KEY


def test_hsm_shaped_signer_builds_a_valid_hierarchy(tmp_path: Path) -> None:
    signers = [ExternalSigner() for _ in range(3)]
    root = create_root("moRootCA", MO_IDENTITY, signers[0], now=NOW)
    sub1 = root.issue_sub_ca("moSubCA1", signers[1], now=NOW)
    sub2 = sub1.issue_sub_ca("moSubCA2", signers[2], now=NOW)
    leaf = issue_contract_certificate(sub2, "DE-8EO-C12345678", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    assert all(s.calls >= 1 for s in signers)
    result = openssl_verify(tmp_path, leaf, [sub2.certificate, sub1.certificate], root.certificate)
    assert result.returncode == 0, result.stderr + result.stdout
    verify_chain(leaf, [sub2.certificate, sub1.certificate], [root.certificate], now=NOW)


def test_ca_key_is_encrypted_at_rest_and_needs_the_right_key() -> None:
    signer = SoftwareSigner.generate()
    blob = signer.to_encrypted_pem(b"k" * 32)
    assert b"ENCRYPTED PRIVATE KEY" in blob
    scalar = signer.private_key.private_numbers().private_value.to_bytes(32, "big")
    assert scalar not in blob
    restored = SoftwareSigner.from_encrypted_pem(blob, b"k" * 32)
    assert restored.public_key() == signer.public_key()
    with pytest.raises(PncRejection) as info:
        SoftwareSigner.from_encrypted_pem(blob, b"wrong")
    assert info.value.reason is Reason.KEY_DECRYPTION_FAILED
    assert "key" not in repr(signer).replace("P-256 key", "")
    # OpenSSL can open the stored form with the same key (interoperable, standard PKCS#8).
    out = subprocess.run(
        ["openssl", "pkey", "-passin", "pass:" + "k" * 32, "-pubout"], input=blob, capture_output=True, timeout=30
    )
    assert out.returncode == 0 and b"PUBLIC KEY" in out.stdout


def test_sub_ca_chained_under_imported_root_with_hsm_key(tmp_path: Path) -> None:
    # An operator imports a V2G/MO root whose key lives in an HSM.
    hsm = ExternalSigner()
    external_root = create_root("moRootCA", MO_IDENTITY, hsm, now=NOW, common_name="Industry V2G Root")
    imported = import_ca(external_root.certificate, hsm, MO_IDENTITY)
    mo = build_mo_hierarchy_under(imported, now=NOW, sub_ca1_signer=SoftwareSigner.generate(), sub_ca2_signer=SoftwareSigner.generate())
    leaf = issue_contract_certificate(mo.sub_ca2, "FR-XYZ-123456789", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    result = openssl_verify(tmp_path, leaf, [mo.sub_ca2.certificate, mo.sub_ca1.certificate], external_root.certificate)
    assert result.returncode == 0, result.stderr + result.stdout
    with pytest.raises(PncRejection) as info:
        import_ca(external_root.certificate, SoftwareSigner.generate(), MO_IDENTITY)
    assert info.value.reason is Reason.KEY_MISMATCH


def test_sub_ca_via_csr_to_external_root(tmp_path: Path) -> None:
    external_root = create_root("moRootCA", MO_IDENTITY, SoftwareSigner.generate(), now=NOW, common_name="External Root")
    sub1_signer = SoftwareSigner.generate()
    csr = build_sub_ca_csr("moSubCA1", MO_IDENTITY, sub1_signer)
    assert csr.is_signature_valid
    # The external root signs it (simulated with our own builder for the root's part).
    issued = external_root.issue(PROFILES["moSubCA1"], csr.public_key(), now=NOW)  # type: ignore[arg-type]
    sub1 = adopt_issued_sub_ca(issued, sub1_signer, MO_IDENTITY, [external_root.certificate], now=NOW)
    sub2 = sub1.issue_sub_ca("moSubCA2", SoftwareSigner.generate(), now=NOW)
    leaf = issue_contract_certificate(sub2, "FR-XYZ-123456789", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    verify_chain(leaf, [sub2.certificate, sub1.certificate], [external_root.certificate], now=NOW)
    # A certificate issued by someone else must not be adopted as if from this root.
    other_root = create_root("moRootCA", MO_IDENTITY, SoftwareSigner.generate(), now=NOW, common_name="Other Root")
    with pytest.raises(PncRejection) as info:
        adopt_issued_sub_ca(issued, sub1_signer, MO_IDENTITY, [other_root.certificate], now=NOW)
    assert info.value.reason is Reason.WRONG_ISSUER
    # ...nor with a key that is not ours.
    with pytest.raises(PncRejection):
        adopt_issued_sub_ca(issued, SoftwareSigner.generate(), MO_IDENTITY, [external_root.certificate], now=NOW)


def test_cpo_chain_verifies(cpo: tuple[CertificateAuthority, ...], tmp_path: Path) -> None:
    root, sub1, sub2 = cpo
    key = ec.generate_private_key(ec.SECP256R1())
    secc = sub2.issue(PROFILES["seccLeaf"], key.public_key(), now=NOW, common_name="SECC-DE*CVS*E123")
    result = openssl_verify(tmp_path, secc, [sub2.certificate, sub1.certificate], root.certificate)
    assert result.returncode == 0, result.stderr + result.stdout
    assert secc.not_valid_after_utc - secc.not_valid_before_utc == dt.timedelta(days=60)
    assert secc.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "CPO"
