"""Who connects with which security profile (edges/ocpp/credentials.py invariants), and what a client
certificate names."""

from __future__ import annotations

import base64

import pytest

from edges.ocpp.credentials import Registration, basic_credentials, profile_for
from edges.ocpp.tls import Transport, certificate_names

PLAIN, TLS = Transport(False), Transport(True)


def cert(*names: str) -> Transport:
    return Transport(True, frozenset(names))


def reg(profile: int, **kw: object) -> Registration:
    return Registration("hash" if profile in (1, 2) else None, profile, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("registered, transport, expected", [
    (1, PLAIN, (1, True)),
    (1, TLS, (2, True)),  # a stronger transport is fine
    (1, cert("CP-1"), (3, False)),
    (2, PLAIN, None),  # downgrade refused
    (2, TLS, (2, True)),
    (2, cert("CP-1"), (3, False)),
    (3, PLAIN, None),
    (3, TLS, None),  # profile 3 without its certificate
    (3, cert("CP-1"), (3, False)),
    (3, cert("CP-2"), None),  # someone else's certificate
    (1, cert("CP-2"), None),
    (0, PLAIN, (0, False)),
])
def test_profile_policy(registered, transport, expected) -> None:  # noqa: ANN001
    profile, reason, needs_password = profile_for("CP-1", reg(registered), transport)
    if expected is None:
        assert profile is None and reason
    else:
        assert (profile, needs_password) == expected


def test_unknown_and_revoked_chargers_are_refused_before_anything_else() -> None:
    assert profile_for("CP-1", None, cert("CP-1"))[:2] == (None, "unknown charge point")
    assert profile_for("CP-1", reg(3, revoked=True), cert("CP-1"))[:2] == (None, "registration revoked")
    assert profile_for("CP-1", reg(0, revoked=True), PLAIN)[0] is None


def test_basic_credentials_parsing() -> None:
    enc = base64.b64encode(b"CP-1:s3cret:with:colons").decode()
    assert basic_credentials(f"Basic {enc}") == ("CP-1", "s3cret:with:colons")
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer x") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"no-colon").decode()) is None


def test_certificate_names_are_the_cns_and_dns_or_uri_sans() -> None:
    peer = {"subject": ((("countryName", "NL"),), (("commonName", "CP-1"),)),
            "subjectAltName": (("DNS", "cp-1.example"), ("URI", "urn:cp:CP-1"), ("IP Address", "10.0.0.1"))}
    assert certificate_names(peer) == {"CP-1", "cp-1.example", "urn:cp:CP-1"}
    assert certificate_names({}) is None and certificate_names(None) is None
