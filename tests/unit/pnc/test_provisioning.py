"""CertificateInstallation / CertificateUpdate: what the car receives, and what is refused."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chargeverse.pnc.ca import MoHierarchy, create_root
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES
from chargeverse.pnc.provisioning import (
    MAX_EXI_REQUEST_CHARS,
    check_exi_header,
    decode_base64,
    parse_get15118ev_certificate,
    decrypt_private_key,
    install_contract,
    load_certificate,
    update_contract,
)
from chargeverse.pnc.revocation import RevocationCause, RevocationRegistry
from chargeverse.pnc.signer import SoftwareSigner

from pnc_fixtures import NOW, OEM_IDENTITY, OemPki, make_oem, openssl_verify


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_car_recovers_the_contract_key_that_matches_its_certificate(mo: MoHierarchy, oem: OemPki, tmp_path: Path) -> None:
    issued = install_contract(mo, "DE-8EO-C12345678-6", _der(oem.leaf), [_der(c) for c in oem.subs], [oem.root.certificate], now=NOW)
    assert len(issued.encrypted_private_key) == 48 and len(issued.dh_public_key) == 65
    assert issued.dh_public_key[0] == 0x04  # uncompressed point, as ISO 15118-2 DHpublickey
    key = decrypt_private_key(issued.encrypted_private_key, oem.leaf_key, issued.dh_public_key)
    assert key.public_key() == issued.contract_certificate.public_key()
    # The key really signs for the certificate (what the car does in PaymentDetails/Authorization).
    sig = key.sign(b"challenge", ec.ECDSA(hashes.SHA256()))
    issued.contract_certificate.public_key().verify(sig, b"challenge", ec.ECDSA(hashes.SHA256()))
    assert issued.emaid == "DE8EOC123456786"
    result = openssl_verify(tmp_path, issued.contract_certificate, list(issued.sub_certificates), mo.root_certificate)
    assert result.returncode == 0, result.stderr + result.stdout


def test_encryption_follows_iso15118_2_kdf_independently_recomputed(mo: MoHierarchy, oem: OemPki) -> None:
    """Recompute SP 800-56A ConcatKDF by hand (one SHA-256 round) instead of reusing the module."""
    issued = install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), issued.dh_public_key)
    z = oem.leaf_key.exchange(ec.ECDH(), peer)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56")  # counter || Z || AlgorithmID || PartyUInfo || PartyVInfo
    aes_key = digest.finalize()[:16]
    iv, ciphertext = issued.encrypted_private_key[:16], issued.encrypted_private_key[16:]
    dec = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    scalar = int.from_bytes(dec.update(ciphertext) + dec.finalize(), "big")
    assert ec.derive_private_key(scalar, ec.SECP256R1()).public_key() == issued.contract_certificate.public_key()


def test_each_issuance_uses_fresh_keys_and_iv(mo: MoHierarchy, oem: OemPki) -> None:
    a = install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    b = install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    assert a.dh_public_key != b.dh_public_key
    assert a.encrypted_private_key[:16] != b.encrypted_private_key[:16]
    assert a.contract_certificate.public_key() != b.contract_certificate.public_key()
    assert a.contract_certificate.serial_number != b.contract_certificate.serial_number


def test_another_cars_key_cannot_decrypt(mo: MoHierarchy, oem: OemPki) -> None:
    issued = install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    other = ec.generate_private_key(ec.SECP256R1())
    try:
        wrong = decrypt_private_key(issued.encrypted_private_key, other, issued.dh_public_key)
    except PncRejection:
        return
    assert wrong.public_key() != issued.contract_certificate.public_key()


def test_untrusted_oem_chain_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    stranger = make_oem()
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", stranger.leaf, stranger.subs, [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.UNTRUSTED_CHAIN
    assert info.value.iso15118_response_code == "FAILED_CertChainError"


def test_wrong_issuer_in_presented_chain_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    # A sub-CA with another name where the leaf's issuer should be.
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", oem.leaf, [mo.sub_ca2.certificate, oem.sub1.certificate],
                         [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.WRONG_ISSUER
    # An impostor sub-CA with the right name but another key.
    stranger = make_oem()
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", oem.leaf, [stranger.sub2.certificate, oem.sub1.certificate],
                         [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.BAD_SIGNATURE
    assert info.value.iso15118_response_code == "FAILED_SignatureError"


def test_expired_provisioning_certificate_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate],
                         now=oem.leaf.not_valid_after_utc + dt.timedelta(seconds=1))
    assert info.value.reason is Reason.EXPIRED
    assert info.value.iso15118_response_code == "FAILED_CertificateExpired"


def test_not_yet_valid_provisioning_certificate_is_refused(mo: MoHierarchy) -> None:
    future = make_oem(leaf_now=NOW + dt.timedelta(days=2))
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", future.leaf, future.subs, [future.root.certificate], now=NOW)
    assert info.value.reason is Reason.NOT_YET_VALID


def test_revoked_provisioning_certificate_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", oem.leaf, oem.subs, [oem.root.certificate], now=NOW,
                         is_revoked=lambda cert, issuer: cert.serial_number == oem.leaf.serial_number)
    assert info.value.reason is Reason.REVOKED
    assert info.value.iso15118_response_code == "FAILED_CertificateRevoked"


def _sign_leaf_with_foreign_key(oem: OemPki, public_key: object, curve_hash: hashes.HashAlgorithm = hashes.SHA256()) -> x509.Certificate:
    """A leaf the OEM sub-CA 2 signs directly with cryptography, bypassing our P-256 guard."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "odd car")]))
        .issuer_name(oem.sub2.certificate.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(PROFILES["oemLeaf"].key_usage_extension(), critical=True)
    )
    return builder.sign(oem.sub2.signer.private_key, curve_hash)  # type: ignore[attr-defined]


def test_rsa_provisioning_key_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    leaf = _sign_leaf_with_foreign_key(oem, rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", leaf, oem.subs, [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.RSA_KEY


def test_wrong_curve_provisioning_key_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    leaf = _sign_leaf_with_foreign_key(oem, ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", leaf, oem.subs, [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.WRONG_CURVE


def test_sha1_signed_provisioning_certificate_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    leaf = _sign_leaf_with_foreign_key(oem, ec.generate_private_key(ec.SECP256R1()).public_key(), hashes.SHA384())
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", leaf, oem.subs, [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.WRONG_HASH_ALGORITHM


def test_ca_certificate_posing_as_provisioning_certificate_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", oem.sub2.certificate, [oem.sub1.certificate], [oem.root.certificate], now=NOW)
    assert info.value.reason is Reason.NOT_A_LEAF


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not base64!!", Reason.MALFORMED_BASE64),
        ("QUJD=", Reason.MALFORMED_BASE64),
        ("", Reason.MALFORMED_BASE64),
        ("ä", Reason.MALFORMED_BASE64),
        ("A" * (MAX_EXI_REQUEST_CHARS + 4), Reason.OVERSIZED_INPUT),
        (12345, Reason.MALFORMED_BASE64),
    ],
)
def test_bad_base64_gives_typed_rejection(payload: object, reason: Reason) -> None:
    with pytest.raises(PncRejection) as info:
        decode_base64(payload)  # type: ignore[arg-type]
    assert info.value.reason is reason
    assert info.value.as_event()["reason"] == reason.value


def test_valid_base64_round_trips() -> None:
    assert decode_base64(base64.b64encode(b"\x80\x98\x02exi").decode()) == b"\x80\x98\x02exi"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [(b"\x30\x03\x02\x01\x01", Reason.MALFORMED_CERTIFICATE), (b"garbage", Reason.MALFORMED_CERTIFICATE), (b"\x30" * 801, Reason.OVERSIZED_INPUT)],
)
def test_bad_certificate_bytes_give_typed_rejection(mo: MoHierarchy, oem: OemPki, blob: bytes, reason: Reason) -> None:
    with pytest.raises(PncRejection) as info:
        install_contract(mo, "FR-XYZ-123456789", blob, oem.subs, [oem.root.certificate], now=NOW)
    assert info.value.reason is reason


def test_update_renews_to_the_current_contract_key(mo: MoHierarchy, oem: OemPki) -> None:
    first = install_contract(mo, "DE-8EO-C12345678", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    old_key = decrypt_private_key(first.encrypted_private_key, oem.leaf_key, first.dh_public_key)
    later = NOW + dt.timedelta(days=700)  # within the last weeks of the 730-day contract
    renewed = update_contract(mo, _der(first.contract_certificate), first.chain_der()[1:], [mo.root_certificate], now=later)
    assert renewed.emaid == first.emaid
    assert renewed.contract_certificate.serial_number != first.contract_certificate.serial_number
    new_key = decrypt_private_key(renewed.encrypted_private_key, old_key, renewed.dh_public_key)
    assert new_key.public_key() == renewed.contract_certificate.public_key()
    # The OEM key is no longer the recipient: it cannot unwrap the renewed key.
    try:
        stolen = decrypt_private_key(renewed.encrypted_private_key, oem.leaf_key, renewed.dh_public_key)
    except PncRejection:
        stolen = None
    assert stolen is None or stolen.public_key() != renewed.contract_certificate.public_key()


def test_update_of_revoked_or_expired_contract_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    first = install_contract(mo, "DE-8EO-C12345678", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    registry = RevocationRegistry()
    registry.record_issued(mo.sub_ca2, first.contract_certificate)
    registry.revoke(mo.sub_ca2, first.contract_certificate.serial_number, RevocationCause.VEHICLE_SOLD, at=NOW)
    with pytest.raises(PncRejection) as info:
        update_contract(mo, first.contract_certificate, first.sub_certificates, [mo.root_certificate], now=NOW,
                        is_revoked=registry.is_revoked)
    assert info.value.reason is Reason.REVOKED
    with pytest.raises(PncRejection) as info:
        update_contract(mo, first.contract_certificate, first.sub_certificates, [mo.root_certificate],
                        now=NOW + dt.timedelta(days=731))
    assert info.value.reason is Reason.EXPIRED


def test_update_with_foreign_contract_is_refused(mo: MoHierarchy, oem: OemPki) -> None:
    foreign_root = create_root("moRootCA", OEM_IDENTITY, SoftwareSigner.generate(), now=NOW, common_name="Other MO")
    sub1 = foreign_root.issue_sub_ca("moSubCA1", SoftwareSigner.generate(), now=NOW)
    sub2 = sub1.issue_sub_ca("moSubCA2", SoftwareSigner.generate(), now=NOW)
    from chargeverse.pnc.ca import issue_contract_certificate

    foreign = issue_contract_certificate(sub2, "FR-XYZ-123456789", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW)
    with pytest.raises(PncRejection) as info:
        update_contract(mo, foreign, [sub2.certificate, sub1.certificate], [mo.root_certificate], now=NOW)
    assert info.value.reason is Reason.UNTRUSTED_CHAIN


def test_load_certificate_accepts_iso_size(oem: OemPki) -> None:
    assert load_certificate(_der(oem.leaf)).serial_number == oem.leaf.serial_number


def test_get15118ev_certificate_request_is_bounded_and_checked() -> None:
    exi = b"\x80\x98\x02\x10\x50\x90"  # EXI header byte + ISO 15118-2 V2G_Message start
    ok = parse_get15118ev_certificate(
        {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install", "exiRequest": base64.b64encode(exi).decode()}
    )
    assert ok.exi_request == exi and ok.action == "Install"
    bad_cases = [
        ({"iso15118SchemaVersion": "x", "action": "Steal", "exiRequest": "gJg="}, Reason.MALFORMED_REQUEST),
        ({"action": "Install", "exiRequest": "gJg="}, Reason.MALFORMED_REQUEST),
        ({"iso15118SchemaVersion": "x", "action": "Update", "exiRequest": "%%%"}, Reason.MALFORMED_BASE64),
        ({"iso15118SchemaVersion": "x", "action": "Update", "exiRequest": base64.b64encode(b"<xml/>").decode()}, Reason.MALFORMED_EXI),
        ({"iso15118SchemaVersion": "x", "action": "Update", "exiRequest": "gJg" * 2000 + "="}, Reason.OVERSIZED_INPUT),
        ([1, 2], Reason.MALFORMED_REQUEST),
    ]
    for payload, reason in bad_cases:
        with pytest.raises(PncRejection) as info:
            parse_get15118ev_certificate(payload)
        assert info.value.reason is reason, payload
    assert check_exi_header(b"$EXI\x80\x98") == b"$EXI\x80\x98"


def test_issuance_event_carries_no_key_material(mo: MoHierarchy, oem: OemPki) -> None:
    issued = install_contract(mo, "DE-8EO-C12345678", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    event = issued.as_event()
    assert event["emaid"] == "DE8EOC123456786"
    assert int(event["serial_number"], 16) == issued.contract_certificate.serial_number
    flat = repr(event).encode()
    assert issued.encrypted_private_key.hex().encode() not in flat
    assert issued.dh_public_key.hex().encode() not in flat
