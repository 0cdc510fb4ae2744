"""`cv pnc ...`: the operator's Plug & Charge commands (same service as the API; events on `pnc`).

  cv pnc init                                  create (or load) the MO and CPO CA material, print the roots
  cv pnc trust-root --kind OEM FILE.pem         trust an OEM (or V2G/MO) root
  cv pnc enrol --account ID --pcid PCID         enrol a car under the account's eMAID
  cv pnc issue --emaid E --oem-cert F.pem      issue a contract for a car's OEM provisioning certificate (offline
                                                path: writes the CVX1 response the car would get)
  cv pnc revoke (--emaid E | --serial HEX) --cause CAUSE
  cv pnc status (--emaid E | --serial HEX | --account ID)
  cv pnc crl [--out FILE]                       the current CRL (DER)
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
                "v2g_root": m.v2g_root.public_bytes(serialization.Encoding.PEM).decode()}
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


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("pnc", help="Plug & Charge: CA material, enrolment, contracts, revocation, CRL")
    ps = sp.add_subparsers(dest="pnc_cmd", required=True)
    x = ps.add_parser("init", help="create or load the CA material; print the roots and the OCSP URL")
    x.set_defaults(fn=cmd_init)
    x = ps.add_parser("trust-root", help="trust a root certificate (PEM)")
    x.add_argument("pem")
    x.add_argument("--kind", choices=("OEM", "V2G", "MO"), required=True)
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
