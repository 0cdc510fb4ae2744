"""Real ISO 15118-2 EXI (chargeverse/pnc/exi.py): a car's EXI request goes through the provisioning flow and the
car can read our EXI answer, check its signature and recover the contract key.

Needs the EXIficient codec (a JVM, the jar scripts/setup.sh installs, py4j): skipped, with the reason, only when
that is absent.  One JVM serves the whole module (started once, a few seconds)."""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chargeverse.pnc import exi, exi_standin
from chargeverse.pnc.ca import CertificateAuthority, MoHierarchy, create_root
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES
from chargeverse.pnc.provisioning import decrypt_private_key, install_contract, update_contract
from chargeverse.pnc.signer import SoftwareSigner

from pnc_fixtures import CPO_IDENTITY, NOW, OemPki, make_oem

WHY_SKIPPED = exi.unavailable_reason()
needs_codec = pytest.mark.skipif(WHY_SKIPPED is not None, reason=f"real EXI codec absent: {WHY_SKIPPED}")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Cps:
    """The certificate provisioning service: V2G root -> ProvSubCA1 -> ProvSubCA2 -> CPS leaf (signs responses)."""

    root: CertificateAuthority
    leaf: x509.Certificate
    sub2: CertificateAuthority
    sub1: CertificateAuthority
    signer: SoftwareSigner

    @property
    def sa(self) -> exi.SaProvisioning:
        return exi.SaProvisioning((_der(self.leaf), _der(self.sub2.certificate), _der(self.sub1.certificate)),
                                  self.signer)


@pytest.fixture(scope="module")
def codec() -> exi.ExiCodec:
    if WHY_SKIPPED is not None:
        pytest.skip(f"real EXI codec absent: {WHY_SKIPPED}")
    return exi.default_codec()


@pytest.fixture(scope="module")
def cps() -> Cps:
    then = NOW - dt.timedelta(days=1)
    root = create_root("v2gRootCA", CPO_IDENTITY, SoftwareSigner.generate(), now=then)
    sub1 = root.issue_sub_ca("cpsSubCA1", SoftwareSigner.generate(), now=then)
    sub2 = sub1.issue_sub_ca("cpsSubCA2", SoftwareSigner.generate(), now=then)
    signer = SoftwareSigner.generate()
    leaf = sub2.issue(PROFILES["cpsLeaf"], signer.public_key(), now=then, common_name="CPS Leaf")
    return Cps(root, leaf, sub2, sub1, signer)


def _certs(chain: dict[str, Any]) -> list[bytes]:
    subs = chain.get("SubCertificates", {}).get("Certificate", [])
    return [base64.b64decode(c) for c in [chain["Certificate"], *(subs if isinstance(subs, list) else [subs])]]


def _value(element: dict[str, Any]) -> bytes:
    return base64.b64decode(element["value"])


@needs_codec
def test_installation_request_in_real_exi_is_answered_in_real_exi_the_car_can_use(
        codec: exi.ExiCodec, mo: MoHierarchy, oem: OemPki, cps: Cps) -> None:
    session = bytes.fromhex("0a0b0c0d0e0f1011")
    stream = exi.encode_request_installation(_der(oem.leaf), session_id=session, message_id="req7",
                                             root_ids=[("CN=V2GRootCA,O=Example", 4711)], sign_with=oem.leaf_key)
    assert stream[0] & 0xC0 == 0x80 and not exi.is_cvx1(stream)  # a real EXI stream, not our container

    request = exi.decode_request(stream, "Install")
    assert isinstance(request, exi.RealInstallationRequest)
    assert isinstance(request, exi_standin.InstallationRequest)  # the service's isinstance checks still hold
    assert request.oem_provisioning_cert == _der(oem.leaf) and request.message_id == "req7"
    assert request.session_id == session and request.signature_checked
    assert request.root_certificate_ids == (("CN=V2GRootCA,O=Example", 4711),)

    issued = install_contract(mo, "DE-8EO-C12345678-6", request.oem_provisioning_cert, oem.subs,
                              [oem.root.certificate], now=NOW)
    answer = exi.respond("Install", "OK", stream, request, cps.sa, chain_der=issued.chain_der(),
                         encrypted_private_key=issued.encrypted_private_key, dh_public_key=issued.dh_public_key,
                         emaid=issued.emaid)
    assert not exi.is_cvx1(answer)

    header, name, body = exi.decode_response(answer)
    assert name == "CertificateInstallationRes" and body["ResponseCode"] == "OK"
    assert bytes.fromhex(header["SessionID"]) == session
    assert _certs(body["SAProvisioningCertificateChain"]) == list(cps.sa.chain_der)
    assert _certs(body["ContractSignatureCertChain"]) == issued.chain_der()
    assert body["eMAID"]["value"] == "DE8EOC123456786"
    # the car checks the CPS signature over the four signed elements, then unwraps its key
    signed = {n: body[n] for n in exi.SIGNED_ELEMENTS}
    exi.verify_signature(codec, header["Signature"], signed, cps.signer.public_key())
    key = decrypt_private_key(_value(body["ContractSignatureEncryptedPrivateKey"]), oem.leaf_key,
                              _value(body["DHpublickey"]))
    contract = x509.load_der_x509_certificate(_certs(body["ContractSignatureCertChain"])[0])
    assert key.public_key() == contract.public_key()


@needs_codec
def test_a_tampered_response_element_fails_the_cars_signature_check(codec: exi.ExiCodec, mo: MoHierarchy,
                                                                   oem: OemPki, cps: Cps) -> None:
    issued = install_contract(mo, "DE-8EO-C12345678-6", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    answer = exi.encode_response("Install", "OK", cps.sa, chain_der=issued.chain_der(),
                                 encrypted_private_key=issued.encrypted_private_key,
                                 dh_public_key=issued.dh_public_key, emaid=issued.emaid)
    header, _, body = exi.decode_response(answer)
    signed = {n: body[n] for n in exi.SIGNED_ELEMENTS}
    signed["DHpublickey"] = {**signed["DHpublickey"], "value": base64.b64encode(
        ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)).decode()}
    with pytest.raises(PncRejection) as info:
        exi.verify_signature(codec, header["Signature"], signed, cps.signer.public_key())
    assert info.value.reason is Reason.BAD_SIGNATURE and "DHpublickey" in info.value.detail
    with pytest.raises(PncRejection) as info:  # right elements, someone else's key
        exi.verify_signature(codec, header["Signature"], {n: body[n] for n in exi.SIGNED_ELEMENTS},
                             SoftwareSigner.generate().public_key())
    assert info.value.reason is Reason.BAD_SIGNATURE


@needs_codec
def test_update_request_in_real_exi_renews_to_the_current_contract_key(codec: exi.ExiCodec, mo: MoHierarchy,
                                                                       oem: OemPki, cps: Cps) -> None:
    first = install_contract(mo, "DE-8EO-C12345678", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    old_key = decrypt_private_key(first.encrypted_private_key, oem.leaf_key, first.dh_public_key)
    stream = exi.encode_request_update(first.chain_der()[0], first.chain_der()[1:], first.emaid, sign_with=old_key)

    request = exi.decode_request(stream, "Update")
    assert isinstance(request, exi.RealUpdateRequest) and isinstance(request, exi_standin.UpdateRequest)
    assert request.emaid == first.emaid and request.signature_checked
    assert [request.contract_cert, *request.sub_certificates] == first.chain_der()

    later = NOW + dt.timedelta(days=700)
    renewed = update_contract(mo, request.contract_cert, request.sub_certificates, [mo.root_certificate], now=later)
    answer = exi.respond("Update", "OK", stream, request, cps.sa, chain_der=renewed.chain_der(),
                         encrypted_private_key=renewed.encrypted_private_key, dh_public_key=renewed.dh_public_key,
                         emaid=renewed.emaid)
    header, name, body = exi.decode_response(answer)
    assert name == "CertificateUpdateRes" and body["ResponseCode"] == "OK"
    exi.verify_signature(codec, header["Signature"], {n: body[n] for n in exi.SIGNED_ELEMENTS},
                         cps.signer.public_key())
    new_key = decrypt_private_key(_value(body["ContractSignatureEncryptedPrivateKey"]), old_key,
                                  _value(body["DHpublickey"]))
    assert new_key.public_key() == renewed.contract_certificate.public_key()
    assert body["eMAID"]["value"] == first.emaid


@needs_codec
def test_request_signed_by_another_key_is_refused_as_a_signature_error(codec: exi.ExiCodec, oem: OemPki) -> None:
    other = make_oem()
    stream = exi.encode_request_installation(_der(oem.leaf), sign_with=other.leaf_key)
    with pytest.raises(PncRejection) as info:
        exi.decode_request(stream, "Install")
    assert info.value.reason is Reason.BAD_SIGNATURE
    assert info.value.iso15118_response_code == "FAILED_SignatureError"


@needs_codec
def test_unsigned_request_is_decoded_and_marked_unchecked(codec: exi.ExiCodec, oem: OemPki) -> None:
    request = exi.decode_request(exi.encode_request_installation(_der(oem.leaf)), "Install")
    assert isinstance(request, exi.RealInstallationRequest) and not request.signature_checked


@needs_codec
@pytest.mark.parametrize(("stream", "action", "why"), [
    (b"\x80\x98\x02\x00\xff\xff\xff\xff\x00\x13\x37", "Install", "not ISO 15118-2 EXI"),  # header fine, body junk
    (b"\x80" + bytes(range(256)) * 2, "Install", ""),
    (None, "Update", "needs CertificateUpdateReq"),  # an installation request under OCPP action Update
])
def test_bad_exi_is_refused_as_malformed(codec: exi.ExiCodec, oem: OemPki, stream: bytes | None, action: str,
                                         why: str) -> None:
    stream = stream or exi.encode_request_installation(_der(oem.leaf))
    with pytest.raises(PncRejection) as info:
        exi.decode_request(stream, action)
    assert info.value.reason is Reason.MALFORMED_EXI and why in info.value.detail


@needs_codec
def test_damaged_requests_always_end_in_a_typed_rejection_and_the_codec_survives(codec: exi.ExiCodec,
                                                                                 oem: OemPki) -> None:
    """Bit damage anywhere in a signed request (seeded): decoded fine, or refused with a reason -- never a crash,
    and the JVM keeps answering."""
    stream = exi.encode_request_installation(_der(oem.leaf), sign_with=oem.leaf_key)
    rnd = random.Random(15118)
    reasons: set[Reason] = set()
    for _ in range(80):
        damaged = bytearray(stream)
        for _ in range(rnd.randint(1, 4)):
            damaged[rnd.randrange(2, len(damaged))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            damaged = damaged[:rnd.randrange(2, len(damaged))]
        try:
            exi.decode_request(bytes(damaged), "Install")
        except PncRejection as rej:
            reasons.add(rej.reason)
    assert {Reason.MALFORMED_EXI, Reason.BAD_SIGNATURE} <= reasons
    assert exi.decode_request(stream, "Install").signature_checked  # still alive and right


@needs_codec
def test_oversized_exi_is_refused_before_decoding(codec: exi.ExiCodec) -> None:
    with pytest.raises(PncRejection) as info:
        exi.decode_request(b"\x80" + b"\x00" * exi_standin.MAX_STREAM_BYTES, "Install")
    assert info.value.reason is Reason.OVERSIZED_INPUT


@needs_codec
def test_failure_is_answered_in_real_exi_unsigned_with_the_session_echoed(codec: exi.ExiCodec, oem: OemPki,
                                                                          cps: Cps) -> None:
    session = bytes.fromhex("cafe0001")
    stream = exi.encode_request_installation(_der(oem.leaf), session_id=session)
    request = exi.decode_request(stream, "Install")
    answer = exi.respond("Install", "FAILED_NoCertificateAvailable", stream, request, cps.sa)
    header, name, body = exi.decode_response(answer)
    assert name == "CertificateInstallationRes" and body["ResponseCode"] == "FAILED_NoCertificateAvailable"
    assert bytes.fromhex(header["SessionID"]) == session and "Signature" not in header
    # a stream the decoder never understood still gets a real-EXI FAILED (no session known: zeros)
    junk = b"\x80\x98\x02\x00\xff\xff\xff"
    header, _, body = exi.decode_response(exi.respond("Install", "FAILED", junk, None, cps.sa))
    assert body["ResponseCode"] == "FAILED" and bytes.fromhex(header["SessionID"]) == exi.NO_SESSION


@needs_codec
def test_cvx1_stays_accepted_and_is_answered_in_cvx1(codec: exi.ExiCodec, mo: MoHierarchy, oem: OemPki,
                                                     cps: Cps) -> None:
    stream = exi_standin.encode_request_installation(_der(oem.leaf), [_der(c) for c in oem.subs])
    request = exi.decode_request(stream, "Install")
    assert type(request) is exi_standin.InstallationRequest
    issued = install_contract(mo, "DE-8EO-C12345678-6", request.oem_provisioning_cert, request.oem_sub_certificates,
                              [oem.root.certificate], now=NOW)
    answer = exi.respond("Install", "OK", stream, request, cps.sa, chain_der=issued.chain_der(),
                         encrypted_private_key=issued.encrypted_private_key, dh_public_key=issued.dh_public_key,
                         emaid=issued.emaid)
    assert exi_standin.decode_response(answer)["eMAID"] == issued.emaid


@needs_codec
@pytest.mark.slow  # the jar's JAXB path builds its context per call: seconds, not milliseconds
def test_every_encoding_matches_the_jars_own_codec_byte_for_byte(codec: exi.ExiCodec, mo: MoHierarchy, oem: OemPki,
                                                                 cps: Cps, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our XML mapping against an independent path: the jar's own JSON -> JAXB -> EXI codec must give the same bytes
    for every document a full install + renew encodes (messages, the four signed fragments, SignedInfo).  One known
    exception: the jar does not list CertificateUpdateReq among its fragment elements and encodes it as a
    document; we encode it as a fragment, like CertificateInstallationReq."""
    seen: list[tuple[dict[str, Any], str]] = []
    encode = codec.encode
    monkeypatch.setattr(codec, "encode", lambda doc, ns: seen.append((doc, ns)) or encode(doc, ns))
    stream = exi.encode_request_installation(_der(oem.leaf), sign_with=oem.leaf_key)
    request = exi.decode_request(stream, "Install")
    issued = install_contract(mo, "DE-8EO-C12345678-6", request.oem_provisioning_cert, oem.subs,
                              [oem.root.certificate], now=NOW)
    exi.respond("Install", "OK", stream, request, cps.sa, chain_der=issued.chain_der(),
                encrypted_private_key=issued.encrypted_private_key, dh_public_key=issued.dh_public_key,
                emaid=issued.emaid)
    exi.respond("Install", "FAILED_CertChainError", stream, request, cps.sa)
    key = decrypt_private_key(issued.encrypted_private_key, oem.leaf_key, issued.dh_public_key)
    exi.decode_request(exi.encode_request_update(issued.chain_der()[0], issued.chain_der()[1:], issued.emaid,
                                                 sign_with=key), "Update")
    monkeypatch.undo()
    roots = [next(iter(doc)) for doc, _ in seen]
    assert set(exi.SIGNED_ELEMENTS) | {"SignedInfo", "V2G_Message", "CertificateInstallationReq"} <= set(roots)
    samples = {(root, doc.get("V2G_Message", {}).get("Body", "") and next(iter(doc["V2G_Message"]["Body"]))):
               (doc, ns) for (doc, ns), root in zip(seen, roots)}  # one of each kind: the jar's path is slow
    mismatched = [kind[0] for kind, (doc, ns) in samples.items()
                  if codec.encode(doc, ns) != codec.jar_json_encode(doc, ns)]
    assert set(mismatched) <= {"CertificateUpdateReq"}, mismatched


@needs_codec
def test_without_a_cps_signer_the_ok_response_goes_out_unsigned(codec: exi.ExiCodec, mo: MoHierarchy, oem: OemPki,
                                                                 cps: Cps) -> None:
    issued = install_contract(mo, "DE-8EO-C12345678-6", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    unsigned = exi.SaProvisioning(cps.sa.chain_der, None)
    header, _, body = exi.decode_response(exi.encode_response(
        "Install", "OK", unsigned, chain_der=issued.chain_der(), encrypted_private_key=issued.encrypted_private_key,
        dh_public_key=issued.dh_public_key, emaid=issued.emaid))
    assert "Signature" not in header and body["ResponseCode"] == "OK"
    assert _certs(body["ContractSignatureCertChain"]) == issued.chain_der()


def test_sa_chain_comes_from_a_cps_ca_when_the_material_has_one(cps: Cps) -> None:
    @dataclass
    class Material:
        cpo_sub2: CertificateAuthority
        cps: CertificateAuthority | None = None

    leaf_ca = CertificateAuthority(cps.leaf, cps.signer, PROFILES["cpsLeaf"], CPO_IDENTITY,
                                   (cps.sub2.certificate, cps.sub1.certificate, cps.root.certificate))
    signed = exi.sa_from_material(Material(cps.sub2, leaf_ca))
    assert signed.signer is cps.signer and signed.chain_der == cps.sa.chain_der  # root left out
    unsigned = exi.sa_from_material(Material(cps.sub2))
    assert unsigned.signer is None
    assert unsigned.chain_der == (_der(cps.sub2.certificate), _der(cps.sub1.certificate))


def test_missing_codec_is_a_clear_not_enabled(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(exi.JAR_ENV, str(tmp_path / "absent.jar"))
    assert "EXI codec jar missing" in (exi.unavailable_reason() or "")
    with pytest.raises(PncRejection) as info:
        exi.ExiCodec()
    assert info.value.reason is Reason.NOT_ENABLED and "scripts/setup.sh" in info.value.detail
