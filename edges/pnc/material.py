"""CA material of the MO and CPO hierarchies on disk, private keys encrypted at rest.

Why files and not the log: private keys never go on the log (issue 6), and an HSM would hold them anyway; the
``CaSigner`` protocol (chargeverse/pnc/signer.py) is where an HSM plugs in.  What is stored, in ``pnc_ca_dir``:
``<name>.crt`` (PEM, public) and ``<name>.key`` (PKCS#8 PEM, PBES2/AES-256-CBC, encrypted with the key from
settings ``pnc_ca_key_encryption_key``) for ``mo_root``, ``mo_sub1``, ``mo_sub2`` (issues contracts) and
``v2g_root``, ``cpo_sub1``, ``cpo_sub2`` (signs station CSRs) and ``cps_sub1``, ``cps_sub2``, ``cps_leaf`` (the
certificate provisioning service under the V2G root: the leaf signs CertificateInstallationRes/UpdateRes).

Invariants:
- the hierarchy is created once: the first process takes an exclusive lock file, later ones wait for the
  ``complete`` marker and load; a half-written directory is never used;
- a wrong key-encryption key is a clear error at load, never a silently new CA;
- chaining under an external V2G/MO root (`cv pnc csr`, then `cv pnc import-subca`): the CSR's key waits,
  encrypted, in ``mo_sub1.pending.key``; the issued certificate is checked completely (key, profile, signature,
  a trial contract verifying up to the root) before anything on disk changes; the switch then moves the old MO
  files to ``retired/<time>/`` and the new ones (``mo_root.crt`` without a key: the root is not ours) into place,
  file by file from a complete staging directory named in a ``switching`` marker, so a crash half-way is
  finished by the next load instead of leaving a mixed chain; the pending key is used up by the switch;
- the CPS chain is checked at every load (chargeverse/pnc/cps.py: verifies to its root, key matches, nothing
  expires within 30 days); when it is missing (a directory made before it existed), broken (a crash half-way
  through writing it) or due for renewal, a new one is made under our V2G root, under its own lock file
  ``.cps.lock``, files moved into place one by one from a staging directory -- a half-replaced chain fails the
  check and is simply made again.  An imported CPS chain (``cv pnc import-cps``, marked by ``cps_root.crt``; its
  sub-CA keys are someone else's) is never replaced by us: when it fails the check the responses go out
  unsigned and the log says so at every load;
- retired MO CAs still answer OCSP and renewals for the contracts they issued (they stay valid under the old
  root); only the current sub-CA 2 issues.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chargeverse.pnc import cps as pnc_cps
from chargeverse.pnc.ca import (CertificateAuthority, MoHierarchy, build_sub_ca_csr, chain_under_external_root,
                                create_root, import_ca)
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES, Identity
from chargeverse.pnc.signer import SoftwareSigner
from chargeverse.settings import Settings

MO = ("mo_root", "mo_sub1", "mo_sub2")
CPO = ("v2g_root", "cpo_sub1", "cpo_sub2")
CPS = ("cps_sub1", "cps_sub2", "cps_leaf")
CPS_ROOT = "cps_root.crt"  # present only for an imported CPS chain (its V2G root, not necessarily ours)
_PROFILE = {"mo_root": "moRootCA", "mo_sub1": "moSubCA1", "mo_sub2": "moSubCA2",
            "v2g_root": "v2gRootCA", "cpo_sub1": "cpoSubCA1", "cpo_sub2": "cpoSubCA2",
            "cps_sub1": "cpsSubCA1", "cps_sub2": "cpsSubCA2"}
log = logging.getLogger("edges.pnc.material")


@dataclass(frozen=True)
class CaMaterial:
    mo: MoHierarchy
    cpo_sub1: CertificateAuthority
    cpo_sub2: CertificateAuthority
    identity: Identity
    retired: tuple[MoHierarchy, ...] = ()  # earlier MO chains (before an import-subca), oldest first
    cps: pnc_cps.SigningLeaf | None = None  # signs Get15118EVCertificate responses (chargeverse/pnc/exi.py)

    @property
    def mo_root(self) -> x509.Certificate:
        return self.mo.root_certificate

    @property
    def mo_roots(self) -> list[x509.Certificate]:
        """The current MO root first, then the roots of retired chains (their contracts are still ours)."""
        out = [self.mo_root]
        for h in reversed(self.retired):
            if h.root_certificate not in out:
                out.append(h.root_certificate)
        return out

    @property
    def v2g_root(self) -> x509.Certificate:
        return self.cpo_sub2.root

    def ocsp_cas(self) -> list[CertificateAuthority]:
        """The CAs our OCSP responder is authoritative for (their issued certificates)."""
        out: list[CertificateAuthority] = []
        for h in (self.mo, *reversed(self.retired)):
            out += [h.sub_ca2, h.sub_ca1, *([h.root] if h.root is not None else [])]
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


def _write(d: Path, name: str, ca: CertificateAuthority | pnc_cps.SigningLeaf, kek: bytes) -> None:
    assert isinstance(ca.signer, SoftwareSigner)
    (d / f"{name}.key").write_bytes(ca.signer.to_encrypted_pem(kek))
    os.chmod(d / f"{name}.key", 0o600)
    (d / f"{name}.crt").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))


def create(d: Path, ident: Identity, kek: bytes, now: dt.datetime) -> None:
    """A fresh own MO root -> sub-CA 1 -> sub-CA 2, V2G root -> CPO sub-CA 1 -> 2 and, under the same V2G root,
    ProvSubCA1 -> ProvSubCA2 -> CPS leaf."""
    mo_root = create_root("moRootCA", ident, SoftwareSigner.generate(), now=now)
    mo1 = mo_root.issue_sub_ca("moSubCA1", SoftwareSigner.generate(), now=now)
    mo2 = mo1.issue_sub_ca("moSubCA2", SoftwareSigner.generate(), now=now)
    v2g = create_root("v2gRootCA", ident, SoftwareSigner.generate(), now=now)
    c1 = v2g.issue_sub_ca("cpoSubCA1", SoftwareSigner.generate(), now=now)
    c2 = c1.issue_sub_ca("cpoSubCA2", SoftwareSigner.generate(), now=now)
    for name, ca in zip(MO + CPO, (mo_root, mo1, mo2, v2g, c1, c2)):
        _write(d, name, ca, kek)
    _write_cps(d, _new_cps(v2g, now), kek)


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
    _finish_switch(d)
    v2g, c1, c2 = _load_chain(d, CPO, ident, kek)
    retired = tuple(_load_mo(r, ident, kek) for r in sorted((d / "retired").glob("*")) if r.is_dir())
    cps = _ensure_cps(d, v2g, kek, now or dt.datetime.now(dt.UTC), wait_s)
    return CaMaterial(_load_mo(d, ident, kek), c1, c2, ident, retired, cps)


# ---- the certificate provisioning service (CPS) chain --------------------------------------------------------------
def _new_cps(v2g: CertificateAuthority, now: dt.datetime) -> pnc_cps.CpsChain:
    return pnc_cps.issue_chain(v2g, sub_ca1_signer=SoftwareSigner.generate(), sub_ca2_signer=SoftwareSigner.generate(),
                               leaf_signer=SoftwareSigner.generate(), now=now)


def _write_cps(d: Path, chain: pnc_cps.CpsChain, kek: bytes) -> None:
    """Stage all three, then move them into place one by one (a mix after a crash fails the load check)."""
    staging = d / ".cps-new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, ca in zip(CPS, (chain.sub_ca1, chain.sub_ca2, chain.leaf)):
        _write(staging, name, ca, kek)
    for name in CPS:
        for ext in ("key", "crt"):
            os.replace(staging / f"{name}.{ext}", d / f"{name}.{ext}")
    (d / CPS_ROOT).unlink(missing_ok=True)  # ours now: under our own V2G root
    staging.rmdir()


def _load_cps(d: Path, v2g_root: x509.Certificate, kek: bytes) -> pnc_cps.SigningLeaf:
    """The CPS leaf with its chain up to the root (ours, or cps_root.crt for an imported chain)."""
    try:
        imported = (d / CPS_ROOT).exists()
        root = x509.load_pem_x509_certificate((d / CPS_ROOT).read_bytes()) if imported else v2g_root
        subs = [x509.load_pem_x509_certificate((d / f"{n}.crt").read_bytes()) for n in ("cps_sub1", "cps_sub2")
                if n == "cps_sub2" or not imported or (d / f"{n}.crt").exists()][::-1]  # an import may have one
        leaf = x509.load_pem_x509_certificate((d / "cps_leaf.crt").read_bytes())
        key = (d / "cps_leaf.key").read_bytes()
    except FileNotFoundError as exc:
        raise PncRejection(Reason.NOT_ENABLED, f"no CPS chain: {Path(exc.filename).name} missing") from exc
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, f"CPS chain in {d} unreadable: {exc}") from exc
    return pnc_cps.SigningLeaf(leaf, SoftwareSigner.from_encrypted_pem(key, kek), (*subs, root))


def _ensure_cps(d: Path, v2g: CertificateAuthority, kek: bytes, now: dt.datetime,
                wait_s: float) -> pnc_cps.SigningLeaf | None:
    """The CPS signer, made (or renewed) under our V2G root when missing, broken or close to expiry."""
    imported = (d / CPS_ROOT).exists()
    try:
        leaf = _load_cps(d, v2g.certificate, kek)
        pnc_cps.check(leaf, now=now, margin=dt.timedelta(0) if imported else pnc_cps.RENEW_BEFORE)
        if imported and leaf.not_after - now < pnc_cps.RENEW_BEFORE:
            log.warning("the imported CPS chain expires %s: import a new one (cv pnc import-cps)",
                        leaf.not_after.isoformat())
        return leaf
    except PncRejection as why:
        if imported:
            log.error("the imported CPS chain in %s is unusable (%s): Get15118EVCertificate responses go out "
                      "UNSIGNED until `cv pnc import-cps` gives a good one", d, why)
            return None
        if why.reason is Reason.KEY_DECRYPTION_FAILED:
            raise
        log.warning("CPS chain in %s: %s; making a new one under our V2G root", d, why)
    lock = d / ".cps.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process is making it: wait, then use its result
        deadline = time.monotonic() + wait_s
        while lock.exists():
            if time.monotonic() > deadline:
                raise PncRejection(Reason.NOT_ENABLED, f"the CPS chain in {d} is being made by another process "
                                   "that did not finish (remove .cps.lock if it died)") from None
            time.sleep(0.05)
        leaf = _load_cps(d, v2g.certificate, kek)
        pnc_cps.check(leaf, now=now)
        return leaf
    try:
        try:  # the lock holder before us may have just made one
            leaf = _load_cps(d, v2g.certificate, kek)
            pnc_cps.check(leaf, now=now, margin=pnc_cps.RENEW_BEFORE)
            return leaf
        except PncRejection:
            pass
        chain = _new_cps(v2g, now)
        _write_cps(d, chain, kek)
        log.info("new CPS chain in %s: leaf serial %x valid until %s", d, chain.leaf.certificate.serial_number,
                 chain.leaf.not_after.isoformat())
        return chain.leaf
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)


def _load_mo(d: Path, ident: Identity, kek: bytes) -> MoHierarchy:
    """The MO chain in `d`; the root is external (certificate only, no signer) when there is no mo_root.key."""
    root_cert = x509.load_pem_x509_certificate((d / "mo_root.crt").read_bytes())
    root = None
    if (d / "mo_root.key").exists():
        signer = SoftwareSigner.from_encrypted_pem((d / "mo_root.key").read_bytes(), kek)
        root = import_ca(root_cert, signer, ident, profile_name=_PROFILE["mo_root"])
    above: list[x509.Certificate] = [root_cert]
    cas: list[CertificateAuthority] = []
    for name in ("mo_sub1", "mo_sub2"):
        cert = x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())
        signer = SoftwareSigner.from_encrypted_pem((d / f"{name}.key").read_bytes(), kek)
        cas.append(import_ca(cert, signer, ident, chain=tuple(above), profile_name=_PROFILE[name]))
        above.insert(0, cert)
    return MoHierarchy(root, cas[0], cas[1])


# ---- chaining under an external V2G/MO root ----------------------------------------------------------------------
PENDING_KEY, PENDING_CSR, SWITCHING = "mo_sub1.pending.key", "mo_sub1.pending.csr", "switching"
_MO_FILES = tuple(f"{n}.{ext}" for n in MO for ext in ("crt", "key"))


def sub_ca_csr(s: Settings, *, new_key: bool = False) -> bytes:
    """PEM CSR for our MO sub-CA 1, for an external root to sign.  The key is made once and kept (encrypted)
    until `import_sub_ca` adopts the certificate, so running this twice gives a CSR for the same key unless
    `new_key`."""
    d = ca_dir(s)
    d.mkdir(parents=True, exist_ok=True)
    kek = key_encryption_key(s)
    _finish_switch(d)  # a pending key an interrupted switch already used is not handed out again
    if (d / PENDING_KEY).exists() and not new_key:
        signer = SoftwareSigner.from_encrypted_pem((d / PENDING_KEY).read_bytes(), kek)
    else:
        signer = SoftwareSigner.generate()
        tmp = d / f".{PENDING_KEY}.tmp"
        tmp.write_bytes(signer.to_encrypted_pem(kek))
        os.chmod(tmp, 0o600)
        os.replace(tmp, d / PENDING_KEY)
    pem = build_sub_ca_csr("moSubCA1", identity(s), signer).public_bytes(serialization.Encoding.PEM)
    (d / PENDING_CSR).write_bytes(pem)
    return pem


def _pem_certificate(blob: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(blob)
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, f"{what} is not a PEM certificate") from exc


def import_sub_ca(s: Settings, certificate_pem: bytes, root_pem: bytes, *,
                  now: dt.datetime | None = None) -> dict[str, str]:
    """Adopt the MO sub-CA 1 certificate an external root issued for our pending CSR, make a new MO sub-CA 2
    under it and switch the issuing chain to it.  Nothing changes on disk unless every check passes."""
    now = now or dt.datetime.now(dt.UTC)
    d = ca_dir(s)
    kek = key_encryption_key(s)
    _finish_switch(d)  # an interrupted earlier import is completed (and its key used up) first
    if not (d / PENDING_KEY).exists():
        raise PncRejection(Reason.MALFORMED_REQUEST, f"no pending sub-CA key in {d}: run `cv pnc csr` first")
    signer = SoftwareSigner.from_encrypted_pem((d / PENDING_KEY).read_bytes(), kek)
    cert = _pem_certificate(certificate_pem, "the issued sub-CA certificate")
    root = _pem_certificate(root_pem, "the external root")
    ident = identity(s)
    h = chain_under_external_root(cert, signer, ident, root, sub_ca2_signer=SoftwareSigner.generate(), now=now)
    load_or_create(s, now=now)  # the CPO side and a complete directory exist before the MO side is switched
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    staging = d / f".import-{stamp}"
    staging.mkdir()
    (staging / "mo_root.crt").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    _write(staging, "mo_sub1", h.sub_ca1, kek)
    _write(staging, "mo_sub2", h.sub_ca2, kek)
    tmp = d / f".{SWITCHING}.tmp"
    tmp.write_text(stamp)
    os.replace(tmp, d / SWITCHING)  # from here on the switch completes, now or at the next load
    _finish_switch(d)
    return {"mo_root": root.subject.rfc4514_string(), "mo_sub1": cert.subject.rfc4514_string(),
            "mo_sub1_serial": format(cert.serial_number, "x"),
            "mo_sub2": h.sub_ca2.certificate.subject.rfc4514_string(),
            "mo_sub2_not_after": h.sub_ca2.certificate.not_valid_after_utc.isoformat(),
            "retired": str(d / "retired" / stamp)}


def _finish_switch(d: Path) -> None:
    """Complete a started switch (idempotent, file by file): every old MO file to retired/<stamp>/, every staged
    file into place; an old mo_root.key that has no successor is retired too."""
    marker = d / SWITCHING
    if not marker.exists():
        return
    stamp = marker.read_text().strip()
    staging, retired = d / f".import-{stamp}", d / "retired" / stamp
    retired.mkdir(parents=True, exist_ok=True)
    for name in _MO_FILES:
        new, cur = staging / name, d / name
        if new.exists():
            if cur.exists():
                os.replace(cur, retired / name)
            os.replace(new, cur)
        elif name == "mo_root.key" and cur.exists():
            os.replace(cur, retired / name)
    if staging.exists():
        staging.rmdir()
    (d / PENDING_KEY).unlink(missing_ok=True)  # used up: it is mo_sub1.key now
    (d / PENDING_CSR).unlink(missing_ok=True)
    marker.unlink()


def profile_of(name: str) -> str:
    return PROFILES[_PROFILE[name]].name


def import_cps(s: Settings, chain_pem: bytes, key_pem: bytes, *, key_password: bytes | None = None,
               now: dt.datetime | None = None) -> dict[str, str]:
    """Use a CPS leaf issued under someone else's V2G root (Hubject & co.): ``chain_pem`` holds the leaf, its
    sub-CAs and the V2G root (nearest first; the root may be left out when it is our own V2G root), ``key_pem``
    the leaf's private key (PKCS#8 or SEC1 PEM, ``key_password`` if encrypted).  Everything is checked before
    anything on disk changes; the key is stored encrypted like every other; the CPS files before move to
    ``retired-cps/<time>/``.  From then on we never replace the chain ourselves (we hold no sub-CA key)."""
    now = now or dt.datetime.now(dt.UTC)
    d = ca_dir(s)
    kek = key_encryption_key(s)
    m = load_or_create(s, now=now)  # a complete directory first
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, "the CPS chain file holds no PEM certificates") from exc
    if certs[-1].issuer != certs[-1].subject:
        if certs[-1].issuer != m.v2g_root.subject:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, "the CPS chain file must end with its V2G root "
                               f"({certs[-1].issuer.rfc4514_string()})")
        certs.append(m.v2g_root)
    if not 3 <= len(certs) <= 4:
        raise PncRejection(Reason.PROFILE_VIOLATION, "a CPS chain is the leaf, one or two sub-CAs and the V2G root")
    try:
        key = serialization.load_pem_private_key(key_pem, password=key_password)
    except (ValueError, TypeError) as exc:
        raise PncRejection(Reason.KEY_DECRYPTION_FAILED, "the CPS key file is not a readable PEM private key "
                           "(wrong or missing password?)") from exc
    signer = SoftwareSigner(key)  # type: ignore[arg-type]  # refuses anything but P-256 with a clear reason
    leaf = pnc_cps.SigningLeaf(certs[0], signer, tuple(certs[1:]))
    pnc_cps.check(leaf, now=now)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    staging = d / f".cps-import-{stamp}"
    staging.mkdir()
    _write(staging, "cps_leaf", leaf, kek)
    subs = certs[1:-1]
    for name, cert in zip(("cps_sub2", "cps_sub1"), subs):
        (staging / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (staging / CPS_ROOT).write_bytes(certs[-1].public_bytes(serialization.Encoding.PEM))
    retired = d / "retired-cps" / stamp  # not retired/: every directory there is an MO chain
    retired.mkdir(parents=True)
    os.replace(staging / CPS_ROOT, d / CPS_ROOT)  # first: from here on the chain is never replaced by our own
    for name in CPS:
        for ext in ("key", "crt"):
            if (d / f"{name}.{ext}").exists():
                os.replace(d / f"{name}.{ext}", retired / f"{name}.{ext}")
            if (staging / f"{name}.{ext}").exists():
                os.replace(staging / f"{name}.{ext}", d / f"{name}.{ext}")
    staging.rmdir()
    return {"cps_leaf": certs[0].subject.rfc4514_string(), "serial": format(certs[0].serial_number, "x"),
            "not_after": leaf.not_after.isoformat(), "v2g_root": certs[-1].subject.rfc4514_string(),
            "retired": str(retired)}
