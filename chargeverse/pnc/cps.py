"""The certificate provisioning service (CPS) chain: who signs CertificateInstallationRes / CertificateUpdateRes.

Why: ISO 15118-2 makes the car check the header signature of these responses with the leaf of
SAProvisioningCertificateChain, validated up to a V2G root it trusts (V2G root -> ProvSubCA1 -> ProvSubCA2 ->
CPS leaf, profiles cpsSubCA1 / cpsSubCA2 / cpsLeaf).  Without a CPS key we could only answer unsigned, which a
strict car refuses.

Pure: no files, no settings (edges/pnc/material.py stores and loads; chargeverse/pnc/exi.py signs).

Invariants:
- the CPS leaf signs only through ``CaSigner`` (an HSM fits);
- a chain is used only if it verifies up to its V2G root now, its leaf is a digitalSignature end-entity
  certificate for the signer's key, and nothing in it expires within ``margin``; otherwise ``check`` says why;
- the leaf is short-lived (90 days in the reference PKI), so our own chain is renewed well before it expires.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from chargeverse.pnc.ca import CertificateAuthority
from chargeverse.pnc.chain import verify_chain
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES
from chargeverse.pnc.signer import CaSigner

RENEW_BEFORE = dt.timedelta(days=30)  # a third of the CPS leaf's 90 days


@dataclass(frozen=True, slots=True)
class SigningLeaf:
    """An end-entity certificate we sign with (the CPS leaf) and the certificates above it, nearest first,
    ending with the root.  Shaped like ``CertificateAuthority`` where exi.sa_from_material looks."""

    certificate: x509.Certificate
    signer: CaSigner
    chain: tuple[x509.Certificate, ...]

    @property
    def path_to_root(self) -> list[x509.Certificate]:
        return [self.certificate, *self.chain]

    @property
    def not_after(self) -> dt.datetime:
        return min(c.not_valid_after_utc for c in self.path_to_root)


@dataclass(frozen=True, slots=True)
class CpsChain:
    """Our own CPS chain: the sub-CAs with their keys (so the leaf can be renewed) and the leaf."""

    sub_ca1: CertificateAuthority
    sub_ca2: CertificateAuthority
    leaf: SigningLeaf


def issue_chain(v2g_root: CertificateAuthority, *, sub_ca1_signer: CaSigner, sub_ca2_signer: CaSigner,
                leaf_signer: CaSigner, now: dt.datetime) -> CpsChain:
    """ProvSubCA1 -> ProvSubCA2 -> CPS leaf under a V2G root whose key we hold."""
    sub1 = v2g_root.issue_sub_ca("cpsSubCA1", sub_ca1_signer, now=now)
    sub2 = sub1.issue_sub_ca("cpsSubCA2", sub_ca2_signer, now=now)
    return CpsChain(sub1, sub2, issue_leaf(sub2, leaf_signer, now=now))


def issue_leaf(sub_ca2: CertificateAuthority, signer: CaSigner, *, now: dt.datetime) -> SigningLeaf:
    cert = sub_ca2.issue(PROFILES["cpsLeaf"], signer.public_key(), now=now)
    return SigningLeaf(cert, signer, tuple(sub_ca2.path_to_root))


def check(leaf: SigningLeaf, *, now: dt.datetime, margin: dt.timedelta = dt.timedelta(0),
          trusted_roots: Sequence[x509.Certificate] = ()) -> None:
    """Refuse a CPS chain a car would refuse (or soon will): see the module invariants.  The chain's own root
    is the trust anchor unless ``trusted_roots`` are given."""
    cert = leaf.certificate
    if cert.public_key() != leaf.signer.public_key():
        raise PncRejection(Reason.KEY_MISMATCH, "the CPS leaf certificate is not for the CPS signing key")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise PncRejection(Reason.PROFILE_VIOLATION, "the CPS leaf has no keyUsage") from exc
    if not ku.digital_signature:
        raise PncRejection(Reason.PROFILE_VIOLATION, "the CPS leaf lacks digitalSignature")
    if not leaf.chain:
        raise PncRejection(Reason.UNTRUSTED_CHAIN, "the CPS leaf comes without its sub-CAs and root")
    top = leaf.chain[-1]
    roots = list(trusted_roots) or ([top] if top.issuer == top.subject else [])
    intermediates = [c for c in leaf.chain if c not in roots]
    verify_chain(cert, intermediates, roots, now=now)
    if len(intermediates) + 1 > 3:  # leaf + ProvSubCA2 + ProvSubCA1: SubCertificates holds at most these
        raise PncRejection(Reason.PROFILE_VIOLATION, "a CPS chain has at most two sub-CAs below the V2G root")
    if leaf.not_after - now < margin:
        raise PncRejection(Reason.EXPIRED, f"the CPS chain expires {leaf.not_after.isoformat()}, "
                           f"within {margin.days} days")
