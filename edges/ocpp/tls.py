"""TLS for OCPP security profiles 2 and 3 (OCPP 1.6 security whitepaper, OCPP 2.0.1 Part 2 A00).

- Profile 2: TLS with a server certificate; the charger authenticates with HTTP Basic as in profile 1.
- Profile 3: mutual TLS; the charger presents a client certificate issued by the configured charger CA whose
  subject CN (or a DNS/URI subjectAltName) equals its charge point id.  No password.

One TLS listener serves both: the client certificate is optional at the TLS layer (`CERT_OPTIONAL`), so a
profile-2 charger without one connects, while a certificate that *is* presented must chain to the charger CA or
the TLS handshake fails (a wrong certificate never reaches HTTP).  Whether a profile-3 charger really presented a
certificate, and whether its name matches the id in the URL, is decided at the HTTP upgrade
(credentials.admit).  TLS 1.2 is the minimum, as both specifications require.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TlsConfig:
    """How to serve wss://.  Proposed settings (chargeverse/settings.py): `ocpp_tls_port`,
    `ocpp_tls_cert_file`, `ocpp_tls_key_file`, `ocpp_tls_charger_ca_file`."""

    cert_file: Path  # the CSMS server certificate chain (PEM), CN/SAN = the host chargers connect to
    key_file: Path
    #: CA (PEM bundle) that issues charger client certificates; None: profile 3 is not offered
    charger_ca_file: Path | None = None
    #: port of the wss:// listener; None: the edge's `ocpp_port` (then no plain ws:// listener)
    port: int | None = None
    host: str | None = None

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        if self.charger_ca_file is not None:
            ctx.load_verify_locations(cafile=str(self.charger_ca_file))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class Transport:
    """What the connection's transport proves: TLS or not, and the names of a verified client certificate."""

    tls: bool
    client_names: frozenset[str] | None = None  # None: no client certificate


def certificate_names(peercert: dict[str, Any] | None) -> frozenset[str] | None:
    """Subject CNs and DNS/URI subjectAltNames of a verified peer certificate (ssl's getpeercert() dict)."""
    if not peercert:
        return None
    names: set[str] = set()
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.add(value)
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "URI"):
            names.add(value)
    return frozenset(names)


def transport_of(connection: Any) -> Transport:
    transport = getattr(connection, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return Transport(False)
    return Transport(True, certificate_names(ssl_object.getpeercert()))
