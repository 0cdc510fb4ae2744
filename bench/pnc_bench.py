"""Plug & Charge core throughput: contract issuances/s and OCSP answers/s on one core.

    .venv/bin/python bench/pnc_bench.py [--seconds 3] [--quick]   (--quick: 1 s per figure)

Pure CPU, no services.  In the same run it measures:
- baseline: bare P-256 ECDSA-SHA256 signatures per second (the unit of work every
  figure below contains at least once), best of 3 windows;
- contract issuance: ``provisioning.install_contract`` end to end -- OEM chain
  verification (explicit checks + cryptography's RFC 5280 verifier), contract key
  generation, ECDH/ConcatKDF/AES-128-CBC key encryption, certificate signing by MO
  sub-CA 2 -- and the issuance alone (``issue_contract``, chain already verified);
- OCSP: ``OcspResponder.respond_der`` from a DER request (parse, look-up, build,
  sign), registry holding 100,000 issued serials with 1 % revoked.
Pinned to one core (``os.sched_setaffinity``) where the OS allows.  Prints ONE line:
each rate and its ratio to the baseline (machines are noisy; the ratios are what
to compare across runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

from chargeverse.pnc.ca import build_mo_hierarchy, create_root, issue_contract_certificate  # noqa: E402
from chargeverse.pnc.emaid import generate as generate_emaid  # noqa: E402
from chargeverse.pnc.profiles import PROFILES, Identity  # noqa: E402
from chargeverse.pnc.provisioning import install_contract, issue_contract  # noqa: E402
from chargeverse.pnc.revocation import OcspResponder, Revocation, RevocationCause, RevocationRegistry  # noqa: E402
from chargeverse.pnc.signer import SoftwareSigner  # noqa: E402


def rate(fn, seconds: float, repeats: int = 3) -> float:  # noqa: ANN001
    """Best-of-``repeats`` calls per second over windows of ``seconds / repeats``."""
    best = 0.0
    window = seconds / repeats
    for _ in range(repeats):
        n = 0
        start = time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= window:
                break
        best = max(best, n / elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    ap.add_argument("--quick", action="store_true", help="1 s per figure")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    pinned = "unpinned"
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
            pinned = "1 core"
        except OSError:
            pass

    now = dt.datetime.now(dt.UTC)
    ident = Identity("Bench eMSP", "GB", "http://ocsp.bench/", "http://pki.bench/sub2.cer")
    mo = build_mo_hierarchy(ident, now=now, root_signer=SoftwareSigner.generate(),
                            sub_ca1_signer=SoftwareSigner.generate(), sub_ca2_signer=SoftwareSigner.generate())
    oem_root = create_root("oemRootCA", ident, SoftwareSigner.generate(), now=now)
    oem1 = oem_root.issue_sub_ca("oemSubCA1", SoftwareSigner.generate(), now=now)
    oem2 = oem1.issue_sub_ca("oemSubCA2", SoftwareSigner.generate(), now=now)
    oem_key = ec.generate_private_key(ec.SECP256R1())
    oem_leaf = oem2.issue(PROFILES["oemLeaf"], oem_key.public_key(), now=now, common_name="WMI00000000000001")
    oem_leaf_der = oem_leaf.public_bytes(serialization.Encoding.DER)
    oem_subs = [oem2.certificate, oem1.certificate]
    emaid = generate_emaid("DE", "8EO")

    # Registry: 100k issued serials, 1 % revoked; plus one real certificate to ask about.
    registry = RevocationRegistry()
    key_id = mo.sub_ca2.key_identifier.hex()
    rng = random.Random(7)
    for _ in range(100_000):
        serial = rng.getrandbits(159)
        registry.apply_issued(key_id, serial)
        if rng.random() < 0.01:
            registry.apply_revoked(key_id, Revocation(serial, now, RevocationCause.ACCOUNT_CLOSED))
    cert = issue_contract_certificate(mo.sub_ca2, emaid, ec.generate_private_key(ec.SECP256R1()).public_key(), now=now)
    registry.apply_issued(key_id, cert.serial_number)
    responder = OcspResponder([mo.sub_ca2, mo.sub_ca1], registry)
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, mo.sub_ca2.certificate, hashes.SHA256()).build()
    request_der = request.public_bytes(serialization.Encoding.DER)
    assert ocsp.load_der_ocsp_response(responder.respond_der(request_der, now=now)).certificate_status is ocsp.OCSPCertStatus.GOOD

    sign_key = ec.generate_private_key(ec.SECP256R1())
    baseline = rate(lambda: sign_key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256())), seconds)
    install = rate(lambda: install_contract(mo, emaid, oem_leaf_der, oem_subs, [oem_root.certificate], now=now), seconds)
    issue_only = rate(lambda: issue_contract(mo, emaid, oem_leaf, now=now), seconds)
    ocsp_rate = rate(lambda: responder.respond_der(request_der, now=now), seconds)

    print(
        f"pnc ({pinned}, {seconds:g}s/figure): baseline P-256 sign {baseline:,.0f}/s | "
        f"contract install (verify OEM chain+keygen+encrypt+sign) {install:,.0f}/s = {install / baseline:.3f}x baseline | "
        f"contract issue only {issue_only:,.0f}/s = {issue_only / baseline:.3f}x | "
        f"OCSP answers {ocsp_rate:,.0f}/s = {ocsp_rate / baseline:.3f}x"
    )


if __name__ == "__main__":
    main()
