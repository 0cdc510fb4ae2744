"""CA material of the MO and CPO hierarchies on disk, private keys encrypted at rest.

Why files and not the log: private keys never go on the log (issue 6), and an HSM would hold them anyway; the
``CaSigner`` protocol (chargeverse/pnc/signer.py) is where an HSM plugs in.  What is stored, in ``pnc_ca_dir``:
``<name>.crt`` (PEM, public) and ``<name>.key`` (PKCS#8 PEM, PBES2/AES-256-CBC, encrypted with the key from
settings ``pnc_ca_key_encryption_key``) for ``mo_root``, ``mo_sub1``, ``mo_sub2`` (issues contracts) and
``v2g_root``, ``cpo_sub1``, ``cpo_sub2`` (signs station CSRs).

Invariants:
- the hierarchy is created once: the first process takes an exclusive lock file, later ones wait for the
  ``complete`` marker and load; a half-written directory is never used;
- a wrong key-encryption key is a clear error at load, never a silently new CA;
- an operator can instead place ``mo_root.crt`` of an external root (with its key or not) before ``cv pnc init``:
  see README "Plug & Charge" (only the own-root path is automated here).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chargeverse.pnc.ca import CertificateAuthority, MoHierarchy, create_root, import_ca
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES, Identity
from chargeverse.pnc.signer import SoftwareSigner
from chargeverse.settings import Settings

MO = ("mo_root", "mo_sub1", "mo_sub2")
CPO = ("v2g_root", "cpo_sub1", "cpo_sub2")
_PROFILE = {"mo_root": "moRootCA", "mo_sub1": "moSubCA1", "mo_sub2": "moSubCA2",
            "v2g_root": "v2gRootCA", "cpo_sub1": "cpoSubCA1", "cpo_sub2": "cpoSubCA2"}


@dataclass(frozen=True)
class CaMaterial:
    mo: MoHierarchy
    cpo_sub1: CertificateAuthority
    cpo_sub2: CertificateAuthority
    identity: Identity

    @property
    def mo_root(self) -> x509.Certificate:
        return self.mo.root_certificate

    @property
    def v2g_root(self) -> x509.Certificate:
        return self.cpo_sub2.root

    def ocsp_cas(self) -> list[CertificateAuthority]:
        """The CAs our OCSP responder is authoritative for (their issued certificates)."""
        out = [self.mo.sub_ca2, self.mo.sub_ca1]
        if self.mo.root is not None:
            out.append(self.mo.root)
        return out


def ca_dir(s: Settings) -> Path:
    return Path(s.pnc_ca_dir) if s.pnc_ca_dir else Path(s.stack_dir) / "pnc"


def key_encryption_key(s: Settings) -> bytes:
    explicit = s.pnc_ca_key_encryption_key.get_secret_value()
    if explicit:
        return explicit.encode()
    jwt = s.jwt_secret.get_secret_value()
    if not jwt:
        raise PncRejection(Reason.NOT_ENABLED, "set CV_PNC_CA_KEY_ENCRYPTION_KEY: CA keys are never stored in clear")
    return hashlib.sha256(b"chargeverse pnc ca kek\x00" + jwt.encode()).hexdigest().encode()


def identity(s: Settings) -> Identity:
    base = f"http://{s.api_host}:{s.api_port}"
    return Identity(organization=s.pnc_organization, country=s.pnc_country,
                    ocsp_url=s.pnc_ocsp_url or f"{base}/pnc/ocsp", ca_issuers_url=f"{base}/pnc/ca-issuers.p7c")


def _write(d: Path, name: str, ca: CertificateAuthority, kek: bytes) -> None:
    assert isinstance(ca.signer, SoftwareSigner)
    (d / f"{name}.key").write_bytes(ca.signer.to_encrypted_pem(kek))
    os.chmod(d / f"{name}.key", 0o600)
    (d / f"{name}.crt").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))


def create(d: Path, ident: Identity, kek: bytes, now: dt.datetime) -> None:
    """A fresh own MO root -> sub-CA 1 -> sub-CA 2 and V2G root -> CPO sub-CA 1 -> 2."""
    mo_root = create_root("moRootCA", ident, SoftwareSigner.generate(), now=now)
    mo1 = mo_root.issue_sub_ca("moSubCA1", SoftwareSigner.generate(), now=now)
    mo2 = mo1.issue_sub_ca("moSubCA2", SoftwareSigner.generate(), now=now)
    v2g = create_root("v2gRootCA", ident, SoftwareSigner.generate(), now=now)
    c1 = v2g.issue_sub_ca("cpoSubCA1", SoftwareSigner.generate(), now=now)
    c2 = c1.issue_sub_ca("cpoSubCA2", SoftwareSigner.generate(), now=now)
    for name, ca in zip(MO + CPO, (mo_root, mo1, mo2, v2g, c1, c2)):
        _write(d, name, ca, kek)


def _load_chain(d: Path, names: tuple[str, ...], ident: Identity, kek: bytes) -> list[CertificateAuthority]:
    out: list[CertificateAuthority] = []
    for name in names:  # root first
        cert = x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())
        signer = SoftwareSigner.from_encrypted_pem((d / f"{name}.key").read_bytes(), kek)
        above = tuple(reversed([c.certificate for c in out]))
        ca = import_ca(cert, signer, ident, chain=above, profile_name=_PROFILE[name])
        out.append(ca)
    return out


def load_or_create(s: Settings, *, now: dt.datetime | None = None, wait_s: float = 30.0) -> CaMaterial:
    d = ca_dir(s)
    d.mkdir(parents=True, exist_ok=True)
    kek = key_encryption_key(s)
    ident = identity(s)
    done, lock = d / "complete", d / ".lock"
    if not done.exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            deadline = time.monotonic() + wait_s
            while not done.exists():
                if time.monotonic() > deadline:
                    raise PncRejection(Reason.NOT_ENABLED, f"CA material in {d} is being created by another process "
                                       "that did not finish (remove .lock if it died)")
                time.sleep(0.05)
        else:
            try:
                create(d, ident, kek, now or dt.datetime.now(dt.UTC))
                done.write_text("created\n")
            finally:
                os.close(fd)
                lock.unlink(missing_ok=True)
    mo_root, mo1, mo2 = _load_chain(d, MO, ident, kek)
    _, c1, c2 = _load_chain(d, CPO, ident, kek)
    return CaMaterial(MoHierarchy(mo_root, mo1, mo2), c1, c2, ident)


def profile_of(name: str) -> str:
    return PROFILES[_PROFILE[name]].name
