"""Certificate authorities of the MO (and CPO) hierarchy, and issuance.

Hierarchy (ISO 15118-2): MO root -> MO sub-CA 1 (pathlen 1) -> MO sub-CA 2
(pathlen 0) -> contract leaf (CN = eMAID, DC = MO, OCSP URL in AIA).  An operator
that does not run its own root imports one (or a V2G/MO sub-CA) and chains sub-CA 1
under it: either the external CA's key is reachable through a ``CaSigner`` (HSM),
or we produce a CSR for it and adopt the certificate it sends back.

Why a certificate never outlives its issuer: ISO 15118 EVs validate with the
shell model, so a leaf valid past its sub-CA's ``notAfter`` would be refused by
the car; we clamp instead of issuing something that looks valid but is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from chargeverse.pnc import der
from chargeverse.pnc.emaid import CheckDigitPolicy, Emaid
from chargeverse.pnc.emaid import parse as parse_emaid
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES, CertProfile, Identity
from chargeverse.pnc.signer import CURVE_NAME, CaSigner, SoftwareSigner

_SHA256 = hashes.SHA256()
# Used only to let cryptography's builders produce the to-be-signed bytes for an
# external (HSM) signer; its signature is discarded.
_THROWAWAY_KEY = ec.generate_private_key(ec.SECP256R1())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_p256(public_key: object, what: str) -> ec.EllipticCurvePublicKey:
    """The ISO 15118-2 key rule (ECDSA secp256r1), with a reason per violation."""
    if isinstance(public_key, rsa.RSAPublicKey):
        raise PncRejection(Reason.RSA_KEY, f"{what}: RSA keys are not allowed (ISO 15118-2: ECDSA secp256r1)")
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PncRejection(Reason.UNSUPPORTED_KEY, f"{what}: {type(public_key).__name__} is not an EC key")
    if public_key.curve.name != CURVE_NAME:
        raise PncRejection(Reason.WRONG_CURVE, f"{what}: curve {public_key.curve.name}, need {CURVE_NAME}")
    return public_key


def sign_certificate(builder: x509.CertificateBuilder, signer: CaSigner) -> x509.Certificate:
    """Sign ``builder`` with ``signer`` (software fast path or external signer)."""
    if isinstance(signer, SoftwareSigner):
        return builder.sign(signer.private_key, _SHA256)
    tbs = builder.sign(_THROWAWAY_KEY, _SHA256).tbs_certificate_bytes
    return x509.load_der_x509_certificate(der.signed(tbs, signer.sign(tbs)))


def subject_name(profile: CertProfile, identity: Identity, common_name: str | None = None) -> x509.Name:
    """CN, O, C, DC in the order of the reference PKI's ``[ca_dn]`` sections."""
    cn = common_name or identity.common_names.get(profile.name) or profile.default_common_name
    if not cn:
        raise ValueError(f"profile {profile.name} needs a per-certificate common name")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.organization),
            x509.NameAttribute(NameOID.COUNTRY_NAME, identity.country),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, profile.domain_component),
        ]
    )


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA we can sign with: its certificate, key holder, and the chain above it.

    ``chain`` lists the issuers above ``certificate``, nearest first, ending with
    the root when we know it (an imported root is known; a CSR-only external
    root may be too).
    """

    certificate: x509.Certificate
    signer: CaSigner
    profile: CertProfile
    identity: Identity
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def path_to_root(self) -> list[x509.Certificate]:
        return [self.certificate, *self.chain]

    @property
    def root(self) -> x509.Certificate:
        return self.path_to_root[-1]

    @property
    def key_identifier(self) -> bytes:
        return x509.SubjectKeyIdentifier.from_public_key(self.signer.public_key()).digest

    def issue(
        self,
        profile: CertProfile,
        public_key: ec.EllipticCurvePublicKey,
        *,
        now: dt.datetime,
        common_name: str | None = None,
        validity: dt.timedelta | None = None,
        serial_number: int | None = None,
    ) -> x509.Certificate:
        """Issue a certificate of ``profile`` for ``public_key``."""
        if not self.profile.is_ca:
            raise PncRejection(Reason.PROFILE_VIOLATION, f"{self.profile.name} is not a CA")
        if profile.is_ca and self.profile.path_length is not None:
            below = profile.path_length if profile.path_length is not None else 0
            if self.profile.path_length < 1 or below > self.profile.path_length - 1:
                raise PncRejection(Reason.PROFILE_VIOLATION, f"{self.profile.name} cannot issue a {profile.name}")
        return build_certificate(
            profile,
            self.identity,
            public_key,
            issuer_name=self.certificate.subject,
            issuer_not_after=self.certificate.not_valid_after_utc,
            signer=self.signer,
            now=now,
            common_name=common_name,
            validity=validity,
            serial_number=serial_number,
        )

    def issue_sub_ca(
        self, profile_name: str, signer: CaSigner, *, now: dt.datetime, common_name: str | None = None
    ) -> CertificateAuthority:
        profile = PROFILES[profile_name]
        cert = self.issue(profile, signer.public_key(), now=now, common_name=common_name)
        return CertificateAuthority(cert, signer, profile, self.identity, tuple(self.path_to_root))


def build_certificate(
    profile: CertProfile,
    identity: Identity,
    public_key: ec.EllipticCurvePublicKey,
    *,
    issuer_name: x509.Name | None,
    issuer_not_after: dt.datetime | None,
    signer: CaSigner,
    now: dt.datetime,
    common_name: str | None = None,
    validity: dt.timedelta | None = None,
    serial_number: int | None = None,
) -> x509.Certificate:
    """One certificate per ``profile``; ``issuer_name=None`` means self-signed."""
    _check_p256(public_key, "subject key")
    subject = subject_name(profile, identity, common_name)
    not_after = now + (validity or dt.timedelta(days=profile.validity_days))
    if issuer_not_after is not None:
        not_after = min(not_after, issuer_not_after)
    if not_after <= now:
        raise PncRejection(Reason.EXPIRED, "issuing CA certificate has expired")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(public_key)
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length), critical=True)
        .add_extension(profile.key_usage_extension(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_name is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
    if profile.ocsp_no_check:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    if profile.with_aia:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(identity.ocsp_url)),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(identity.ca_issuers_url)
                    ),
                ]
            ),
            critical=False,
        )
    return sign_certificate(builder, signer)


def create_root(
    profile_name: str, identity: Identity, signer: CaSigner, *, now: dt.datetime, common_name: str | None = None
) -> CertificateAuthority:
    """A self-signed root (MO root, V2G root, or an OEM root in tests)."""
    profile = PROFILES[profile_name]
    cert = build_certificate(
        profile, identity, signer.public_key(), issuer_name=None, issuer_not_after=None, signer=signer, now=now,
        common_name=common_name,
    )
    return CertificateAuthority(cert, signer, profile, identity, ())


def import_ca(
    certificate: x509.Certificate,
    signer: CaSigner,
    identity: Identity,
    *,
    chain: Sequence[x509.Certificate] = (),
    profile_name: str = "moRootCA",
) -> CertificateAuthority:
    """Use an externally created CA (e.g. an imported V2G/MO root held in an HSM).

    The certificate must be a CA for the signer's key; its actual path length
    constraint wins over the profile's so we never issue what it forbids.
    """
    _check_p256(certificate.public_key(), "imported CA")
    if certificate.public_key() != signer.public_key():
        raise PncRejection(Reason.KEY_MISMATCH, "imported CA certificate does not belong to the signer's key")
    bc = _basic_constraints(certificate)
    if bc is None or not bc.ca:
        raise PncRejection(Reason.PROFILE_VIOLATION, "imported certificate is not a CA")
    base = PROFILES[profile_name]
    profile = CertProfile(
        base.name, base.domain_component, base.default_common_name, True, bc.path_length, base.key_usage,
        base.validity_days, base.with_aia, base.extended_key_usage,
    )
    return CertificateAuthority(certificate, signer, profile, identity, tuple(chain))


def build_sub_ca_csr(
    profile_name: str, identity: Identity, signer: SoftwareSigner, *, common_name: str | None = None
) -> x509.CertificateSigningRequest:
    """A CSR for our MO sub-CA 1, to be signed by an external (V2G/MO) root."""
    profile = PROFILES[profile_name]
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_name(profile, identity, common_name))
        .add_extension(x509.BasicConstraints(ca=True, path_length=profile.path_length), critical=True)
        .add_extension(profile.key_usage_extension(), critical=True)
    )
    # A CSR proves possession of the subject key, so it is signed in-process;
    # for an HSM-held sub-CA key, create the CSR with the HSM's own tooling.
    return builder.sign(signer.private_key, _SHA256)


def adopt_issued_sub_ca(
    certificate: x509.Certificate,
    signer: CaSigner,
    identity: Identity,
    issuer_chain: Sequence[x509.Certificate],
    *,
    profile_name: str = "moSubCA1",
    now: dt.datetime,
) -> CertificateAuthority:
    """Accept the sub-CA certificate an external root issued for our CSR.

    Checks what would otherwise only surface when the first car rejects a
    contract: the key is ours, it is a CA with room for sub-CA 2, it is within
    its validity, and it is really signed by the claimed issuer.
    """
    if not issuer_chain:
        raise PncRejection(Reason.UNTRUSTED_CHAIN, "the issuer chain of the adopted sub-CA is empty")
    ca = import_ca(certificate, signer, identity, chain=issuer_chain, profile_name=profile_name)
    if ca.profile.path_length is not None and ca.profile.path_length < 1:
        raise PncRejection(Reason.PROFILE_VIOLATION, "path length 0 leaves no room for MO sub-CA 2")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        reason = Reason.NOT_YET_VALID if now < certificate.not_valid_before_utc else Reason.EXPIRED
        raise PncRejection(reason, "adopted sub-CA certificate is outside its validity period")
    issuer = issuer_chain[0]
    if certificate.issuer != issuer.subject:
        raise PncRejection(Reason.WRONG_ISSUER, "adopted sub-CA was not issued by the given issuer")
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise PncRejection(Reason.BAD_SIGNATURE, "adopted sub-CA signature does not verify") from exc
    return ca


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True, slots=True)
class MoHierarchy:
    """The three CAs of the mobility operator chain; sub_ca2 issues contracts."""

    root: CertificateAuthority | None  # None when the root is external (CSR-only)
    sub_ca1: CertificateAuthority
    sub_ca2: CertificateAuthority

    @property
    def root_certificate(self) -> x509.Certificate:
        return self.sub_ca1.root


def build_mo_hierarchy(
    identity: Identity,
    *,
    now: dt.datetime,
    root_signer: CaSigner,
    sub_ca1_signer: CaSigner,
    sub_ca2_signer: CaSigner,
) -> MoHierarchy:
    """Our own MO root -> sub-CA 1 -> sub-CA 2."""
    root = create_root("moRootCA", identity, root_signer, now=now)
    sub1 = root.issue_sub_ca("moSubCA1", sub_ca1_signer, now=now)
    sub2 = sub1.issue_sub_ca("moSubCA2", sub_ca2_signer, now=now)
    return MoHierarchy(root, sub1, sub2)


def build_mo_hierarchy_under(
    external: CertificateAuthority, *, now: dt.datetime, sub_ca1_signer: CaSigner, sub_ca2_signer: CaSigner
) -> MoHierarchy:
    """MO sub-CA 1 and 2 chained under an imported root whose key we can reach."""
    sub1 = external.issue_sub_ca("moSubCA1", sub_ca1_signer, now=now)
    sub2 = sub1.issue_sub_ca("moSubCA2", sub_ca2_signer, now=now)
    return MoHierarchy(external, sub1, sub2)


def issue_contract_certificate(
    sub_ca2: CertificateAuthority,
    emaid: str | Emaid,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    """A contract leaf: CN = normalised eMAID, DC = MO, OCSP URL in AIA.

    The eMAID is validated strictly here: whatever leniency the intake allows,
    we never sign a certificate carrying a wrong check digit.
    """
    parsed = emaid if isinstance(emaid, Emaid) else parse_emaid(emaid, CheckDigitPolicy.REJECT)
    if not parsed.check_digit_ok:
        raise PncRejection(Reason.BAD_CHECK_DIGIT, "refusing to certify an eMAID with a wrong check digit")
    if sub_ca2.profile.path_length != 0:
        raise PncRejection(Reason.PROFILE_VIOLATION, "contract certificates are issued by MO sub-CA 2 only")
    return sub_ca2.issue(PROFILES["contractLeaf"], public_key, now=now, common_name=parsed.normalised, validity=validity)


def check_ca_profile(certificate: x509.Certificate, profile_name: str) -> None:
    """The ISO 15118-2 shape of a CA certificate someone else signed for us: P-256 key, ECDSA-SHA256, a critical
    CA basicConstraints, a critical keyUsage with every usage of the profile, and the profile's DC tag."""
    profile = PROFILES[profile_name]
    _check_p256(certificate.public_key(), f"{profile_name} certificate")
    if not isinstance(certificate.signature_hash_algorithm, hashes.SHA256):
        raise PncRejection(Reason.PROFILE_VIOLATION, f"{profile_name}: signed with "
                           f"{getattr(certificate.signature_hash_algorithm, 'name', 'no hash')}, need SHA-256")
    try:
        bc = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        ku = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound as exc:
        raise PncRejection(Reason.PROFILE_VIOLATION, f"{profile_name}: {exc}") from exc
    if not (bc.critical and bc.value.ca):
        raise PncRejection(Reason.PROFILE_VIOLATION, f"{profile_name}: not a CA (critical basicConstraints)")
    from chargeverse.pnc.profiles import KEY_USAGE_FIELDS

    missing = sorted(u for u in profile.key_usage if not getattr(ku.value, KEY_USAGE_FIELDS[u]))
    if not ku.critical or missing:
        raise PncRejection(Reason.PROFILE_VIOLATION, f"{profile_name}: keyUsage must be critical with "
                           f"{sorted(profile.key_usage)}; missing {missing}")
    dcs = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
    if dcs != [profile.domain_component]:
        raise PncRejection(Reason.PROFILE_VIOLATION, f"{profile_name}: subject DC must be "
                           f"{profile.domain_component!r}, not {dcs}")


def check_external_root(root: x509.Certificate, *, now: dt.datetime) -> None:
    """A V2G or MO root an operator hands us: self-signed P-256 CA, in its validity period."""
    _check_p256(root.public_key(), "external root")
    bc = _basic_constraints(root)
    if bc is None or not bc.ca or root.issuer != root.subject:
        raise PncRejection(Reason.PROFILE_VIOLATION, "the external root must be a self-signed CA certificate")
    try:
        root.verify_directly_issued_by(root)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise PncRejection(Reason.BAD_SIGNATURE, "the external root's self-signature does not verify") from exc
    if not root.not_valid_before_utc <= now < root.not_valid_after_utc:
        reason = Reason.NOT_YET_VALID if now < root.not_valid_before_utc else Reason.EXPIRED
        raise PncRejection(reason, "the external root is outside its validity period")


PROBE_EMAID = "ZZ000PROBE0000"  # never issued to anyone: the trial contract of `chain_under_external_root`


def chain_under_external_root(
    certificate: x509.Certificate,
    signer: CaSigner,
    identity: Identity,
    root: x509.Certificate,
    *,
    sub_ca2_signer: CaSigner,
    now: dt.datetime,
) -> MoHierarchy:
    """Our MO sub-CA 1 as an external root signed it (from our CSR), and a new MO sub-CA 2 under it.

    Everything a car would otherwise find out is checked first: the root is a valid self-signed CA, the
    certificate is for our CSR's key (``signer``), has the MO sub-CA 1 profile, was signed by that root and
    leaves room for sub-CA 2; finally a trial contract (thrown away) must verify up to the root, with our own
    checks and ``cryptography``'s RFC 5280 verifier.
    """
    from chargeverse.pnc.chain import verify_chain  # chain imports this module

    check_external_root(root, now=now)
    check_ca_profile(certificate, "moSubCA1")
    sub1 = adopt_issued_sub_ca(certificate, signer, identity, [root], profile_name="moSubCA1", now=now)
    sub2 = sub1.issue_sub_ca("moSubCA2", sub_ca2_signer, now=now)
    probe = issue_contract_certificate(sub2, parse_emaid(PROBE_EMAID, CheckDigitPolicy.REJECT),
                                       ec.generate_private_key(ec.SECP256R1()).public_key(), now=now)
    verify_chain(probe, [sub2.certificate, sub1.certificate], [root], now=now)
    return MoHierarchy(None, sub1, sub2)
