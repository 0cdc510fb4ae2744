"""`cv pnc csr` and `cv pnc import-subca`: chaining our MO PKI under an external V2G/MO root, end to end.

The test plays the external root with plain `cryptography` (not our CA code: an independent party), signs the CSR
the CLI wrote, imports the result through the CLI, and then issues a contract the way Get15118EVCertificate and
`cv pnc issue` do (chargeverse.pnc.provisioning.install_contract on the loaded material): the contract chain
must verify up to the external root with our verifier, `cryptography`'s RFC 5280 verifier and `openssl verify`.
Every refusal leaves the CA directory exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pnc_fixtures import OemPki, openssl_verify

from chargeverse.cli import main as cv
from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.emaid import generate
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.provisioning import contract_private_key_matches, decrypt_private_key, install_contract
from chargeverse.settings import Settings, get_settings
from edges.pnc import material

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)
KEK = "a long test key-encryption key"


class ExternalRoot:
    """A V2G root run by someone else: its own key, its own signing policy."""

    def __init__(self, *, key: object | None = None, not_after: dt.datetime | None = None, name: str = "V2GRootCA"
                 ) -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Some V2G PKI"),
                               x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                               x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "V2G")])
        pub = self.key.public_key()  # type: ignore[attr-defined]
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name).public_key(pub)
                     .serial_number(x509.random_serial_number()).not_valid_before(NOW - 24 * HOUR)
                     .not_valid_after(not_after or NOW + 24 * 3650 * HOUR)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
                     .sign(self.key, hashes.SHA256()))  # type: ignore[arg-type]

    def sign_csr(self, csr_pem: bytes, *, path_length: int | None = 1, key_cert_sign: bool = True,
                 public_key: object | None = None, signing_key: object | None = None,
                 not_before: dt.datetime | None = None) -> bytes:
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        pub = public_key or csr.public_key()
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.name).public_key(pub)
                .serial_number(x509.random_serial_number()).not_valid_before(not_before or NOW - HOUR)
                .not_valid_after(NOW + 24 * 1460 * HOUR)
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, key_cert_sign, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)  # type: ignore[attr-defined]
                .sign(signing_key or self.key, hashes.SHA256()))  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.PEM)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`cv` in this process, its CA directory under tmp_path (no database or broker is involved)."""
    monkeypatch.setenv("CV_PNC_CA_DIR", str(tmp_path / "ca"))
    monkeypatch.setenv("CV_PNC_CA_KEY_ENCRYPTION_KEY", KEK)
    monkeypatch.setenv("CV_PNC_ORGANIZATION", "Chargeverse eMSP")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def _csr(tmp_path: Path, *extra: str) -> bytes:
    assert cv(["pnc", "csr", "--out", str(tmp_path / "sub1.csr"), *extra]) == 0
    return (tmp_path / "sub1.csr").read_bytes()


def _import(tmp_path: Path, cert_pem: bytes, root_pem: bytes) -> int:
    (tmp_path / "issued.pem").write_bytes(cert_pem)
    (tmp_path / "root.pem").write_bytes(root_pem)
    return cv(["pnc", "import-subca", "--cert", str(tmp_path / "issued.pem"), "--root", str(tmp_path / "root.pem")])


def test_contracts_chain_up_to_the_external_root(ca_env: Settings, tmp_path: Path, oem: OemPki,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # an operator who ran with its own root first: a contract issued then must stay answerable afterwards
    before = material.load_or_create(ca_env)
    emaid = generate("NL", "CVS", "C12345678")
    old = install_contract(before.mo, emaid, oem.leaf, oem.subs, [oem.root.certificate], now=NOW)

    csr_pem = _csr(tmp_path)
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "MO"
    assert csr.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    again = x509.load_pem_x509_csr(_csr(tmp_path))  # the pending key is kept: a CSR for the same key
    assert again.public_key() == csr.public_key() and again.subject == csr.subject
    assert b"PRIVATE KEY-----\n" not in (material.ca_dir(ca_env) / material.PENDING_KEY).read_bytes().replace(
        b"ENCRYPTED PRIVATE KEY", b"")  # stored encrypted only

    root = ExternalRoot()
    issued = root.sign_csr(csr_pem)
    capsys.readouterr()
    assert _import(tmp_path, issued, root.pem) == 0, capsys.readouterr().err
    assert "mo_sub2" in capsys.readouterr().out

    m = material.load_or_create(ca_env)
    assert m.mo.root is None and m.mo_root == root.cert  # the root is not ours: no key for it anywhere
    assert m.mo.sub_ca1.certificate == x509.load_pem_x509_certificate(issued)
    assert not (material.ca_dir(ca_env) / "mo_root.key").exists()
    assert not (material.ca_dir(ca_env) / material.PENDING_KEY).exists()

    # a contract issued now (the Get15118EVCertificate / `cv pnc issue` path) chains up to the external root
    now = dt.datetime.now(dt.UTC)  # sub-CA 2 was made at the import, after NOW
    new = install_contract(m.mo, emaid, oem.leaf, oem.subs, [oem.root.certificate], now=now)
    assert list(new.sub_certificates) == [m.mo.sub_ca2.certificate, m.mo.sub_ca1.certificate]
    path = verify_chain(new.contract_certificate, list(new.sub_certificates), [root.cert], now=now)
    assert path[-1] == root.cert
    key = decrypt_private_key(new.encrypted_private_key, oem.leaf_key, new.dh_public_key)
    assert contract_private_key_matches(new.contract_certificate, key)
    # ... and not up to our old root, which a car trusting only the external root would not have
    with pytest.raises(PncRejection):
        verify_chain(new.contract_certificate, list(new.sub_certificates), [before.mo_root], now=now)
    if shutil.which("openssl"):
        out = openssl_verify(tmp_path, new.contract_certificate, list(new.sub_certificates), root.cert)
        assert out.returncode == 0 and "leaf.pem: OK" in out.stdout, out.stdout + out.stderr

    # the retired chain still answers for what it issued: OCSP and renewals know its CAs and root
    assert before.mo.sub_ca2.certificate in [ca.certificate for ca in m.ocsp_cas()]
    assert m.mo_roots[0] == root.cert and before.mo_root in m.mo_roots
    verify_chain(old.contract_certificate, list(old.sub_certificates), m.mo_roots, now=now)
    # and the CA issuers the API publishes are the new chain
    assert m.mo.sub_ca2.certificate.issuer == m.mo.sub_ca1.certificate.subject


def test_the_csr_key_can_be_replaced(ca_env: Settings, tmp_path: Path) -> None:
    first = x509.load_pem_x509_csr(_csr(tmp_path)).public_key()
    second = x509.load_pem_x509_csr(_csr(tmp_path, "--new-key")).public_key()
    assert first != second


def _refused(ca_env: Settings, tmp_path: Path, cert_pem: bytes, root_pem: bytes,
             capsys: pytest.CaptureFixture[str]) -> str:
    d = material.ca_dir(ca_env)
    snap = _snapshot(d)
    capsys.readouterr()
    assert _import(tmp_path, cert_pem, root_pem) == 2
    assert _snapshot(d) == snap  # nothing changed on disk
    return capsys.readouterr().err


@pytest.mark.parametrize("case,reason", [
    ("another key", "KeyMismatch"),
    ("signed by someone else", "BadSignature"),
    ("another root given", "WrongIssuer"),
    ("path length 0", "ProfileViolation"),
    ("no keyCertSign", "ProfileViolation"),
    ("root expired", "Expired"),
    ("not yet valid", "NotYetValid"),
    ("RSA root", "RsaKey"),
    ("garbage", "MalformedCertificate"),
])
def test_a_bad_certificate_changes_nothing(ca_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           case: str, reason: str) -> None:
    material.load_or_create(ca_env)
    csr_pem = _csr(tmp_path)
    root = ExternalRoot()
    cert, root_pem = root.sign_csr(csr_pem), root.pem
    if case == "another key":
        cert = root.sign_csr(csr_pem, public_key=ec.generate_private_key(ec.SECP256R1()).public_key())
    elif case == "signed by someone else":
        cert = root.sign_csr(csr_pem, signing_key=ec.generate_private_key(ec.SECP256R1()))
    elif case == "another root given":
        root_pem = ExternalRoot(name="OtherRootCA").pem
    elif case == "path length 0":
        cert = root.sign_csr(csr_pem, path_length=0)
    elif case == "no keyCertSign":
        cert = root.sign_csr(csr_pem, key_cert_sign=False)
    elif case == "root expired":
        old = ExternalRoot(not_after=NOW - HOUR)
        cert, root_pem = old.sign_csr(csr_pem), old.pem
    elif case == "not yet valid":
        cert = root.sign_csr(csr_pem, not_before=NOW + 24 * HOUR)
    elif case == "RSA root":
        rsa_root = ExternalRoot(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        cert, root_pem = rsa_root.sign_csr(csr_pem), rsa_root.pem
    elif case == "garbage":
        cert = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    err = _refused(ca_env, tmp_path, cert, root_pem, capsys)
    assert err.startswith("refused: ") and reason in err, err


def test_import_without_a_csr_is_refused(ca_env: Settings, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    material.load_or_create(ca_env)
    root = ExternalRoot()
    other_csr = x509.CertificateSigningRequestBuilder().subject_name(root.name).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    err = _refused(ca_env, tmp_path, root.sign_csr(other_csr), root.pem, capsys)
    assert "cv pnc csr" in err


def test_a_switch_interrupted_half_way_is_finished_by_the_next_load(ca_env: Settings, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    material.load_or_create(ca_env)
    csr_pem = _csr(tmp_path)
    root = ExternalRoot()
    issued = root.sign_csr(csr_pem)
    real_replace, calls = os.replace, []

    def crash_on_fourth(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 4:  # after the marker and one file moved: a power cut
            raise OSError("power cut")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(material.os, "replace", crash_on_fourth)
    with pytest.raises(OSError, match="power cut"):
        material.import_sub_ca(ca_env, issued, root.pem)
    monkeypatch.setattr(material.os, "replace", real_replace)
    assert (material.ca_dir(ca_env) / material.SWITCHING).exists()
    m = material.load_or_create(ca_env)  # finishes the switch, then loads a consistent chain
    assert m.mo_root == root.cert and m.mo.sub_ca1.certificate == x509.load_pem_x509_certificate(issued)
    assert not (material.ca_dir(ca_env) / material.SWITCHING).exists()
    assert len(m.retired) == 1 and m.retired[0].root is not None  # the old own root, with its key, retired
    with pytest.raises(PncRejection) as exc:
        material.import_sub_ca(ca_env, issued, root.pem)  # the pending key was used up
    assert exc.value.reason is Reason.MALFORMED_REQUEST

