"""Typed rejections for the Plug & Charge core.

Why: every bad input (a malformed base64 ``exiRequest``, an RSA key, a chain that
does not reach a trusted root, ...) must end in a clear, spec-conformant answer
that the OCPP layer can send and the event log can record -- never a crash or a
bare ``ValueError``.  Each reason therefore carries the ISO 15118-2
``responseCode`` the EV would see, so the wiring does not have to guess.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an input was refused.  Values are stable: they go into events."""

    MALFORMED_BASE64 = "MalformedBase64"
    MALFORMED_EXI = "MalformedExi"
    OVERSIZED_INPUT = "OversizedInput"
    MALFORMED_CERTIFICATE = "MalformedCertificate"
    MALFORMED_REQUEST = "MalformedRequest"
    RSA_KEY = "RsaKey"
    WRONG_CURVE = "WrongCurve"
    UNSUPPORTED_KEY = "UnsupportedKey"
    WRONG_HASH_ALGORITHM = "WrongHashAlgorithm"
    UNTRUSTED_CHAIN = "UntrustedChain"
    WRONG_ISSUER = "WrongIssuer"
    BAD_SIGNATURE = "BadSignature"
    EXPIRED = "Expired"
    NOT_YET_VALID = "NotYetValid"
    REVOKED = "Revoked"
    NOT_A_LEAF = "NotALeaf"
    INVALID_EMAID = "InvalidEmaid"
    BAD_CHECK_DIGIT = "BadCheckDigit"
    INVALID_CSR = "InvalidCsr"
    CSR_IDENTITY_MISMATCH = "CsrIdentityMismatch"
    KEY_MISMATCH = "KeyMismatch"
    KEY_DECRYPTION_FAILED = "KeyDecryptionFailed"
    PROFILE_VIOLATION = "ProfileViolation"
    NO_CONTRACT = "NoContract"  # no eMAID is enrolled for this car (PCID)
    NOT_ENABLED = "NotEnabled"  # the CA material is not available to this process


# ISO 15118-2 responseCodeType values (Table 105) the EV understands.  Reasons
# without a specific code map to the generic "FAILED".
_ISO15118_CODE: dict[Reason, str] = {
    Reason.UNTRUSTED_CHAIN: "FAILED_CertChainError",
    Reason.WRONG_ISSUER: "FAILED_CertChainError",
    Reason.NOT_A_LEAF: "FAILED_CertChainError",
    Reason.RSA_KEY: "FAILED_CertChainError",
    Reason.WRONG_CURVE: "FAILED_CertChainError",
    Reason.UNSUPPORTED_KEY: "FAILED_CertChainError",
    Reason.WRONG_HASH_ALGORITHM: "FAILED_CertChainError",
    Reason.MALFORMED_CERTIFICATE: "FAILED_CertChainError",
    Reason.BAD_SIGNATURE: "FAILED_SignatureError",
    Reason.EXPIRED: "FAILED_CertificateExpired",
    # ISO 15118-2 has no "not yet valid" code; a chain error is the closest.
    Reason.NOT_YET_VALID: "FAILED_CertChainError",
    Reason.REVOKED: "FAILED_CertificateRevoked",
    Reason.NO_CONTRACT: "FAILED_NoCertificateAvailable",
}


class PncRejection(Exception):
    """An input the Plug & Charge core refuses, with a machine-readable reason."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)

    @property
    def iso15118_response_code(self) -> str:
        """The ISO 15118-2 ``ResponseCode`` to put in the EV-facing response."""
        return _ISO15118_CODE.get(self.reason, "FAILED")

    @property
    def ocpp_status(self) -> str:
        """OCPP 2.0.1 ``Iso15118EVCertificateStatusEnumType`` / generic status."""
        return "Failed"

    def as_event(self) -> dict[str, str]:
        """A log-safe description (no key material is ever put in ``detail``)."""
        return {
            "reason": self.reason.value,
            "detail": self.detail,
            "iso15118ResponseCode": self.iso15118_response_code,
        }
