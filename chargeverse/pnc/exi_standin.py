"""The payload we accept inside OCPP 2.0.1 ``Get15118EVCertificate.exiRequest`` besides real EXI (pure).

Real ISO 15118-2 EXI is now decoded and answered by chargeverse/pnc/exi.py (EXIficient in a JVM, installed by
scripts/setup.sh), which hands CVX1 streams to this module: CVX1 stays accepted for the tests, the simulator and
deployments without a JVM, and a CVX1 request is answered in CVX1.

Why a stand-in was needed at first: ISO 15118-2 messages are EXI-encoded against the V2G_CI_MsgDef schema, and
no maintained *pure Python* EXI codec exists (the one maintained package that decodes ISO 15118 EXI, ``iso15118``
0.31.2, drives the Java EXIficient codec through py4j and needs a JVM beside the service).  This module defines,
exactly, the container accepted instead.  Everything cryptographic (OEM chain check, ECDH + ConcatKDF +
AES-128-CBC key wrapping, contract chain) is the real ISO 15118-2 procedure; only the container differs.  Given
anything else, this module refuses it with ``MalformedExi`` and a reason, never guessing.

Format ("CVX1"): the EXI header byte ``0x80`` (distinguishing bits ``10``, EXI 1.0, no options; so the generic
EXI sanity check passes), the ASCII magic ``CVX1``, then one UTF-8 JSON object (no other bytes) with the field
names of the ISO 15118-2 message it stands for, certificates as base64 DER:

- ``{"msg": "CertificateInstallationReq", "Id": str, "OEMProvisioningCert": b64,
  "OEMSubCertificates": [b64, ...] (optional, <= 2: ISO 15118-2 takes them from the provisioning pool),
  "ListOfRootCertificateIDs": [str, ...] (optional, informative)}``
- ``{"msg": "CertificateUpdateReq", "Id": str, "ContractSignatureCertChain": {"Certificate": b64,
  "SubCertificates": [b64, ...]}, "eMAID": str}``
- responses: ``{"msg": "CertificateInstallationRes" | "CertificateUpdateRes", "ResponseCode": "OK" |
  "FAILED..."}`` plus, when OK, ``"ContractSignatureCertChain": {...}, "ContractSignatureEncryptedPrivateKey":
  b64 (48 bytes: IV || ciphertext), "DHpublickey": b64 (65 bytes), "eMAID": str``.

Invariants: unknown fields are refused (a typo must not be silently ignored); every size is bounded before any
decoding; a response never carries a plain private key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from chargeverse.pnc.errors import PncRejection, Reason

HEADER = b"\x80"
MAGIC = b"CVX1"
PREFIX = HEADER + MAGIC
MAX_STREAM_BYTES = 4200  # 5600 base64 characters decode to at most 4200 bytes
MAX_SUB_CERTIFICATES = 2
MAX_CERT_B64 = 1100  # an 800-byte DER certificate is 1068 base64 characters

_INSTALL_FIELDS = {"msg", "Id", "OEMProvisioningCert", "OEMSubCertificates", "ListOfRootCertificateIDs"}
_UPDATE_FIELDS = {"msg", "Id", "ContractSignatureCertChain", "eMAID"}


@dataclass(frozen=True, slots=True)
class InstallationRequest:
    message_id: str
    oem_provisioning_cert: bytes
    oem_sub_certificates: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    message_id: str
    contract_cert: bytes
    sub_certificates: tuple[bytes, ...]
    emaid: str


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > MAX_CERT_B64:
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: base64 string of 1..{MAX_CERT_B64} characters expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PncRejection(Reason.MALFORMED_BASE64, f"{what}: {exc}") from exc


def _subs(value: object, what: str) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_SUB_CERTIFICATES:
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: a list of at most {MAX_SUB_CERTIFICATES} certificates")
    return tuple(_b64(v, f"{what}[{i}]") for i, v in enumerate(value))


def _document(stream: bytes) -> dict[str, Any]:
    if len(stream) > MAX_STREAM_BYTES:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"EXI stream of {len(stream)} bytes, limit {MAX_STREAM_BYTES}")
    if not stream.startswith(PREFIX):
        raise PncRejection(Reason.MALFORMED_EXI, "not a CVX1 stream (real ISO 15118-2 EXI is decoded by "
                           "chargeverse.pnc.exi; README: Plug & Charge)")
    try:
        doc = json.loads(stream[len(PREFIX):].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PncRejection(Reason.MALFORMED_EXI, "CVX1 body is not one UTF-8 JSON object") from exc
    if not isinstance(doc, dict):
        raise PncRejection(Reason.MALFORMED_EXI, "CVX1 body must be a JSON object")
    return doc


def _message_id(doc: dict[str, Any]) -> str:
    mid = doc.get("Id", "")
    if not isinstance(mid, str) or len(mid) > 64:
        raise PncRejection(Reason.MALFORMED_EXI, "Id: string of at most 64 characters")
    return mid


def decode_request(stream: bytes, action: str) -> InstallationRequest | UpdateRequest:
    """The request inside ``stream``; ``action`` is the OCPP ``action`` (Install / Update) and must match."""
    doc = _document(stream)
    msg = doc.get("msg")
    expected = "CertificateInstallationReq" if action == "Install" else "CertificateUpdateReq"
    if msg != expected:
        raise PncRejection(Reason.MALFORMED_EXI, f"OCPP action {action} needs {expected}, got {msg!r}")
    allowed = _INSTALL_FIELDS if action == "Install" else _UPDATE_FIELDS
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PncRejection(Reason.MALFORMED_EXI, f"unknown fields {unknown}")
    if action == "Install":
        roots = doc.get("ListOfRootCertificateIDs")
        if roots is not None and (not isinstance(roots, list) or len(roots) > 20):
            raise PncRejection(Reason.MALFORMED_EXI, "ListOfRootCertificateIDs: a list of at most 20")
        return InstallationRequest(_message_id(doc), _b64(doc.get("OEMProvisioningCert"), "OEMProvisioningCert"),
                                   _subs(doc.get("OEMSubCertificates"), "OEMSubCertificates"))
    chain = doc.get("ContractSignatureCertChain")
    if not isinstance(chain, dict) or set(chain) - {"Certificate", "SubCertificates"}:
        raise PncRejection(Reason.MALFORMED_EXI, "ContractSignatureCertChain: {Certificate, SubCertificates}")
    emaid = doc.get("eMAID")
    if not isinstance(emaid, str) or not 0 < len(emaid) <= 64:
        raise PncRejection(Reason.MALFORMED_EXI, "eMAID: string of 1..64 characters")
    return UpdateRequest(_message_id(doc), _b64(chain.get("Certificate"), "ContractSignatureCertChain.Certificate"),
                         _subs(chain.get("SubCertificates"), "ContractSignatureCertChain.SubCertificates"), emaid)


def encode(doc: dict[str, Any]) -> bytes:
    return PREFIX + json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def encode_request_installation(oem_cert_der: bytes, oem_subs_der: list[bytes] | tuple[bytes, ...] = (),
                                message_id: str = "id1") -> bytes:
    """What a car (or a test playing one) sends for CertificateInstallation."""
    doc: dict[str, Any] = {"msg": "CertificateInstallationReq", "Id": message_id,
                           "OEMProvisioningCert": base64.b64encode(oem_cert_der).decode()}
    if oem_subs_der:
        doc["OEMSubCertificates"] = [base64.b64encode(c).decode() for c in oem_subs_der]
    return encode(doc)


def encode_request_update(contract_der: bytes, subs_der: list[bytes] | tuple[bytes, ...], emaid: str,
                          message_id: str = "id1") -> bytes:
    return encode({"msg": "CertificateUpdateReq", "Id": message_id, "eMAID": emaid,
                   "ContractSignatureCertChain": {"Certificate": base64.b64encode(contract_der).decode(),
                                                  "SubCertificates": [base64.b64encode(c).decode() for c in subs_der]}})


def encode_response(action: str, response_code: str, *, chain_der: list[bytes] | None = None,
                    encrypted_private_key: bytes | None = None, dh_public_key: bytes | None = None,
                    emaid: str | None = None) -> bytes:
    """The response to the EV: OK with the contract, or a FAILED_* code alone."""
    doc: dict[str, Any] = {"msg": "CertificateInstallationRes" if action == "Install" else "CertificateUpdateRes",
                           "ResponseCode": response_code}
    if response_code == "OK":
        if not (chain_der and encrypted_private_key and dh_public_key and emaid):
            raise ValueError("an OK response carries the chain, the wrapped key, the DH public key and the eMAID")
        doc.update({
            "ContractSignatureCertChain": {"Certificate": base64.b64encode(chain_der[0]).decode(),
                                           "SubCertificates": [base64.b64encode(c).decode() for c in chain_der[1:]]},
            "ContractSignatureEncryptedPrivateKey": base64.b64encode(encrypted_private_key).decode(),
            "DHpublickey": base64.b64encode(dh_public_key).decode(),
            "eMAID": emaid,
        })
    return encode(doc)


def decode_response(stream: bytes) -> dict[str, Any]:
    """What the car does with our answer (tests and tools); certificates stay base64."""
    return _document(stream)
