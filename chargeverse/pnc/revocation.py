"""Revocation state, OCSP responses (RFC 6960), CRLs, OCPP GetCertificateStatus.

Why the registry is plain data with ``apply_*`` methods: in an event-sourced
system the truth is the ``pnc`` event log; this registry is the fold of
"issued" and "revoked" events, rebuilt on start-up and updated as events
arrive.  It knows every serial we issued per CA, which is what lets the OCSP
responder say ``unknown`` (never issued by us) instead of a dangerous ``good``.

OCSP answers are signed by the issuing CA itself (RFC 6960 2.6, no delegated
responder certificate needed by the verifier) through the ``CaSigner`` protocol,
so an HSM-held CA key works unchanged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from chargeverse.pnc import der
from chargeverse.pnc.ca import _THROWAWAY_KEY, CertificateAuthority
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.signer import SoftwareSigner

MAX_OCSP_REQUEST_BYTES = 4096  # one CertID plus a nonce is ~100 bytes
# OCPP 2.0.1 GetCertificateStatusResponse.ocspResult: string[0..5500].
MAX_OCSP_RESULT_CHARS = 5500


class RevocationCause(StrEnum):
    """Why a contract is revoked, in business terms; mapped to RFC 5280 reasons."""

    ACCOUNT_CLOSED = "account_closed"
    VEHICLE_SOLD = "vehicle_sold"
    KEY_COMPROMISE = "key_compromise"
    SUPERSEDED = "superseded"  # renewed, or re-installed on the same car
    CA_COMPROMISE = "ca_compromise"

    @property
    def crl_reason(self) -> x509.ReasonFlags:
        return {
            RevocationCause.ACCOUNT_CLOSED: x509.ReasonFlags.cessation_of_operation,
            RevocationCause.VEHICLE_SOLD: x509.ReasonFlags.affiliation_changed,
            RevocationCause.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
            RevocationCause.SUPERSEDED: x509.ReasonFlags.superseded,
            RevocationCause.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
        }[self]


class CertStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Revocation:
    serial_number: int
    revoked_at: dt.datetime
    cause: RevocationCause


@dataclass(slots=True)
class RevocationRegistry:
    """Issued and revoked serials per issuing CA (keyed by the CA's key identifier, hex)."""

    issued: dict[str, set[int]] = field(default_factory=dict)
    revoked: dict[str, dict[int, Revocation]] = field(default_factory=dict)

    # -- event application (pure state transitions) --------------------------
    def apply_issued(self, issuer_key_id: str, serial_number: int) -> None:
        self.issued.setdefault(issuer_key_id, set()).add(serial_number)

    def apply_revoked(self, issuer_key_id: str, revocation: Revocation) -> None:
        # First revocation wins: a later duplicate event must not move the date.
        self.revoked.setdefault(issuer_key_id, {}).setdefault(revocation.serial_number, revocation)

    # -- commands: validate, return the event to publish ---------------------
    def record_issued(self, issuer: CertificateAuthority, cert: x509.Certificate) -> dict[str, object]:
        key_id = issuer.key_identifier.hex()
        self.apply_issued(key_id, cert.serial_number)
        return {"type": "certificate_issued", "issuer_key_id": key_id, "serial_number": str(cert.serial_number),
                "subject": cert.subject.rfc4514_string(), "not_after": cert.not_valid_after_utc.isoformat()}

    def revoke(
        self, issuer: CertificateAuthority, serial_number: int, cause: RevocationCause, *, at: dt.datetime
    ) -> dict[str, object]:
        """Revoke one of our certificates; refuses serials this CA never issued."""
        key_id = issuer.key_identifier.hex()
        if serial_number not in self.issued.get(key_id, set()):
            raise PncRejection(Reason.WRONG_ISSUER, f"serial {serial_number:x} was not issued by this CA")
        self.apply_revoked(key_id, Revocation(serial_number, at, cause))
        kept = self.revoked[key_id][serial_number]
        return {"type": "certificate_revoked", "issuer_key_id": key_id, "serial_number": str(serial_number),
                "cause": kept.cause.value, "revoked_at": kept.revoked_at.isoformat()}

    # -- queries -------------------------------------------------------------
    def status(self, issuer_key_id: str, serial_number: int) -> tuple[CertStatus, Revocation | None]:
        entry = self.revoked.get(issuer_key_id, {}).get(serial_number)
        if entry is not None:
            return CertStatus.REVOKED, entry
        if serial_number in self.issued.get(issuer_key_id, set()):
            return CertStatus.GOOD, None
        return CertStatus.UNKNOWN, None

    def is_revoked(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        """``chain.RevocationCheck`` adapter."""
        key_id = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest.hex()  # type: ignore[arg-type]
        return self.status(key_id, cert.serial_number)[0] is CertStatus.REVOKED

    def revocations_of(self, issuer_key_id: str) -> Iterable[Revocation]:
        return self.revoked.get(issuer_key_id, {}).values()


# ------------------------------------------------------------------ OCSP


@dataclass(frozen=True, slots=True)
class CertId:
    """The RFC 6960 CertID: how OCSP (and OCPP's OCSPRequestDataType) names a cert."""

    hash_algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int


_OCPP_HASHES: dict[str, hashes.HashAlgorithm] = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}


def _issuer_hashes(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``ca`` as RFC 6960 defines them."""
    name_hash = hashes.Hash(algorithm)
    name_hash.update(ca.subject.public_bytes())
    spki = ca.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    key_hash = hashes.Hash(algorithm)
    key_hash.update(spki)  # the subjectPublicKey BIT STRING contents: the EC point
    return name_hash.finalize(), key_hash.finalize()


class OcspResponder:
    """Answers OCSP for the certificates our CAs issued."""

    def __init__(
        self,
        cas: Sequence[CertificateAuthority],
        registry: RevocationRegistry,
        *,
        validity: dt.timedelta = dt.timedelta(days=1),
    ) -> None:
        self.registry = registry
        self.validity = validity
        self._by_hash: dict[tuple[str, bytes, bytes], CertificateAuthority] = {}
        for ca in cas:
            for alg in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
                name_hash, key_hash = _issuer_hashes(ca.certificate, alg)
                self._by_hash[(alg.name, name_hash, key_hash)] = ca

    def issuer_for(self, cert_id: CertId) -> CertificateAuthority | None:
        return self._by_hash.get((cert_id.hash_algorithm.name, cert_id.issuer_name_hash, cert_id.issuer_key_hash))

    def respond_der(self, request_der: bytes, *, now: dt.datetime) -> bytes:
        """HTTP POST body in, DER ``OCSPResponse`` out; never raises on bad input."""
        if not isinstance(request_der, (bytes, bytearray)) or len(request_der) > MAX_OCSP_REQUEST_BYTES:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            request = ocsp.load_der_ocsp_request(bytes(request_der))
            cert_id = CertId(request.hash_algorithm, request.issuer_name_hash, request.issuer_key_hash, request.serial_number)
            nonce = _nonce(request)
        except Exception:  # cryptography raises ValueError / UnsupportedAlgorithm
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        return self.respond(cert_id, now=now, nonce=nonce)

    def respond(self, cert_id: CertId, *, now: dt.datetime, nonce: bytes | None = None) -> bytes:
        """DER ``OCSPResponse`` for one CertID (good / revoked / unknown)."""
        ca = self.issuer_for(cert_id)
        if ca is None:
            # RFC 6960 2.3: not authoritative for this issuer.
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        status, entry = self.registry.status(ca.key_identifier.hex(), cert_id.serial_number)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=cert_id.issuer_name_hash,
            issuer_key_hash=cert_id.issuer_key_hash,
            serial_number=cert_id.serial_number,
            algorithm=cert_id.hash_algorithm,
            cert_status={
                CertStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
                CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
                CertStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
            }[status],
            this_update=now,
            next_update=now + self.validity,
            revocation_time=entry.revoked_at if entry else None,
            revocation_reason=entry.cause.crl_reason if entry else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        if isinstance(ca.signer, SoftwareSigner):
            return builder.sign(ca.signer.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return _sign_externally(builder, ca, cert_id, status, entry, now, self.validity, nonce)


def _throwaway_responder() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "throwaway")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_THROWAWAY_KEY.public_key())
        .serial_number(1).not_valid_before(dt.datetime(2000, 1, 1)).not_valid_after(dt.datetime(2000, 1, 2))
        .sign(_THROWAWAY_KEY, hashes.SHA256())
    )


_THROWAWAY_RESPONDER = _throwaway_responder()


def _responder_key_hash(cert: x509.Certificate) -> bytes:
    """ResponderID byKey: SHA-1 of the responder's public key (RFC 6960 4.2.1)."""
    digest = hashes.Hash(hashes.SHA1())
    digest.update(cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    return digest.finalize()


def _sign_externally(
    builder: ocsp.OCSPResponseBuilder, ca: CertificateAuthority, cert_id: CertId, status: CertStatus,
    entry: Revocation | None, now: dt.datetime, validity: dt.timedelta, nonce: bytes | None,
) -> bytes:
    """OCSP response signed by an external (HSM) signer.

    cryptography's OCSP builder insists that the signing key matches the
    responder certificate, so the TBS is produced with a throwaway responder and
    its 20-byte ResponderID key hash is swapped for the real CA's (same length,
    so no DER length changes) before the HSM signs it.
    """
    fake = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=cert_id.issuer_name_hash, issuer_key_hash=cert_id.issuer_key_hash,
        serial_number=cert_id.serial_number, algorithm=cert_id.hash_algorithm,
        cert_status={CertStatus.GOOD: ocsp.OCSPCertStatus.GOOD, CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
                     CertStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN}[status],
        this_update=now, next_update=now + validity,
        revocation_time=entry.revoked_at if entry else None,
        revocation_reason=entry.cause.crl_reason if entry else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, _THROWAWAY_RESPONDER)
    if nonce is not None:
        fake = fake.add_extension(x509.OCSPNonce(nonce), critical=False)
    tbs = fake.sign(_THROWAWAY_KEY, hashes.SHA256()).tbs_response_bytes
    marker = bytes.fromhex("a2160414") + _responder_key_hash(_THROWAWAY_RESPONDER)
    if tbs.count(marker) != 1:
        raise RuntimeError("unexpected OCSP TBS layout")  # pragma: no cover - guards the splice
    tbs = tbs.replace(marker, bytes.fromhex("a2160414") + _responder_key_hash(ca.certificate))
    return der.ocsp_response(tbs, ca.signer.sign(tbs), [])


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------ OCPP GetCertificateStatus


def _decode_hash(value: object, size: int, what: str) -> bytes:
    """OCPP says hex; the ISO 15118 reference EVCC sends url-safe base64.  Accept both."""
    if not isinstance(value, str) or not value or len(value) > 128:
        raise PncRejection(Reason.MALFORMED_REQUEST, f"{what}: missing or too long")
    if len(value) == 2 * size:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PncRejection(Reason.MALFORMED_REQUEST, f"{what}: neither hex nor base64") from exc
    if len(raw) != size:
        raise PncRejection(Reason.MALFORMED_REQUEST, f"{what}: {len(raw)} bytes, expected {size}")
    return raw


def cert_id_from_ocpp(data: Mapping[str, object]) -> CertId:
    """Parse an OCPP 2.0.1 ``OCSPRequestDataType`` into a CertID (typed rejection on bad input)."""
    if not isinstance(data, Mapping):
        raise PncRejection(Reason.MALFORMED_REQUEST, "ocspRequestData must be an object")
    alg = _OCPP_HASHES.get(str(data.get("hashAlgorithm", "")))
    if alg is None:
        raise PncRejection(Reason.WRONG_HASH_ALGORITHM, f"hashAlgorithm {data.get('hashAlgorithm')!r}")
    serial = data.get("serialNumber")
    if not isinstance(serial, str) or not 0 < len(serial) <= 40:
        raise PncRejection(Reason.MALFORMED_REQUEST, "serialNumber: 1..40 hex characters")
    try:
        serial_number = int(serial, 16)
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_REQUEST, "serialNumber is not hexadecimal") from exc
    return CertId(
        alg,
        _decode_hash(data.get("issuerNameHash"), alg.digest_size, "issuerNameHash"),
        _decode_hash(data.get("issuerKeyHash"), alg.digest_size, "issuerKeyHash"),
        serial_number,
    )


def ocpp_request_data(cert: x509.Certificate, issuer: x509.Certificate, responder_url: str) -> dict[str, str]:
    """The ``OCSPRequestDataType`` a station would send for ``cert`` (hex, as OCPP 2.0.1 specifies)."""
    name_hash, key_hash = _issuer_hashes(issuer, hashes.SHA256())
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": name_hash.hex(),
        "issuerKeyHash": key_hash.hex(),
        "serialNumber": format(cert.serial_number, "x"),
        "responderURL": responder_url,
    }


def get_certificate_status(
    responder: OcspResponder, ocsp_request_data: Mapping[str, object], *, now: dt.datetime
) -> dict[str, str]:
    """OCPP 2.0.1 GetCertificateStatusResponse payload.

    ``Accepted`` + base64 DER OCSP response when we are authoritative (the OCSP
    status inside may still be revoked/unknown: the station decides); ``Failed``
    with a reason otherwise -- a foreign responderURL must be forwarded by the
    HTTP layer, not answered here.
    """
    try:
        cert_id = cert_id_from_ocpp(ocsp_request_data)
    except PncRejection as rejection:
        return {"status": "Failed", "statusInfo": rejection.reason.value}
    if responder.issuer_for(cert_id) is None:
        return {"status": "Failed", "statusInfo": "UnknownIssuer"}
    result = base64.b64encode(responder.respond(cert_id, now=now)).decode("ascii")
    if len(result) > MAX_OCSP_RESULT_CHARS:  # cannot happen for a single CertID; be explicit anyway
        return {"status": "Failed", "statusInfo": Reason.OVERSIZED_INPUT.value}
    return {"status": "Accepted", "ocspResult": result}


def get_certificate_status_from_der(responder: OcspResponder, request_der: bytes, *, now: dt.datetime) -> dict[str, str]:
    """Same answer, from a DER OCSP request (what an HTTP client would POST)."""
    body = responder.respond_der(request_der, now=now)
    response = ocsp.load_der_ocsp_response(body)
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return {"status": "Failed", "statusInfo": response.response_status.name}
    return {"status": "Accepted", "ocspResult": base64.b64encode(body).decode("ascii")}


# ------------------------------------------------------------------ CRL


def build_crl(
    ca: CertificateAuthority,
    registry: RevocationRegistry,
    *,
    now: dt.datetime,
    crl_number: int,
    next_update: dt.timedelta = dt.timedelta(days=7),
) -> x509.CertificateRevocationList:
    """The CRL of everything ``ca`` revoked; ``crl_number`` must increase per publication."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.signer.public_key()), critical=False)
    )
    for entry in sorted(registry.revocations_of(ca.key_identifier.hex()), key=lambda e: e.serial_number):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial_number)
            .revocation_date(entry.revoked_at)
            .add_extension(x509.CRLReason(entry.cause.crl_reason), critical=False)
            .build()
        )
    if isinstance(ca.signer, SoftwareSigner):
        return builder.sign(ca.signer.private_key, hashes.SHA256())
    tbs = builder.sign(_THROWAWAY_KEY, hashes.SHA256()).tbs_certlist_bytes
    return x509.load_der_x509_crl(der.signed(tbs, ca.signer.sign(tbs)))
