"""Shared PKI fixtures and helpers for the Plug & Charge core tests (imported by conftest.py).

The hierarchies are session-scoped: building them costs key generation and
signing, and no test mutates a CA (registries are per test).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chargeverse.pnc.ca import CertificateAuthority, MoHierarchy, build_mo_hierarchy, create_root
from chargeverse.pnc.profiles import PROFILES, Identity
from chargeverse.pnc.signer import SoftwareSigner

PKI_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pki"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

MO_IDENTITY = Identity(
    organization="Chargeverse eMSP",
    country="GB",
    ocsp_url="http://ocsp.chargeverse.test/",
    ca_issuers_url="http://pki.chargeverse.test/mo-sub-ca2.cer",
)
CPO_IDENTITY = Identity("Chargeverse CPO", "GB", "http://ocsp.chargeverse.test/cpo", "http://pki.chargeverse.test/cpo.cer")
OEM_IDENTITY = Identity("Example Motors", "DE", "http://ocsp.oem.test/", "http://pki.oem.test/oem.cer")


@dataclass(frozen=True)
class OemPki:
    root: CertificateAuthority
    sub1: CertificateAuthority
    sub2: CertificateAuthority
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @property
    def subs(self) -> list[x509.Certificate]:
        return [self.sub2.certificate, self.sub1.certificate]


def make_oem(now: dt.datetime = NOW, *, leaf_validity: dt.timedelta | None = None, leaf_now: dt.datetime | None = None) -> OemPki:
    root = create_root("oemRootCA", OEM_IDENTITY, SoftwareSigner.generate(), now=now - dt.timedelta(days=30))
    sub1 = root.issue_sub_ca("oemSubCA1", SoftwareSigner.generate(), now=now - dt.timedelta(days=30))
    sub2 = sub1.issue_sub_ca("oemSubCA2", SoftwareSigner.generate(), now=now - dt.timedelta(days=30))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = sub2.issue(
        PROFILES["oemLeaf"], key.public_key(), now=leaf_now or now, common_name="WMI1234567890ABCD", validity=leaf_validity
    )
    return OemPki(root, sub1, sub2, leaf, key)


@pytest.fixture(scope="session")
def mo() -> MoHierarchy:
    return build_mo_hierarchy(
        MO_IDENTITY,
        now=NOW - dt.timedelta(days=1),
        root_signer=SoftwareSigner.generate(),
        sub_ca1_signer=SoftwareSigner.generate(),
        sub_ca2_signer=SoftwareSigner.generate(),
    )


@pytest.fixture(scope="session")
def oem() -> OemPki:
    return make_oem()


@pytest.fixture(scope="session")
def cpo() -> tuple[CertificateAuthority, CertificateAuthority, CertificateAuthority]:
    root = create_root("v2gRootCA", CPO_IDENTITY, SoftwareSigner.generate(), now=NOW - dt.timedelta(days=1))
    sub1 = root.issue_sub_ca("cpoSubCA1", SoftwareSigner.generate(), now=NOW - dt.timedelta(days=1))
    sub2 = sub1.issue_sub_ca("cpoSubCA2", SoftwareSigner.generate(), now=NOW - dt.timedelta(days=1))
    return root, sub1, sub2


class ExternalSigner:
    """Stands in for an HSM: signs bytes, exposes only its public key."""

    def __init__(self) -> None:
        self.__key = ec.generate_private_key(ec.SECP256R1())
        self.calls = 0

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.__key.public_key()

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self.__key.sign(data, ec.ECDSA(hashes.SHA256()))


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def openssl_verify(
    tmp_path: Path, leaf: x509.Certificate, untrusted: list[x509.Certificate], root: x509.Certificate, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``openssl verify`` with an explicit trust anchor and untrusted intermediates."""
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    args = ["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "root.pem")]
    if untrusted:
        (tmp_path / "untrusted.pem").write_bytes(pem(*untrusted))
        args += ["-untrusted", str(tmp_path / "untrusted.pem")]
    return subprocess.run([*args, *extra, str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=30)
