"""`cv pnc ...`: the operator's Plug & Charge commands (same service as the API; events on `pnc`).

  cv pnc init                                  create (or load) the MO, CPO and CPS CA material, print the roots
                                                (an older directory gets its CPS chain here, or at any load)
  cv pnc trust-root --kind OEM FILE.pem         trust an OEM (or V2G/MO) root
  cv pnc trust-root --kind OEM_SUB FILE.pem     register an OEM provisioning sub-CA in the pool (cars send only
                                                their leaf; the pool completes the path to a trusted OEM root)
  cv pnc import-cps --chain FILE --key FILE     sign responses with a CPS leaf issued under someone else's V2G
                                                root (key password, if any, from CV_PNC_CPS_KEY_PASSWORD)
  cv pnc enrol --account ID --pcid PCID         enrol a car under the account's eMAID
  cv pnc issue --emaid E --oem-cert F.pem      issue a contract for a car's OEM provisioning certificate (offline
                                                path: writes the CVX1 response the car would get)
  cv pnc revoke (--emaid E | --serial HEX) --cause CAUSE
  cv pnc status (--emaid E | --serial HEX | --account ID)
  cv pnc crl [--out FILE]                       the current CRL (DER)
  cv pnc csr --out FILE [--new-key]             CSR for our MO sub-CA 1, for an external V2G/MO root to sign
  cv pnc import-subca --cert FILE --root FILE   adopt the issued sub-CA 1, new sub-CA 2 under it, switch to it
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from chargeverse.pnc.errors import PncRejection


def _svc() -> Any:
    from edges.pnc.service import shared

    return shared()


def _run(fn: Any) -> int:
    try:
        out = fn()
    except PncRejection as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if out is not None:
        print(json.dumps(out, default=str, indent=2))
    return 0


def cmd_init(a: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    def go() -> dict[str, Any]:
        m = _svc().material
        return {"ca_dir": str(__import__("edges.pnc.material", fromlist=["ca_dir"]).ca_dir(_svc().settings)),
                "ocsp_url": m.identity.ocsp_url,
                "mo_root": m.mo_root.public_bytes(serialization.Encoding.PEM).decode(),
                "v2g_root": m.v2g_root.public_bytes(serialization.Encoding.PEM).decode(),
                "cps": None if m.cps is None else {
                    "leaf": m.cps.certificate.subject.rfc4514_string(),
                    "serial": format(m.cps.certificate.serial_number, "x"),
                    "not_after": m.cps.not_after.isoformat(),
                    "root": m.cps.chain[-1].subject.rfc4514_string()}}
    return _run(go)


def cmd_import_cps(a: argparse.Namespace) -> int:
    """No database or broker needed: only the CA directory and the key-encryption key."""
    import os

    from edges.pnc import material

    def go() -> dict[str, Any]:
        password = os.environ.get("CV_PNC_CPS_KEY_PASSWORD")
        out = material.import_cps(_settings(), Path(a.chain).read_bytes(), Path(a.key).read_bytes(),
                                  key_password=password.encode() if password else None)
        out["next"] = "restart the API and the OCPP edge so they sign with it; the key file can be deleted now"
        return out
    return _run(go)


def cmd_issue(a: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from chargeverse.pnc import exi_standin

    def go() -> dict[str, Any]:
        cert = x509.load_pem_x509_certificate(Path(a.oem_cert).read_bytes())
        subs = [x509.load_pem_x509_certificate(Path(f).read_bytes()).public_bytes(serialization.Encoding.DER)
                for f in a.oem_sub or []]
        exi = exi_standin.encode_request_installation(cert.public_bytes(serialization.Encoding.DER), subs)
        return _svc().get_15118_ev_certificate({"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
                                                 "action": "Install",
                                                 "exiRequest": base64.b64encode(exi).decode()}, "cli")
    return _run(go)


def _settings() -> Any:
    from chargeverse.settings import get_settings

    return get_settings()


def cmd_csr(a: argparse.Namespace) -> int:
    """No database or broker needed: only the CA directory and the key-encryption key."""
    from edges.pnc import material

    def go() -> dict[str, Any]:
        s = _settings()
        pem = material.sub_ca_csr(s, new_key=a.new_key)
        Path(a.out).write_bytes(pem)
        return {"csr": str(a.out), "subject_profile": "moSubCA1 (CA, pathlen 1, keyCertSign + cRLSign, DC=MO)",
                "pending_key": str(material.ca_dir(s) / material.PENDING_KEY),
                "next": "have the external V2G/MO root sign it, then: cv pnc import-subca --cert ISSUED.pem "
                        "--root ROOT.pem"}
    return _run(go)


def cmd_import_subca(a: argparse.Namespace) -> int:
    from edges.pnc import material

    def go() -> dict[str, Any]:
        out = material.import_sub_ca(_settings(), Path(a.cert).read_bytes(), Path(a.root).read_bytes())
        out["next"] = ("restart the API and the OCPP edge so they load the new chain; give partners and car makers "
                       "the external root")
        return out
    return _run(go)


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("pnc", help="Plug & Charge: CA material, enrolment, contracts, revocation, CRL")
    ps = sp.add_subparsers(dest="pnc_cmd", required=True)
    x = ps.add_parser("init", help="create or load the CA material; print the roots and the OCSP URL")
    x.set_defaults(fn=cmd_init)
    x = ps.add_parser("trust-root", help="trust a root certificate (PEM)")
    x.add_argument("pem")
    x.add_argument("--kind", choices=("OEM", "V2G", "MO", "OEM_SUB"), required=True,
                   help="OEM_SUB: an OEM provisioning sub-CA for the pool (not a trust anchor)")
    x.set_defaults(fn=lambda a: _run(lambda: _svc().add_trusted_root(Path(a.pem).read_bytes(), a.kind, "cli")))
    x = ps.add_parser("enrol", help="enrol a car (PCID) under an account's eMAID")
    x.add_argument("--account", required=True)
    x.add_argument("--pcid", required=True)
    x.set_defaults(fn=lambda a: _run(lambda: _svc().enrol(a.account, a.pcid, "cli")))
    x = ps.add_parser("issue", help="issue a contract for an enrolled car's OEM provisioning certificate")
    x.add_argument("--oem-cert", required=True)
    x.add_argument("--oem-sub", action="append", help="OEM sub-CA certificates (PEM), nearest first")
    x.set_defaults(fn=cmd_issue)
    x = ps.add_parser("revoke", help="revoke a contract (serial) or every good contract of an eMAID")
    g = x.add_mutually_exclusive_group(required=True)
    g.add_argument("--emaid")
    g.add_argument("--serial")
    x.add_argument("--cause", required=True, choices=("account_closed", "vehicle_sold", "key_compromise",
                                                      "superseded", "ca_compromise"))
    x.add_argument("--comment")
    x.set_defaults(fn=lambda a: _run(lambda: _svc().revoke(cause=a.cause, requested_by="cli", emaid=a.emaid,
                                                           serial=a.serial, comment=a.comment)))
    x = ps.add_parser("status", help="contract certificates with their status")
    g = x.add_mutually_exclusive_group(required=True)
    g.add_argument("--emaid")
    g.add_argument("--serial")
    g.add_argument("--account")
    x.set_defaults(fn=lambda a: _run(lambda: _svc().certificates(emaid=a.emaid, serial=a.serial,
                                                                 account_id=a.account)))
    x = ps.add_parser("csr", help="write a CSR for our MO sub-CA 1, for an external V2G/MO root to sign")
    x.add_argument("--out", required=True, help="where to write the CSR (PEM)")
    x.add_argument("--new-key", action="store_true", help="discard a pending CSR key and make a new one")
    x.set_defaults(fn=cmd_csr)
    x = ps.add_parser("import-subca", help="adopt the MO sub-CA 1 certificate an external root issued for our CSR "
                      "and issue contracts under that root from now on")
    x.add_argument("--cert", required=True, help="the issued MO sub-CA 1 certificate (PEM)")
    x.add_argument("--root", required=True, help="the external root certificate (PEM)")
    x.set_defaults(fn=cmd_import_subca)
    x = ps.add_parser("import-cps", help="sign Get15118EVCertificate responses with a CPS leaf issued under "
                      "an external V2G root")
    x.add_argument("--chain", required=True, help="PEM: the CPS leaf, its sub-CAs, then the V2G root")
    x.add_argument("--key", required=True, help="PEM: the CPS leaf's private key (P-256)")
    x.set_defaults(fn=cmd_import_cps)
    x = ps.add_parser("crl", help="write the current CRL (DER) to --out or stdout")
    x.add_argument("--out")

    def crl(a: argparse.Namespace) -> int:
        der = _svc().crl()
        if a.out:
            Path(a.out).write_bytes(der)
            print(f"CRL written to {a.out} ({len(der)} bytes)")
        else:
            sys.stdout.buffer.write(der)
        return 0
    x.set_defaults(fn=crl)
