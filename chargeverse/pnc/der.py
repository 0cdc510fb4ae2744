"""The handful of DER constructs needed to attach an externally made signature.

Why this exists: ``cryptography``'s builders (certificate, CRL, CSR, OCSP) only
sign with an in-process private key object.  A CA key in an HSM never leaves it,
so for such signers we let the builder produce the to-be-signed structure (with a
throwaway key), have the HSM sign those exact bytes, and re-wrap them with the
real signature.  The outer structures are tiny and fixed by X.509 / RFC 6960, so
a full ASN.1 library would be overkill.
"""

from __future__ import annotations

# AlgorithmIdentifier { ecdsa-with-SHA256 } (RFC 5758: parameters absent).
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
# id-pkix-ocsp-basic
_OCSP_BASIC_OID = bytes.fromhex("06092b0601050507300101")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    return bytes([tag]) + _length(len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def bit_string(data: bytes) -> bytes:
    return tlv(0x03, b"\x00" + data)


def signed(tbs: bytes, signature: bytes) -> bytes:
    """``SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }``.

    The outer shape of a Certificate, CertificateList and CertificationRequest.
    """
    return sequence(tbs, ECDSA_WITH_SHA256, bit_string(signature))


def tlv_elements(der: bytes) -> list[bytes]:
    """Split the content of the outer SEQUENCE of ``der`` into its raw elements."""
    if not der or der[0] != 0x30:
        raise ValueError("not a SEQUENCE")
    content, _ = _read(der, 0)
    out: list[bytes] = []
    pos = 0
    while pos < len(content):
        _, end = _read(content, pos)
        out.append(content[pos:end])
        pos = end
    return out


def _read(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Content and end offset of the element starting at ``pos``."""
    first = buf[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        n = first & 0x7F
        start = pos + 2 + n
        length = int.from_bytes(buf[pos + 2 : start], "big")
    end = start + length
    if end > len(buf):
        raise ValueError("truncated DER")
    return buf[start:end], end


def ocsp_response(tbs_response_data: bytes, signature: bytes, certs: list[bytes]) -> bytes:
    """A successful ``OCSPResponse`` around a BasicOCSPResponse (RFC 6960 4.2.1)."""
    basic_parts = [tbs_response_data, ECDSA_WITH_SHA256, bit_string(signature)]
    if certs:
        basic_parts.append(tlv(0xA0, sequence(*certs)))
    basic = sequence(*basic_parts)
    response_bytes = sequence(_OCSP_BASIC_OID, tlv(0x04, basic))
    return sequence(tlv(0x0A, b"\x00"), tlv(0xA0, response_bytes))
