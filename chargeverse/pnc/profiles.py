"""Certificate profiles of the ISO 15118-2 PKI, as data.

Why data and not code: the shape of each certificate (basic constraints, key
usages, which ones carry an OCSP URL, the DC role tag) is dictated by ISO 15118-2
and reproduced by the reference test PKI in ``shared/data/pki/*.cnf``.  Keeping
them in one table makes the "matches the profiles" claim checkable: a test parses
the OpenSSL configs and compares them field by field with ``PROFILES``.

Names (O, C) and URLs are deployment settings and are passed in as an
``Identity``; validity defaults are those of the reference PKI's
``create_certs.sh`` and can be overridden per issuance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

# OpenSSL keyUsage names -> cryptography.x509.KeyUsage keyword arguments.
KEY_USAGE_FIELDS = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
}


@dataclass(frozen=True, slots=True)
class CertProfile:
    """What one kind of certificate looks like (one ``*.cnf`` file)."""

    name: str
    domain_component: str  # the ISO 15118 role tag: V2G, MO, CPO, CPS, OEM, ...
    default_common_name: str | None  # None: CN is per-certificate (eMAID, station id)
    is_ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    validity_days: int
    with_aia: bool = False  # OCSP + caIssuers URLs in Authority Information Access
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    ocsp_no_check: bool = False

    def key_usage_extension(self) -> x509.KeyUsage:
        unknown = self.key_usage - KEY_USAGE_FIELDS.keys()
        if unknown:
            raise ValueError(f"unknown key usage {sorted(unknown)}")
        kwargs = {v: (k in self.key_usage) for k, v in KEY_USAGE_FIELDS.items()}
        return x509.KeyUsage(encipher_only=False, decipher_only=False, **kwargs)


@dataclass(frozen=True, slots=True)
class Identity:
    """Deployment-specific naming for the certificates we issue."""

    organization: str
    country: str  # ISO 3166-1 alpha-2 (the reference PKI's "UK" is not one; use GB)
    ocsp_url: str
    ca_issuers_url: str
    common_names: dict[str, str] = field(default_factory=dict)  # profile name -> CN override


_CA_KU = frozenset({"keyCertSign", "cRLSign"})

PROFILES: dict[str, CertProfile] = {
    p.name: p
    for p in (
        # Mobility operator chain (what we, the eMSP, run).
        CertProfile("moRootCA", "MO", "MORootCA", True, None, _CA_KU, 3650, with_aia=True),
        CertProfile("moSubCA1", "MO", "MOSubCA1", True, 1, _CA_KU, 1460, with_aia=True),
        CertProfile(
            "moSubCA2",
            "MO",
            "MOSubCA2",
            True,
            0,
            frozenset({"digitalSignature", "nonRepudiation", "keyCertSign", "cRLSign"}),
            1460,
            with_aia=True,
        ),
        CertProfile(
            "contractLeaf",
            "MO",
            None,
            False,
            None,
            frozenset({"digitalSignature", "nonRepudiation", "keyEncipherment", "keyAgreement"}),
            730,
            with_aia=True,
        ),
        # V2G root and charge point operator chain (our own chargers).
        CertProfile("v2gRootCA", "V2G", "V2GRootCA", True, None, _CA_KU, 3650),
        CertProfile("cpoSubCA1", "V2G", "CPOSubCA1", True, 1, _CA_KU, 1460),
        CertProfile("cpoSubCA2", "V2G", "CPOSubCA2", True, 0, _CA_KU, 365),
        CertProfile("seccLeaf", "CPO", None, False, None, frozenset({"digitalSignature", "keyAgreement"}), 60),
        # Certificate provisioning service chain.
        CertProfile("cpsSubCA1", "CPS", "ProvSubCA1", True, 1, _CA_KU, 1460),
        CertProfile("cpsSubCA2", "CPS", "ProvSubCA2", True, 0, _CA_KU, 730),
        CertProfile("cpsLeaf", "CPS", "CPS Leaf", False, None, frozenset({"digitalSignature"}), 90),
        # OEM chain: built by tests to play the car maker's part.
        CertProfile("oemRootCA", "OEM", "OEMRootCA", True, None, _CA_KU, 3650),
        CertProfile("oemSubCA1", "OEM", "OEMSubCA1", True, 1, _CA_KU, 1460),
        CertProfile("oemSubCA2", "OEM", "OEMSubCA2", True, 0, _CA_KU, 1460),
        CertProfile("oemLeaf", "OEM", None, False, None, frozenset({"digitalSignature", "keyAgreement"}), 1460),
        # Not in the reference PKI: OCPP security profile 3 station client cert
        # (TLS client auth to our CSMS) and a delegated OCSP responder.
        CertProfile(
            "chargingStation",
            "CPO",
            None,
            False,
            None,
            frozenset({"digitalSignature", "keyAgreement"}),
            365,
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        ),
        CertProfile(
            "ocspResponder",
            "MO",
            "MOOCSPResponder",
            False,
            None,
            frozenset({"digitalSignature"}),
            90,
            extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
            ocsp_no_check=True,
        ),
    )
}


# ---------------------------------------------------------------- cnf reading


@dataclass(frozen=True, slots=True)
class CnfProfile:
    """The parts of an OpenSSL req/x509 config that define a certificate profile."""

    dn: dict[str, str]
    is_ca: bool
    path_length: int | None
    basic_constraints_critical: bool
    key_usage: frozenset[str]
    key_usage_critical: bool
    subject_key_identifier: bool
    ocsp_urls: tuple[str, ...]
    ca_issuers_urls: tuple[str, ...]


def _sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = sections.setdefault("", {})
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def parse_cnf(text: str) -> CnfProfile:
    """Read the ``[ca_dn]`` and ``[ext]`` sections of a reference-PKI config.

    Only the small subset of OpenSSL config syntax the ISO 15118 test PKI uses is
    understood; that is enough to compare profiles, which is all this is for.
    """
    sec = _sections(text)
    dn_section = sec.get("req", {}).get("distinguished_name", "ca_dn")
    ext = sec.get("ext", {})
    bc = [p.strip() for p in ext.get("basicConstraints", "").split(",") if p.strip()]
    ku = [p.strip() for p in ext.get("keyUsage", "").split(",") if p.strip()]
    path_length = next((int(p.split(":", 1)[1]) for p in bc if p.startswith("pathlen:")), None)
    ocsp: list[str] = []
    issuers: list[str] = []
    for item in ext.get("authorityInfoAccess", "").split(","):
        method, _, loc = item.strip().partition(";")
        url = loc.partition(":")[2]
        if method.strip() == "OCSP":
            ocsp.append(url)
        elif method.strip() == "caIssuers":
            issuers.append(url)
    return CnfProfile(
        dn=dict(sec.get(dn_section, {})),
        is_ca="CA:true" in bc,
        path_length=path_length,
        basic_constraints_critical="critical" in bc,
        key_usage=frozenset(k for k in ku if k != "critical"),
        key_usage_critical="critical" in ku,
        subject_key_identifier=ext.get("subjectKeyIdentifier") == "hash",
        ocsp_urls=tuple(ocsp),
        ca_issuers_urls=tuple(issuers),
    )
