"""Who holds a CA's private key: an HSM-shaped interface and a software holder.

Why a protocol: the MO root and sub-CA keys are the crown jewels of Plug & Charge;
production may keep them in an HSM (PKCS#11, cloud KMS) that only ever exposes
"sign these bytes" and "here is my public key".  Everything in this package that
signs goes through ``CaSigner``, so swapping the holder needs no other change.

``SoftwareSigner`` keeps the key in process and serialises it only encrypted
(PKCS#8, PBES2/AES-256-CBC) with a key that the caller passes in -- the caller
reads it from settings; this module never reads configuration or files.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chargeverse.pnc.errors import PncRejection, Reason

CURVE_NAME = "secp256r1"


@runtime_checkable
class CaSigner(Protocol):
    """A P-256 key that can sign but need not reveal itself."""

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half, used for SKI/AKI and for verifying what was signed."""
        ...

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA signature over SHA-256(``data``)."""
        ...


class SoftwareSigner:
    """An in-process P-256 key (tests, development, or a sealed-at-rest deployment)."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVE_NAME:
            raise PncRejection(Reason.WRONG_CURVE, "CA keys must be ECDSA secp256r1 (ISO 15118-2)")
        self._key = key

    @classmethod
    def generate(cls) -> SoftwareSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """For ``cryptography`` builders (fast path); never serialise this unencrypted."""
        return self._key

    def to_encrypted_pem(self, key_encryption_key: bytes) -> bytes:
        """The key as encrypted PKCS#8 PEM, safe to store at rest."""
        if not key_encryption_key:
            raise ValueError("an empty key-encryption key would store the CA key in clear")
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(key_encryption_key),
        )

    @classmethod
    def from_encrypted_pem(cls, blob: bytes, key_encryption_key: bytes) -> SoftwareSigner:
        """Load a key stored by ``to_encrypted_pem``; a wrong key is a typed rejection."""
        try:
            key = serialization.load_pem_private_key(blob, password=key_encryption_key)
        except (ValueError, TypeError) as exc:
            raise PncRejection(Reason.KEY_DECRYPTION_FAILED, "wrong key-encryption key or corrupt blob") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PncRejection(Reason.UNSUPPORTED_KEY, "stored CA key is not an EC key")
        return cls(key)

    def __repr__(self) -> str:  # never leak the key through logs
        return "SoftwareSigner(<P-256 key>)"
