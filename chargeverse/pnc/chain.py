"""Certificate chain verification with a typed reason for every refusal.

Two layers, on purpose:

1. explicit ISO 15118-2 checks in chain order (key type and curve, SHA-256,
   validity, issuer names, CA flags and path length).  They exist to give the EV
   a *specific* answer (``FAILED_CertificateExpired`` vs ``FAILED_CertChainError``)
   and the event log a precise reason;
2. ``cryptography.x509.verification`` (RFC 5280 path building, signatures,
   constraints) is the authority on whether the chain holds.  Signatures are
   verified once, by the library, on the happy path (it is the dominant cost of
   a contract installation); only when it refuses do we re-check each signature
   ourselves to tell BAD_SIGNATURE from UNTRUSTED_CHAIN.

Revocation is asked through a callback so this stays pure: the caller answers
from our revocation registry (our certificates) or a cached OCSP result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification as xv

from chargeverse.pnc.ca import _check_p256
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.signer import CURVE_NAME

MAX_CHAIN_LENGTH = 4  # leaf + 2 sub-CAs + root in ISO 15118-2
RevocationCheck = Callable[[x509.Certificate, x509.Certificate], bool]  # (cert, issuer) -> revoked?


def _label(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except Exception:  # pragma: no cover - exotic names
        return "<unprintable subject>"


def _check_algorithms(cert: x509.Certificate) -> None:
    key = cert.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == CURVE_NAME):
        _check_p256(key, _label(cert))  # raises the specific reason
    try:
        alg = cert.signature_hash_algorithm
    except Exception as exc:  # unsupported signature algorithm OID
        raise PncRejection(Reason.WRONG_HASH_ALGORITHM, f"{_label(cert)}: unsupported signature algorithm") from exc
    if not isinstance(alg, hashes.SHA256):
        raise PncRejection(Reason.WRONG_HASH_ALGORITHM, f"{_label(cert)}: signed with {getattr(alg, 'name', alg)}")


def _check_time(cert: x509.Certificate, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise PncRejection(Reason.NOT_YET_VALID, f"{_label(cert)} is valid from {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise PncRejection(Reason.EXPIRED, f"{_label(cert)} expired {cert.not_valid_after_utc.isoformat()}")


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if cert.issuer != issuer.subject:
        raise PncRejection(Reason.WRONG_ISSUER, f"{_label(cert)} names issuer {cert.issuer.rfc4514_string()}, "
                           f"next in chain is {_label(issuer)}")
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise PncRejection(Reason.BAD_SIGNATURE, f"{_label(cert)}: signature by {_label(issuer)} does not verify") from exc


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
    is_revoked: RevocationCheck | None = None,
) -> list[x509.Certificate]:
    """Verify ``leaf`` + ``intermediates`` (nearest first) up to one of ``trusted_roots``.

    Returns the validated path ``[leaf, ..., root]`` or raises ``PncRejection``.
    """
    if not trusted_roots:
        raise PncRejection(Reason.UNTRUSTED_CHAIN, "no trusted roots configured")
    presented = [leaf, *intermediates]
    if len(presented) > MAX_CHAIN_LENGTH:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"chain of {len(presented)} certificates")
    for cert in presented:
        _check_algorithms(cert)
    bc = _basic_constraints(leaf)
    if bc is not None and bc.ca:
        raise PncRejection(Reason.NOT_A_LEAF, f"{_label(leaf)} is a CA certificate")
    for cert in presented:
        _check_time(cert, now)
    for child, parent in zip(presented, presented[1:]):
        if child.issuer != parent.subject:
            raise PncRejection(Reason.WRONG_ISSUER, f"{_label(child)} names issuer {child.issuer.rfc4514_string()}, "
                               f"next in chain is {_label(parent)}")
    top = presented[-1]
    if top in trusted_roots:
        roots = [top]
    else:
        roots = [r for r in trusted_roots if r.subject == top.issuer]
        if not roots:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"{_label(top)} is not issued by a trusted root")
    for root in roots:
        _check_algorithms(root)
        _check_time(root, now)
    # Signatures and RFC 5280 path validation: one pass by the library on the
    # happy path; only on failure do we re-check signatures ourselves to say why.
    try:
        validated = _library_verify(leaf, list(intermediates), list(trusted_roots), now)
    except PncRejection:
        for child, parent in zip(presented, presented[1:]):
            _signed_by(child, parent)
        if not any(_verifies(top, r) for r in roots) and top not in roots:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"{_label(top)}: no trusted root signature verifies") from None
        raise
    path = validated
    # CA flags and path lengths, from the first CA up (explicit ISO 15118-2 check).
    for depth, ca_cert in enumerate(path[1:]):  # depth = number of CAs between the leaf and this one
        ca_bc = _basic_constraints(ca_cert)
        if ca_bc is None or not ca_bc.ca:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"{_label(ca_cert)} is not a CA")
        if ca_bc.path_length is not None and depth > ca_bc.path_length:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"{_label(ca_cert)} path length {ca_bc.path_length} exceeded")
    if is_revoked is not None:
        for child, parent in zip(path, path[1:]):
            if is_revoked(child, parent):
                raise PncRejection(Reason.REVOKED, f"{_label(child)} is revoked")
    return path


def _verifies(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _library_verify(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: list[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate]:
    """RFC 5280 validation by ``cryptography`` (second, independent opinion).

    The end-entity extension policy is relaxed to "permit all" because ISO 15118
    leaves carry no subjectAltName/EKU, which the web-PKI default would demand;
    CA certificates get the library's default CA policy.
    """
    verifier = (
        xv.PolicyBuilder()
        .store(xv.Store(roots))
        .time(now)
        .max_chain_depth(MAX_CHAIN_LENGTH)
        .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(), ee_policy=xv.ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(leaf, intermediates).chain)
    except xv.VerificationError as exc:
        raise PncRejection(Reason.UNTRUSTED_CHAIN, f"RFC 5280 validation failed: {exc}") from exc


def _key_id_matches(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The child's authorityKeyIdentifier (when it has one) names the issuer's key."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return True
    if aki is None:
        return True
    try:
        return aki == x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def complete_from_pool(
    leaf: x509.Certificate,
    presented: Sequence[x509.Certificate],
    pool: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    """The intermediates (nearest first) that link ``leaf`` to one of ``trusted_roots``: what the requester
    ``presented``, extended with sub-CAs from the operator's ``pool`` (ISO 15118-2 CertificateInstallationReq
    carries only the OEM provisioning certificate; its sub-CAs come from a provisioning certificate pool).

    Only names and key identifiers are matched here (cheap); among candidates, one whose signature verifies is
    preferred, then the one valid longest.  ``verify_chain`` then judges the result.  A missing link is
    ``UNTRUSTED_CHAIN`` naming the issuer nobody registered (ISO 15118-2: ``FAILED_CertChainError``)."""
    path = list(presented)
    current = path[-1] if path else leaf
    while True:
        if any(r.subject == current.issuer and _key_id_matches(current, r) for r in trusted_roots) \
                or current in trusted_roots:
            return path
        if len(path) + 2 > MAX_CHAIN_LENGTH:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"no path of at most {MAX_CHAIN_LENGTH} certificates from "
                               f"{_label(leaf)} to a trusted root")
        candidates = [c for c in pool if c.subject == current.issuer and c not in path and c != current
                      and _key_id_matches(current, c)]
        if not candidates:
            raise PncRejection(Reason.UNTRUSTED_CHAIN, f"{_label(current)} is issued by "
                               f"{current.issuer.rfc4514_string()}, which is neither a trusted root nor a "
                               "registered OEM sub-CA")
        candidates.sort(key=lambda c: (_verifies(current, c), c.not_valid_after_utc), reverse=True)
        current = candidates[0]
        path.append(current)
