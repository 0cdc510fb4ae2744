"""OCPP security profiles 1-3 at the edge, all real: certificates made here with `cryptography`, a TLS edge in
this process (the `platform` edge serves ws:// for profile 1), chargers built on the `ocpp` package.

Test names carry the OCA test-case ids where one exists: OCPP 2.0.1 Part 6 TC_A_01/02/03_CSMS (Basic
authentication), TC_A_04_CSMS (TLS server certificate), TC_A_07_CSMS / TC_A_08_CSMS (client certificate valid /
invalid); OCPP 1.6 OCTT TC_086_CSMS (TLS server certificate)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.charge_point import camel_to_snake_case
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidHandshake, InvalidStatus

from chargeverse.simulator import boot
from edges.ocpp.examples import V16, V201
from edges.ocpp.tls import TlsConfig
from support import wait_for
from test_ocpp_support import (charger, edge_in_process, exchange, frames_of, raw_socket, register_charger,
                               registration_override, schema_errors, wait_frames)

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.timezone.utc)


# ---- a small PKI, made per test --------------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chargeverse test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def write(self, d: Path, stem: str) -> tuple[Path, Path]:
        c, k = d / f"{stem}.crt", d / f"{stem}.key"
        c.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        return c, k


def _ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert)


def _leaf(ca: Issued, cn: str, *, server: bool = False, expired: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = (NOW - dt.timedelta(days=10), NOW - dt.timedelta(days=1)) if expired else \
        (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=10))
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return Issued(key, b.sign(ca.key, hashes.SHA256()))


@dataclass
class Pki:
    dir: Path
    server_ca: Path
    tls: TlsConfig
    charger_ca: Issued

    def client(self, cn: str | None = None, *, ca: Issued | None = None, expired: bool = False) -> ssl.SSLContext:
        """A charger's TLS context: trusts our server CA; with `cn`, presents a client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if cn is not None:
            leaf = _leaf(ca or self.charger_ca, cn, expired=expired)
            cert, key = leaf.write(self.dir, f"client-{cn}-{id(leaf)}")
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    server_ca, charger_ca = _ca("test CSMS CA"), _ca("test charger CA")
    server_ca_pem, _ = server_ca.write(tmp_path, "server-ca")
    charger_ca_pem, _ = charger_ca.write(tmp_path, "charger-ca")
    cert, key = _leaf(server_ca, "localhost", server=True).write(tmp_path, "server")
    from chargeverse.stack import free_port

    return Pki(tmp_path, server_ca_pem, TlsConfig(cert, key, charger_ca_pem, port=free_port()), charger_ca)


def _wss(edge) -> str:  # noqa: ANN001
    return f"wss://127.0.0.1:{edge.tls_port}/ocpp"


def _basic(sid: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{secret}".encode()).decode()}


async def _refused_at_tls(url: str, ctx: ssl.SSLContext, protocol: str = "ocpp2.0.1") -> BaseException:
    """The connection fails in the TLS layer (never an HTTP answer)."""
    try:
        ws = await websockets.connect(url, subprotocols=[protocol], ssl=ctx, open_timeout=10)
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        assert not isinstance(exc, InvalidStatus), f"reached HTTP: {exc}"
        return exc
    await ws.close()
    raise AssertionError("a TLS connection with an invalid client certificate was accepted")


def _profiles(sid: str) -> list[int]:
    return [r["security_profile"] for r in frames_of(sid, "OcppConnection") if r["state"] == "CONNECTED"]


# ---- profile 1 ---------------------------------------------------------------------------------------------------
async def test_TC_A_01_02_03_CSMS_basic_authentication(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("A01", unique, version="ocpp2.0.1")
    other = register_charger("A02", unique, version="ocpp2.0.1")
    async with charger(platform.ocpp, spec) as cp:  # TC_A_01: valid username/password
        assert (await boot(cp, spec)).status == "Accepted"
    url = f"{platform.ocpp}/{spec.station_id}"
    for headers in (_basic(other.station_id, other.secret),  # TC_A_02: username is not the station's id
                    _basic(spec.station_id, "wrong-password-wrong-password"),  # TC_A_03: invalid password
                    {}):
        with pytest.raises(InvalidStatus) as exc:
            await websockets.connect(url, subprotocols=["ocpp2.0.1"], additional_headers=headers)
        assert exc.value.response.status_code == 401
    assert wait_for("the connection recorded", lambda: _profiles(spec.station_id)) == [1]


async def test_certificate_operations_are_refused_on_profile_1(platform, unique) -> None:  # noqa: ANN001
    for version, examples in (("ocpp1.6", V16), ("ocpp2.0.1", V201)):
        spec = register_charger("CERT1", f"{unique}{version[-1]}", version=version)
        ws = await raw_socket(platform.ocpp, spec)
        try:
            ops = ["SignCertificate"] + (["Get15118EVCertificate", "GetCertificateStatus"]
                                         if version == "ocpp2.0.1" else [])
            for i, action in enumerate(ops):
                answer = await exchange(ws, [2, f"c{i}", action, examples[action]])
                assert answer[:3] == [4, f"c{i}", "SecurityError"], (version, action)
            assert (await exchange(ws, [2, "h", "Heartbeat", {}]))[0] == 3
        finally:
            await ws.close()


async def test_unknown_and_revoked_chargers_are_refused_at_the_handshake(platform, unique, pki) -> None:  # noqa: ANN001,E501
    spec = register_charger("REV", unique)
    mtls = register_charger("REV3", unique, version="ocpp2.0.1", profile=3)
    with pytest.raises(InvalidStatus) as exc:
        await websockets.connect(f"{platform.ocpp}/NOBODY-{unique}", subprotocols=["ocpp1.6"],
                                 additional_headers=_basic(f"NOBODY-{unique}", spec.secret))
    assert exc.value.response.status_code == 401
    async with edge_in_process(tls=pki.tls) as edge:
        with registration_override(spec.station_id, revoked=True), \
                registration_override(mtls.station_id, revoked=True):
            with pytest.raises(InvalidStatus) as exc:  # the right secret, but revoked
                await websockets.connect(f"{platform.ocpp}/{spec.station_id}", subprotocols=["ocpp1.6"],
                                         additional_headers=_basic(spec.station_id, spec.secret))
            assert exc.value.response.status_code == 401
            with pytest.raises(InvalidStatus) as exc:  # a valid certificate, but revoked
                await websockets.connect(f"{_wss(edge)}/{mtls.station_id}", subprotocols=["ocpp2.0.1"],
                                         ssl=pki.client(mtls.station_id))
            assert exc.value.response.status_code == 401
        async with charger(platform.ocpp, spec):  # revocation lifted: connects again
            pass
        async with charger(_wss(edge), mtls, ssl=pki.client(mtls.station_id)):
            pass


# ---- profile 2 ---------------------------------------------------------------------------------------------------
async def test_TC_A_04_CSMS_and_TC_086_CSMS_tls_with_a_server_certificate(platform, unique, pki) -> None:  # noqa: ANN001,E501
    s201 = register_charger("A04", unique, version="ocpp2.0.1", profile=2)
    s16 = register_charger("T086", unique, version="ocpp1.6", profile=2)
    async with edge_in_process(tls=pki.tls) as edge:
        for spec in (s201, s16):
            async with charger(_wss(edge), spec, ssl=pki.client()) as cp:
                assert (await boot(cp, spec)).status == "Accepted"
            with pytest.raises(InvalidStatus) as exc:  # the wrong secret over TLS
                await websockets.connect(f"{_wss(edge)}/{spec.station_id}", subprotocols=[spec.ocpp_version],
                                         ssl=pki.client(), additional_headers=_basic(spec.station_id, "x" * 20))
            assert exc.value.response.status_code == 401
            with pytest.raises(InvalidStatus) as exc:  # no downgrade: a profile-2 charger on plain ws://
                await websockets.connect(f"ws://127.0.0.1:{edge.port}/ocpp/{spec.station_id}",
                                         subprotocols=[spec.ocpp_version],
                                         additional_headers=_basic(spec.station_id, spec.secret))
            assert exc.value.response.status_code == 401
        # certificate requests are answered over TLS: Rejected until a signer is wired (schema-valid answers)
        ws = await raw_socket(_wss(edge), s201, ssl=pki.client())
        try:
            for i, action in enumerate(("SignCertificate", "Get15118EVCertificate", "GetCertificateStatus")):
                answer = await exchange(ws, [2, f"c{i}", action, V201[action]])
                assert answer[0] == 3 and schema_errors("ocpp2.0.1", action, answer[2]) == [], answer
                assert answer[2]["status"] in ("Rejected", "Failed")
                assert answer[2]["statusInfo"]["reasonCode"] == "NotEnabled"
        finally:
            await ws.close()
        async with charger(_wss(edge), s16, ssl=pki.client()) as cp:
            res = await cp.call(call16.SignCertificate(csr=V16["SignCertificate"]["csr"]), suppress=False)
            assert res.status == "Rejected"
    assert wait_for("connections recorded", lambda: len(p := _profiles(s201.station_id)) == 2 and p) == [2, 2]


# ---- profile 3 ---------------------------------------------------------------------------------------------------
async def test_TC_A_07_CSMS_mutual_tls_with_a_client_certificate(platform, unique, pki) -> None:  # noqa: ANN001
    spec = register_charger("A07", unique, version="ocpp2.0.1", profile=3)
    async with edge_in_process(tls=pki.tls) as edge:
        async with charger(_wss(edge), spec, ssl=pki.client(spec.station_id)) as cp:  # no password at all
            assert (await boot(cp, spec)).status == "Accepted"
            res = await cp.call(call201.SignCertificate(**camel_to_snake_case(V201["SignCertificate"])),
                                suppress=False)
            assert res.status == "Rejected"  # no signer wired yet (Plug & Charge / PKI)
    assert wait_for("the connection recorded", lambda: _profiles(spec.station_id)) == [3]
    ins, _ = wait_frames(spec.station_id, 4)
    assert [i["action"] for i in ins] == ["BootNotification", "StatusNotification", "StatusNotification",
                                          "SignCertificate"]


async def test_TC_A_08_CSMS_invalid_client_certificates_are_refused(platform, unique, pki) -> None:  # noqa: ANN001
    spec = register_charger("A08", unique, version="ocpp2.0.1", profile=3)
    other = register_charger("A08X", unique, version="ocpp2.0.1", profile=3)
    async with edge_in_process(tls=pki.tls) as edge:
        url = f"{_wss(edge)}/{spec.station_id}"
        await _refused_at_tls(url, pki.client(spec.station_id, ca=_ca("rogue CA")))  # unknown issuer
        await _refused_at_tls(url, pki.client(spec.station_id, expired=True))  # expired
        for ctx in (pki.client(other.station_id),  # CN of another charging station
                    pki.client()):  # no certificate: profile 3 cannot fall back to 2
            with pytest.raises(InvalidStatus) as exc:
                await websockets.connect(url, subprotocols=["ocpp2.0.1"], ssl=ctx)
            assert exc.value.response.status_code == 401
        async with charger(_wss(edge), spec, ssl=pki.client(spec.station_id)) as cp:  # the valid one still works
            assert (await boot(cp, spec)).status == "Accepted"
    assert json.loads(wait_frames(spec.station_id, 1)[1][0]["raw"])[2]["status"] == "Accepted"
