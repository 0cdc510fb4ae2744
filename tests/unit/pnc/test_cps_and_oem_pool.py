"""The CPS chain that signs Get15118EVCertificate responses (edges/pnc/material.py, chargeverse/pnc/cps.py) and
the OEM provisioning sub-CA pool that completes a car's leaf-only chain (chargeverse/pnc/chain.py).

CA directories are real (tmp_path, encrypted keys, the `cv` CLI in this process); no database or broker."""

from __future__ import annotations

import datetime as dt
import base64
import hashlib
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargeverse.cli import main as cv
from chargeverse.pnc import cps as pnc_cps
from chargeverse.pnc import exi
from chargeverse.pnc.ca import MoHierarchy, check_ca_profile, create_root
from chargeverse.pnc.chain import complete_from_pool, verify_chain
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.profiles import PROFILES, Identity
from chargeverse.pnc.provisioning import contract_private_key_matches, decrypt_private_key, install_contract
from chargeverse.pnc.signer import SoftwareSigner
from chargeverse.settings import Settings, get_settings
from edges.pnc import material
from edges.pnc.service import _signature_checked
from pnc_fixtures import NOW, OemPki, make_oem

KEK = "another long test key-encryption key"
DAY = dt.timedelta(days=1)


@pytest.fixture
def ca_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CV_PNC_CA_DIR", str(tmp_path / "ca"))
    monkeypatch.setenv("CV_PNC_CA_KEY_ENCRYPTION_KEY", KEK)
    monkeypatch.setenv("CV_PNC_ORGANIZATION", "Chargeverse eMSP")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _files(d: Path, *names: str) -> dict[str, str]:
    return {n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in names if (d / n).exists()}


MO_CPO_FILES = tuple(f"{n}.{e}" for n in material.MO + material.CPO for e in ("crt", "key"))
CPS_FILES = tuple(f"{n}.{e}" for n in material.CPS for e in ("crt", "key"))


# ---- our own CPS chain ---------------------------------------------------------------------------------------------
def test_init_makes_a_cps_chain_under_our_v2g_root_and_responses_are_signed_with_it(ca_env: Settings) -> None:
    m = material.load_or_create(ca_env)
    assert m.cps is not None
    leaf, sub2, sub1, root = m.cps.path_to_root
    assert root == m.v2g_root
    assert [_cn(c) for c in (leaf, sub2, sub1)] == ["CPS Leaf", "ProvSubCA2", "ProvSubCA1"]
    check_ca_profile(sub1, "cpsSubCA1")
    check_ca_profile(sub2, "cpsSubCA2")
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert verify_chain(leaf, [sub2, sub1], [m.v2g_root], now=NOW + DAY)[-1] == m.v2g_root
    d = material.ca_dir(ca_env)
    for name in CPS_FILES[1::2]:  # every key, encrypted at rest like the MO and CPO keys
        assert (d / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")

    # exi.sa_from_material picks it: the CPS leaf and its sub-CAs (root left out), and its signer
    sa = exi.sa_from_material(m)
    assert sa.signer is m.cps.signer
    assert [x509.load_der_x509_certificate(c) for c in sa.chain_der] == [leaf, sub2, sub1]


def test_a_directory_made_before_the_cps_chain_gets_one_at_load_and_keeps_everything_else(
        ca_env: Settings, caplog: pytest.LogCaptureFixture) -> None:
    material.load_or_create(ca_env)
    d = material.ca_dir(ca_env)
    for name in CPS_FILES:
        (d / name).unlink()  # what a CA directory of the previous release looks like
    before = _files(d, *MO_CPO_FILES)
    with caplog.at_level(logging.WARNING, "edges.pnc.material"):
        m = material.load_or_create(ca_env)
    assert m.cps is not None and m.cps.chain[-1] == m.v2g_root
    assert "making a new one" in caplog.text and "cps_sub1.crt missing" in caplog.text  # the first file it looks for
    assert _files(d, *MO_CPO_FILES) == before  # the MO and CPO chains are untouched
    again = material.load_or_create(ca_env)  # made once: the next load uses it
    assert again.cps is not None and again.cps.certificate == m.cps.certificate


def test_the_cps_leaf_is_renewed_before_it_expires_and_a_half_replaced_chain_is_remade(ca_env: Settings) -> None:
    first = material.load_or_create(ca_env, now=NOW)
    assert first.cps is not None
    kept = material.load_or_create(ca_env, now=NOW + 50 * DAY).cps
    assert kept is not None and kept.certificate == first.cps.certificate
    later = NOW + 70 * DAY  # the 90-day leaf has 20 days left: renewed (30 days ahead)
    renewed = material.load_or_create(ca_env, now=later).cps
    assert renewed is not None and renewed.certificate != first.cps.certificate
    pnc_cps.check(renewed, now=later, margin=pnc_cps.RENEW_BEFORE, trusted_roots=[first.v2g_root])

    d = material.ca_dir(ca_env)  # a crash half-way through writing: the leaf of one chain, sub-CAs of another
    (d / "cps_leaf.crt").write_bytes(first.cps.certificate.public_bytes(serialization.Encoding.PEM))
    remade = material.load_or_create(ca_env, now=later).cps
    assert remade is not None
    pnc_cps.check(remade, now=later, trusted_roots=[first.v2g_root])


def test_cps_check_refuses_what_a_car_would_refuse(ca_env: Settings) -> None:
    m = material.load_or_create(ca_env)
    assert m.cps is not None
    other = SoftwareSigner.generate()
    with pytest.raises(PncRejection) as e:
        pnc_cps.check(pnc_cps.SigningLeaf(m.cps.certificate, other, m.cps.chain), now=NOW + DAY)
    assert e.value.reason is Reason.KEY_MISMATCH
    with pytest.raises(PncRejection) as e:
        pnc_cps.check(m.cps, now=m.cps.not_after + DAY)
    assert e.value.reason is Reason.EXPIRED
    with pytest.raises(PncRejection) as e:  # a chain with a sub-CA missing does not reach the root
        pnc_cps.check(pnc_cps.SigningLeaf(m.cps.certificate, m.cps.signer, m.cps.chain[1:]), now=NOW + DAY)
    assert e.value.reason in (Reason.WRONG_ISSUER, Reason.UNTRUSTED_CHAIN)


# ---- a CPS chain under someone else's V2G root (cv pnc import-cps) -------------------------------------------------
def _external_cps(now: dt.datetime) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    ident = Identity("Some V2G PKI", "DE", "http://ocsp.v2g.test/", "http://pki.v2g.test/ca")
    root = create_root("v2gRootCA", ident, SoftwareSigner.generate(), now=now - DAY)
    sub1 = root.issue_sub_ca("cpsSubCA1", SoftwareSigner.generate(), now=now - DAY)
    sub2 = sub1.issue_sub_ca("cpsSubCA2", SoftwareSigner.generate(), now=now - DAY)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = sub2.issue(PROFILES["cpsLeaf"], key.public_key(), now=now - DAY)
    return [leaf, sub2.certificate, sub1.certificate, root.certificate], key


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def test_import_cps_signs_with_the_external_leaf_and_never_replaces_it(
        ca_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    material.load_or_create(ca_env)
    d = material.ca_dir(ca_env)
    chain, key = _external_cps(NOW)
    (tmp_path / "chain.pem").write_bytes(_pem(*chain))
    (tmp_path / "wrong.key").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    before = _files(d, *CPS_FILES, material.CPS_ROOT)
    args = ["pnc", "import-cps", "--chain", str(tmp_path / "chain.pem"), "--key"]
    assert cv([*args, str(tmp_path / "wrong.key")]) == 2
    assert "KeyMismatch" in capsys.readouterr().err
    assert _files(d, *CPS_FILES, material.CPS_ROOT) == before  # a refusal changes nothing

    (tmp_path / "cps.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    assert cv([*args, str(tmp_path / "cps.key")]) == 0, capsys.readouterr().err
    assert (d / "cps_leaf.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    m = material.load_or_create(ca_env)
    assert m.cps is not None and m.cps.path_to_root == chain
    assert exi.sa_from_material(m).signer is m.cps.signer

    # close to expiry we warn but keep signing (we hold no sub-CA key to renew it); once expired, unsigned
    with caplog.at_level(logging.WARNING, "edges.pnc.material"):
        near = material.load_or_create(ca_env, now=NOW + 75 * DAY)
        assert near.cps is not None and near.cps.certificate == chain[0]
        assert "cv pnc import-cps" in caplog.text
        gone = material.load_or_create(ca_env, now=NOW + 100 * DAY)
    assert gone.cps is None and "UNSIGNED" in caplog.text
    assert exi.sa_from_material(gone).signer is None
    assert (d / "cps_leaf.crt").read_bytes() == _pem(chain[0])  # still the imported one


# ---- the OEM provisioning sub-CA pool ------------------------------------------------------------------------------
def test_a_leaf_only_request_verifies_through_the_pool_and_issues(mo: MoHierarchy, oem: OemPki) -> None:
    other = make_oem()  # another car maker's sub-CAs in the pool do not get in the way
    pool = [other.sub1.certificate, oem.sub1.certificate, other.sub2.certificate, oem.sub2.certificate]
    roots = [other.root.certificate, oem.root.certificate]
    subs = complete_from_pool(oem.leaf, [], pool, roots)
    assert subs == oem.subs  # nearest first: OEMSubCA2, OEMSubCA1
    issued = install_contract(mo, "DE-8EO-C12345678-6", oem.leaf, subs, roots, now=NOW)
    key = decrypt_private_key(issued.encrypted_private_key, oem.leaf_key, issued.dh_public_key)
    assert contract_private_key_matches(issued.contract_certificate, key)
    # what the request did carry is kept, the pool only adds what is missing
    assert complete_from_pool(oem.leaf, [oem.sub2.certificate], pool, roots) == oem.subs


def test_a_leaf_whose_sub_ca_is_not_registered_is_refused_with_cert_chain_error(oem: OemPki) -> None:
    roots = [oem.root.certificate]
    with pytest.raises(PncRejection) as e:
        complete_from_pool(oem.leaf, [], [oem.sub1.certificate], roots)  # OEMSubCA2 was never registered
    assert e.value.reason is Reason.UNTRUSTED_CHAIN
    assert e.value.iso15118_response_code == "FAILED_CertChainError"
    assert "OEMSubCA2" in e.value.detail and "registered OEM sub-CA" in e.value.detail


def test_pool_sub_cas_are_not_trust_anchors_and_impostors_are_passed_over(mo: MoHierarchy, oem: OemPki) -> None:
    with pytest.raises(PncRejection) as e:  # a complete pool without the trusted root does not verify anything
        complete_from_pool(oem.leaf, [], [oem.sub2.certificate, oem.sub1.certificate], [])
    assert e.value.iso15118_response_code == "FAILED_CertChainError"
    # look-alike sub-CAs (same names, other keys) are not chosen
    ident = Identity("Example Motors", "DE", "http://ocsp.oem.test/", "http://pki.oem.test/oem.cer")
    fake_root = create_root("oemRootCA", ident, SoftwareSigner.generate(), now=NOW - DAY)
    fake1 = fake_root.issue_sub_ca("oemSubCA1", SoftwareSigner.generate(), now=NOW - DAY)
    fake2 = fake1.issue_sub_ca("oemSubCA2", SoftwareSigner.generate(), now=NOW - DAY)
    pool = [fake2.certificate, oem.sub2.certificate, fake1.certificate, oem.sub1.certificate]
    assert complete_from_pool(oem.leaf, [], pool, [oem.root.certificate]) == oem.subs
    # a pool path to a root nobody trusts ends in the same refusal
    with pytest.raises(PncRejection) as e:
        complete_from_pool(oem.leaf, [], pool, [fake_root.certificate])
    assert e.value.reason is Reason.UNTRUSTED_CHAIN


def test_signature_checked_goes_into_events_only_for_real_exi_requests() -> None:
    from chargeverse.pnc import exi_standin

    assert _signature_checked(None) is None
    assert _signature_checked(exi_standin.InstallationRequest("id1", b"x", ())) is None
    for checked in (True, False):
        req = exi.RealInstallationRequest("id1", b"x", (), b"\x01" * 8, (), checked)
        assert _signature_checked(req) is checked


@pytest.mark.skipif(exi.unavailable_reason() is not None, reason=f"real EXI codec absent: {exi.unavailable_reason()}")
def test_a_real_exi_response_from_the_material_is_signed_by_the_cps_leaf_the_car_can_verify(
        ca_env: Settings, mo: MoHierarchy, oem: OemPki) -> None:
    m = material.load_or_create(ca_env)
    assert m.cps is not None
    stream = exi.encode_request_installation(oem.leaf.public_bytes(serialization.Encoding.DER), sign_with=oem.leaf_key)
    request = exi.decode_request(stream, "Install")
    issued = install_contract(mo, "DE-8EO-C12345678-6", oem.leaf, oem.subs, [oem.root.certificate], now=NOW)
    answer = exi.respond("Install", "OK", stream, request, exi.sa_from_material(m), chain_der=issued.chain_der(),
                         encrypted_private_key=issued.encrypted_private_key, dh_public_key=issued.dh_public_key,
                         emaid=issued.emaid)
    header, _, body = exi.decode_response(answer)
    sa = body["SAProvisioningCertificateChain"]
    cps_leaf = x509.load_der_x509_certificate(base64.b64decode(sa["Certificate"]))
    subs = [x509.load_der_x509_certificate(base64.b64decode(c))
            for c in sa["SubCertificates"]["Certificate"]]
    verify_chain(cps_leaf, subs, [m.v2g_root], now=NOW + DAY)  # the car trusts our V2G root
    exi.verify_signature(exi.default_codec(), header["Signature"], {n: body[n] for n in exi.SIGNED_ELEMENTS},
                         cps_leaf.public_key())  # type: ignore[arg-type]
