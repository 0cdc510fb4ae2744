"""Signing charging-station CSRs (OCPP 2.0.1 SignCertificate, security profile 3).

A station generates its key pair, sends a PEM CSR, and we return a certificate
signed by our CPO sub-CA 2 (via CertificateSigned).  Why the checks: the CSR
arrives over a connection we authenticated as station ``X``; without pinning the
CN to ``X`` (and O to our organisation, per OCPP 2.0.1 A02/A03) a compromised
station could obtain a certificate for another station's identity.  Only
ChargingStationCertificate (TLS client) and V2GCertificate (SECC) are issued.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import NameOID

from chargeverse.pnc.ca import CertificateAuthority, _check_p256
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES

# OCPP 2.0.1 SignCertificateRequest.csr: string[0..5500].
MAX_CSR_CHARS = 5500


class CertificateSigningUse(StrEnum):
    CHARGING_STATION = "ChargingStationCertificate"
    V2G = "V2GCertificate"


def load_csr(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR within OCPP's size limit, or a typed rejection."""
    raw = csr_pem.encode("ascii", "replace") if isinstance(csr_pem, str) else csr_pem
    if not isinstance(raw, (bytes, bytearray)):
        raise PncRejection(Reason.INVALID_CSR, "CSR must be a PEM string")
    if len(raw) > MAX_CSR_CHARS:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"CSR of {len(raw)} characters, limit {MAX_CSR_CHARS}")
    try:
        return x509.load_pem_x509_csr(bytes(raw))
    except ValueError as exc:
        raise PncRejection(Reason.INVALID_CSR, "not a PEM PKCS#10 certificate request") from exc


def _single(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier, what: str) -> str:
    values = csr.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise PncRejection(Reason.CSR_IDENTITY_MISMATCH, f"CSR subject needs exactly one {what}")
    return str(values[0].value)


def check_csr(csr: x509.CertificateSigningRequest, *, station_id: str, organization: str) -> None:
    """Signature, key type and identity checks on a station CSR."""
    if not csr.is_signature_valid:
        raise PncRejection(Reason.BAD_SIGNATURE, "CSR signature does not verify (no proof of key possession)")
    _check_p256(csr.public_key(), "CSR key")
    cn = _single(csr, NameOID.COMMON_NAME, "CN")
    if cn != station_id:
        raise PncRejection(Reason.CSR_IDENTITY_MISMATCH, f"CSR CN {cn!r} is not the station {station_id!r}")
    org = _single(csr, NameOID.ORGANIZATION_NAME, "O")
    if org != organization:
        raise PncRejection(Reason.CSR_IDENTITY_MISMATCH, f"CSR O {org!r} is not {organization!r}")


def sign_station_csr(
    cpo_sub_ca2: CertificateAuthority,
    csr_pem: str | bytes,
    *,
    station_id: str,
    security_profile: int,
    use: CertificateSigningUse = CertificateSigningUse.CHARGING_STATION,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> x509.Certificate:
    """Check and sign; the certificate's names are ours, only the key is the station's.

    Security profiles 0-2 have no client certificate in the TLS handshake, so
    OCPP 2.0.1 refuses certificate operations there; we refuse them too.
    """
    if security_profile != 3:
        raise PncRejection(Reason.PROFILE_VIOLATION, f"certificate signing needs security profile 3, not {security_profile}")
    csr = load_csr(csr_pem)
    check_csr(csr, station_id=station_id, organization=cpo_sub_ca2.identity.organization)
    profile = PROFILES["chargingStation" if use is CertificateSigningUse.CHARGING_STATION else "seccLeaf"]
    return cpo_sub_ca2.issue(profile, csr.public_key(), now=now, common_name=station_id, validity=validity)  # type: ignore[arg-type]
