"""ISO 15118-2 CertificateInstallation / CertificateUpdate cryptography (MO side).

The car asks for a contract with its OEM provisioning certificate (installation)
or its current contract certificate (update, before expiry).  We:

1. decode and bound the inputs (base64 from OCPP ``Get15118EVCertificate``),
2. verify the presented chain (OEM chain against trusted OEM roots, or the current
   contract chain against our MO roots and revocation registry),
3. generate a fresh secp256r1 contract key pair and sign the contract certificate
   with MO sub-CA 2,
4. encrypt the contract private key to the presented certificate's public key
   exactly as ISO 15118-2 [V2G2-818..V2G2-826] prescribes, so only that car can
   unwrap it:

   * ECDH on secp256r1 between a fresh ephemeral key and the certificate's key;
   * ConcatKDF (NIST SP 800-56A, single-step, SHA-256), 128-bit output,
     OtherInfo = AlgorithmID ``0x01`` || PartyUInfo ``0x55`` ("U") ||
     PartyVInfo ``0x56`` ("V");
   * AES-128-CBC over the 32-byte big-endian private scalar (two blocks, no
     padding), random IV transmitted in the 16 most significant bytes.

   The response carries the 48-byte ``ContractSignatureEncryptedPrivateKey`` and
   the 65-byte uncompressed ephemeral ``DHpublickey``.

EXI framing and the XML signature by the provisioning service are not here (no
maintained Python EXI codec); this module works on the decoded certificates.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from chargeverse.pnc.ca import MoHierarchy, _check_p256, issue_contract_certificate
from chargeverse.pnc.chain import RevocationCheck, verify_chain
from chargeverse.pnc.emaid import CheckDigitPolicy, Emaid
from chargeverse.pnc.emaid import parse as parse_emaid
from chargeverse.pnc.errors import PncRejection, Reason

# OCPP 2.0.1 Get15118EVCertificateRequest.exiRequest: string[0..5600].
MAX_EXI_REQUEST_CHARS = 5600
# ISO 15118-2 certificateType: base64Binary, at most 800 bytes.
MAX_CERTIFICATE_BYTES = 800
KDF_OTHER_INFO = bytes([0x01, 0x55, 0x56])
AES_KEY_BYTES = 16
IV_BYTES = 16
ENCRYPTED_KEY_BYTES = IV_BYTES + 32
DH_PUBLIC_KEY_BYTES = 65


def decode_base64(text: str | bytes, *, max_chars: int = MAX_EXI_REQUEST_CHARS, what: str = "exiRequest") -> bytes:
    """Strict base64 decoding with a size bound checked *before* decoding."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: non-ASCII characters") from exc
    elif isinstance(text, bytes):
        raw = text
    else:
        raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: not a string")
    if len(raw) > max_chars:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"{what}: {len(raw)} characters, limit {max_chars}")
    if not raw.strip():
        raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: empty")
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: {exc}") from exc
    # b64decode tolerates excess padding and non-zero pad bits; a canonical
    # round trip does not, so two spellings can never carry the same request.
    if base64.b64encode(decoded) != raw:
        raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: non-canonical base64 (length or padding)")
    return decoded


ISO15118_2_SCHEMA = "urn:iso:15118:2:2013:MsgDef"
_ACTIONS = {"Install", "Update"}


def check_exi_header(stream: bytes) -> bytes:
    """Cheap EXI sanity check before anything expensive: the EXI header (EXI 1.0,
    section 5) starts, after an optional ``$EXI`` cookie, with the distinguishing
    bits ``10``.  Anything else is not EXI and is refused without decoding."""
    body = stream[4:] if stream.startswith(b"$EXI") else stream
    if not body or body[0] & 0xC0 != 0x80:
        raise PncRejection(Reason.MALFORMED_EXI, "exiRequest does not start with an EXI header")
    return stream


@dataclass(frozen=True, slots=True)
class Get15118EVCertificate:
    """The validated fields of an OCPP 2.0.1 Get15118EVCertificateRequest."""

    schema_version: str
    action: str  # "Install" (CertificateInstallationReq) or "Update" (CertificateUpdateReq)
    exi_request: bytes


def parse_get15118ev_certificate(payload: object) -> Get15118EVCertificate:
    """Bound and decode the request before any EXI or crypto work is done."""
    if not isinstance(payload, dict):
        raise PncRejection(Reason.MALFORMED_REQUEST, "payload must be an object")
    schema = payload.get("iso15118SchemaVersion")
    action = payload.get("action")
    if not isinstance(schema, str) or not 0 < len(schema) <= 50:
        raise PncRejection(Reason.MALFORMED_REQUEST, "iso15118SchemaVersion: string of 1..50")
    if action not in _ACTIONS:
        raise PncRejection(Reason.MALFORMED_REQUEST, f"action must be one of {sorted(_ACTIONS)}")
    exi = check_exi_header(decode_base64(payload.get("exiRequest", None)))  # type: ignore[arg-type]
    return Get15118EVCertificate(schema, str(action), exi)


def load_certificate(data: bytes | x509.Certificate, *, what: str = "certificate") -> x509.Certificate:
    """A DER certificate within the ISO 15118-2 size limit, or a typed rejection."""
    if isinstance(data, x509.Certificate):
        data = data.public_bytes(serialization.Encoding.DER)
    if not isinstance(data, (bytes, bytearray)):
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, f"{what}: not bytes")
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"{what}: {len(data)} bytes, ISO 15118-2 limit {MAX_CERTIFICATE_BYTES}")
    try:
        return x509.load_der_x509_certificate(bytes(data))
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, f"{what}: not a DER X.509 certificate") from exc


def _kdf(shared_secret: bytes) -> bytes:
    return ConcatKDFHash(algorithm=hashes.SHA256(), length=AES_KEY_BYTES, otherinfo=KDF_OTHER_INFO).derive(shared_secret)


def encrypt_private_key(
    private_key: ec.EllipticCurvePrivateKey, recipient: ec.EllipticCurvePublicKey
) -> tuple[bytes, bytes]:
    """``(dh_public_key, iv || ciphertext)`` per ISO 15118-2 [V2G2-818..826]."""
    _check_p256(recipient, "recipient")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    key = _kdf(ephemeral.exchange(ec.ECDH(), recipient))
    iv = os.urandom(IV_BYTES)
    scalar = private_key.private_numbers().private_value.to_bytes(32, "big")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(scalar) + encryptor.finalize()
    dh_public = ephemeral.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return dh_public, iv + ciphertext


def decrypt_private_key(
    encrypted: bytes, recipient_private_key: ec.EllipticCurvePrivateKey, dh_public_key: bytes
) -> ec.EllipticCurvePrivateKey:
    """What the car does: recover the contract private key (used by tests and tools)."""
    if len(encrypted) != ENCRYPTED_KEY_BYTES:
        raise PncRejection(Reason.KEY_DECRYPTION_FAILED, f"encrypted key must be {ENCRYPTED_KEY_BYTES} bytes")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public_key)
    except ValueError as exc:
        raise PncRejection(Reason.KEY_DECRYPTION_FAILED, "DH public key is not a secp256r1 point") from exc
    key = _kdf(recipient_private_key.exchange(ec.ECDH(), peer))
    decryptor = Cipher(algorithms.AES(key), modes.CBC(encrypted[:IV_BYTES])).decryptor()
    scalar = int.from_bytes(decryptor.update(encrypted[IV_BYTES:]) + decryptor.finalize(), "big")
    try:
        return ec.derive_private_key(scalar, ec.SECP256R1())
    except ValueError as exc:
        raise PncRejection(Reason.KEY_DECRYPTION_FAILED, "decrypted value is not a valid private key") from exc


@dataclass(frozen=True, slots=True)
class ContractIssued:
    """What goes back to the car (before EXI encoding), and what we log.

    ``encrypted_private_key`` is safe to log/store only as the opaque blob the
    car receives; the plain contract private key never leaves ``issue_contract``.
    """

    emaid: str
    contract_certificate: x509.Certificate
    sub_certificates: tuple[x509.Certificate, ...]  # MO sub-CA 2, MO sub-CA 1
    encrypted_private_key: bytes  # ContractSignatureEncryptedPrivateKey (IV || ciphertext)
    dh_public_key: bytes  # DHpublickey, 65 bytes uncompressed
    recipient_certificate: x509.Certificate  # OEM provisioning or previous contract certificate

    def as_event(self) -> dict[str, str]:
        """What the ``pnc`` log records: identifiers only, no key material at all."""
        cert = self.contract_certificate
        return {
            "emaid": self.emaid,
            "serial_number": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "issuer": cert.issuer.rfc4514_string(),
            "recipient_fingerprint_sha256": self.recipient_certificate.fingerprint(hashes.SHA256()).hex(),
        }

    def chain_der(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in (self.contract_certificate, *self.sub_certificates)]

    def chain_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.contract_certificate, *self.sub_certificates))


def issue_contract(
    mo: MoHierarchy,
    emaid: str | Emaid,
    recipient: x509.Certificate,
    *,
    now: dt.datetime,
    validity: dt.timedelta | None = None,
) -> ContractIssued:
    """Key generation + encryption + signing for an already-verified recipient."""
    parsed = emaid if isinstance(emaid, Emaid) else parse_emaid(emaid, CheckDigitPolicy.REJECT)
    recipient_key = _check_p256(recipient.public_key(), "recipient certificate")
    contract_key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_contract_certificate(mo.sub_ca2, parsed, contract_key.public_key(), now=now, validity=validity)
    dh_public, encrypted = encrypt_private_key(contract_key, recipient_key)
    return ContractIssued(
        emaid=parsed.normalised,
        contract_certificate=cert,
        sub_certificates=(mo.sub_ca2.certificate, mo.sub_ca1.certificate),
        encrypted_private_key=encrypted,
        dh_public_key=dh_public,
        recipient_certificate=recipient,
    )


def _has_key_agreement(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_agreement
    except x509.ExtensionNotFound:
        return False


def install_contract(
    mo: MoHierarchy,
    emaid: str | Emaid,
    oem_provisioning_certificate: bytes | x509.Certificate,
    oem_sub_certificates: Sequence[bytes | x509.Certificate],
    trusted_oem_roots: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
    is_revoked: RevocationCheck | None = None,
    validity: dt.timedelta | None = None,
) -> ContractIssued:
    """CertificateInstallation: verify the OEM chain, then issue to the car.

    ``oem_sub_certificates`` come from the provisioning certificate pool (ISO
    15118-2 only carries the leaf in CertificateInstallationReq).
    """
    leaf = load_certificate(oem_provisioning_certificate, what="OEM provisioning certificate")
    subs = [load_certificate(c, what="OEM sub-CA certificate") for c in oem_sub_certificates]
    verify_chain(leaf, subs, trusted_oem_roots, now=now, is_revoked=is_revoked)
    if not _has_key_agreement(leaf):
        raise PncRejection(Reason.PROFILE_VIOLATION, "OEM provisioning certificate lacks keyAgreement usage")
    return issue_contract(mo, emaid, leaf, now=now, validity=validity)


def update_contract(
    mo: MoHierarchy,
    current_contract_certificate: bytes | x509.Certificate,
    current_sub_certificates: Sequence[bytes | x509.Certificate],
    trusted_mo_roots: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
    is_revoked: RevocationCheck | None = None,
    validity: dt.timedelta | None = None,
) -> ContractIssued:
    """CertificateUpdate (renewal before expiry): same path, keyed to the old contract.

    The new contract keeps the eMAID of the current one and its private key is
    encrypted to the *current contract certificate's* public key, as ISO 15118-2
    requires; an expired or revoked current contract cannot be renewed (the car
    must go through installation again).
    """
    leaf = load_certificate(current_contract_certificate, what="contract certificate")
    subs = [load_certificate(c, what="MO sub-CA certificate") for c in current_sub_certificates]
    verify_chain(leaf, subs, trusted_mo_roots, now=now, is_revoked=is_revoked)
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise PncRejection(Reason.INVALID_EMAID, "contract certificate has no single CN")
    emaid = parse_emaid(str(cns[0].value), CheckDigitPolicy.FLAG)
    return issue_contract(mo, emaid.normalised, leaf, now=now, validity=validity)


def contract_private_key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    """True when ``key`` is the private half of ``cert`` (what the car checks)."""
    return cert.public_key() == key.public_key()
