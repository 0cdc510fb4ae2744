"""The Plug & Charge service: answers from the `pg.pnc` projection, decisions published on `pnc`.

Used by the OCPP 2.0.1 edge (Get15118EVCertificate, GetCertificateStatus, Authorize with certificate hash data,
SignCertificate), the API (OCSP responder, CRL, admin: enrol, revoke, trusted roots) and `cv pnc`.

Invariants:
- it never writes a projection: every issuance, renewal, revocation, status answer and refusal is an event on
  `pnc` (keyed by eMAID; station certificates by station id), and a requester is told "Accepted" only after the
  issuance event is acknowledged by the log (acks=all);
- no private key ever reaches the log or a log line: contract keys leave only encrypted to the car's key;
- every bad input ends in a spec-conformant refusal with a reason (chargeverse.pnc.errors.Reason) and a
  PncRequestRejected event carrying the raw request (truncated) -- nothing is lost, nothing crashes;
- OCSP says `good` only for serials the projection knows we issued; `unknown` otherwise.

Blocking by design: the methods are synchronous (psycopg pool, `publish_sync`).  The API calls them from its
thread pool; the OCPP edge calls them from its handlers, which the edge runs on its event loop (handlers are
synchronous there), so a PnC message holds that loop for one projection query (~1 ms) plus, for issuance, the
crypto (~3 ms) and one acknowledged publish.  PnC messages are rare next to the edge's traffic; the async
alternative needs a prepare hook in edges/ocpp/server.py (proposed in the report of this change).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from psycopg_pool import ConnectionPool

from chargeverse.events import envelope, utcnow
from chargeverse.kafka import EventProducer
from chargeverse.pnc import exi as pnc_exi
from chargeverse.pnc import exi_standin
from chargeverse.pnc.authorization import OCPP_CERTIFICATE_STATUS, certificate_status
from chargeverse.pnc.ca import CertificateAuthority
from chargeverse.pnc.chain import complete_from_pool
from chargeverse.pnc.emaid import CheckDigitPolicy
from chargeverse.pnc.emaid import parse as parse_emaid
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.provisioning import (ContractIssued, install_contract, load_certificate,
                                          parse_get15118ev_certificate, update_contract)
from chargeverse.pnc.revocation import (CertId, CertStatus, OcspResponder, Revocation, RevocationCause,
                                        RevocationRegistry, _issuer_hashes, build_crl, cert_id_from_ocpp,
                                        get_certificate_status)
from chargeverse.pnc.station_certs import CertificateSigningUse, check_csr, load_csr, sign_station_csr
from chargeverse.settings import Settings, get_settings
from chargeverse.topics import IDENTITY, OCPP_COMMANDS, PNC
from edges.pnc import material

log = logging.getLogger("edges.pnc")
RAW_LIMIT = 8192
OEM_SUB = "OEM_SUB"  # pnc_trusted_roots.kind of an OEM provisioning sub-CA in the pool (not a trust anchor)
TRUST_KINDS = ("OEM", "V2G", "MO", OEM_SUB)
CPS_RELOAD_BEFORE = dt.timedelta(days=7)  # a running process reloads the material to pick up a renewed CPS leaf
CAUSES = tuple(c.value for c in RevocationCause)


def _hex(serial: int) -> str:
    return format(serial, "x")


class ProjectionRegistry:
    """The revocation registry the pure OCSP responder asks, answered from `contract_certificates`."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def row(self, issuer_key_id: str, serial_number: int) -> tuple[Any, ...] | None:
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT status, revoked_at, revocation_cause, emaid, not_after, account_id FROM contract_certificates"
                " WHERE issuer_key_id = %s AND serial_number = %s", (issuer_key_id, _hex(serial_number))).fetchone()

    def status(self, issuer_key_id: str, serial_number: int) -> tuple[CertStatus, Revocation | None]:
        row = self.row(issuer_key_id, serial_number)
        if row is None:
            return CertStatus.UNKNOWN, None
        if row[0] == "revoked":
            return CertStatus.REVOKED, Revocation(serial_number, row[1], RevocationCause(row[2]))
        return CertStatus.GOOD, None


@dataclass(frozen=True)
class CertificateCheck:
    """What Authorize learns from iso15118CertificateHashData (OCPP AuthorizeCertificateStatusEnumType)."""

    certificate_status: str
    emaid: str | None = None
    serial_number: str | None = None


class PncService:
    def __init__(self, settings: Settings | None = None, producer: EventProducer | None = None,
                 source: str = "edges.pnc") -> None:
        self.settings = settings or get_settings()
        self.source = source
        self._producer = producer
        self._lock = threading.Lock()
        self._material: material.CaMaterial | None = None
        self._responder: OcspResponder | None = None
        self._next_cps_reload = 0.0
        self.pool = ConnectionPool(self.settings.postgres_dsn.get_secret_value(), min_size=1, max_size=4,
                                   open=True, kwargs={"autocommit": True})
        self.registry = ProjectionRegistry(self.pool)

    # ---- plumbing ------------------------------------------------------------------------------------------------
    @property
    def producer(self) -> EventProducer:
        with self._lock:
            if self._producer is None:
                self._producer = EventProducer(self.settings.kafka_bootstrap)
            return self._producer

    @property
    def material(self) -> material.CaMaterial:
        with self._lock:
            if self._material is None:
                self._material = material.load_or_create(self.settings)
                self._responder = OcspResponder(self._material.ocsp_cas(), self.registry)  # type: ignore[arg-type]
            return self._material

    @property
    def responder(self) -> OcspResponder:
        _ = self.material
        assert self._responder is not None
        return self._responder

    def close(self) -> None:
        self.pool.close()
        if self._producer is not None:
            self._producer.close()

    def _publish(self, key: str, event_type: str, record: dict[str, Any], topic: str = PNC.name) -> None:
        self.producer.publish_sync(topic, key, event_type, record)

    def _event(self, correlation_id: str, **payload: Any) -> dict[str, Any]:
        rec = envelope(source=self.source, correlation_id=correlation_id)
        rec.update(payload)
        return rec

    def reject(self, request: str, rejection: PncRejection, *, station_id: str | None = None,
               emaid: str | None = None, raw: Any = None, response_code: str | None = None,
               request_signature_checked: bool | None = None) -> None:
        """Record a refusal (best effort: a log outage must not turn a refusal into a crash)."""
        text = raw if isinstance(raw, str) or raw is None else json.dumps(raw, default=str)
        rec = self._event(station_id or emaid or "pnc", request=request, station_id=station_id, emaid=emaid,
                          reason=rejection.reason.value, detail=rejection.detail[:1000],
                          response_code=response_code or rejection.iso15118_response_code,
                          raw=None if text is None else text[:RAW_LIMIT],
                          request_signature_checked=request_signature_checked)
        try:
            self._publish(emaid or station_id or "unknown", "PncRequestRejected", rec)
        except Exception as exc:  # noqa: BLE001
            log.error("refusal of %s not recorded: %s", request, exc)

    def _wait(self, sql: str, args: tuple[Any, ...], timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.api_write_wait_seconds)
        while True:
            with self.pool.connection() as conn:
                if conn.execute(sql, args).fetchone() is not None:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    # ---- admin: trusted roots, enrolment, revocation ---------------------------------------------------------------
    def add_trusted_root(self, pem: str | bytes, kind: str, added_by: str) -> dict[str, Any]:
        """Trust a root (OEM, V2G, MO), or register an OEM provisioning sub-CA (kind OEM_SUB) in the pool that
        completes cars' chains: ISO 15118-2 CertificateInstallationReq carries only the OEM leaf.  A pool
        sub-CA is never a trust anchor: a path through it must still end at a trusted OEM/V2G root."""
        if kind not in TRUST_KINDS:
            raise PncRejection(Reason.MALFORMED_REQUEST, f"kind must be one of {', '.join(TRUST_KINDS)}")
        try:
            cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
        except ValueError as exc:
            raise PncRejection(Reason.MALFORMED_CERTIFICATE, "not a PEM certificate") from exc
        from chargeverse.pnc.chain import _basic_constraints, _check_algorithms

        _check_algorithms(cert)
        bc = _basic_constraints(cert)
        if kind == OEM_SUB:
            if bc is None or not bc.ca or cert.issuer == cert.subject:
                raise PncRejection(Reason.PROFILE_VIOLATION, "an OEM sub-CA must be a CA certificate issued by "
                                   "another CA (register self-signed roots with kind OEM)")
        elif bc is None or not bc.ca or cert.issuer != cert.subject:
            raise PncRejection(Reason.PROFILE_VIOLATION, "a trusted root must be a self-signed CA certificate")
        fp = cert.fingerprint(hashes.SHA256()).hex()
        rec = self._event(fp, kind=kind, fingerprint_sha256=fp, subject=cert.subject.rfc4514_string(),
                          not_after=cert.not_valid_after_utc, added_by=added_by,
                          certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode())
        self._publish(fp, "PncTrustedRootAdded", rec)
        self._wait("SELECT 1 FROM pnc_trusted_roots WHERE fingerprint_sha256 = %s", (fp,))
        return {"fingerprint_sha256": fp, "kind": kind, "subject": rec["subject"]}

    def trusted_roots(self, kinds: Iterable[str]) -> list[x509.Certificate]:
        return [c for _, c in self._trust(kinds)]

    def _trust(self, kinds: Iterable[str]) -> list[tuple[str, x509.Certificate]]:
        """Registered certificates of ``kinds`` (roots, and the OEM sub-CA pool as OEM_SUB), in one query."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT kind, certificate_pem FROM pnc_trusted_roots WHERE kind = ANY(%s)",
                                (list(kinds),)).fetchall()
        return [(r[0], x509.load_pem_x509_certificate(r[1].encode())) for r in rows]

    def enrol(self, account_id: str, pcid: str, requested_by: str) -> dict[str, Any]:
        """Enrol a car (its PCID) for Plug & Charge under the account's eMAID; the eMAID becomes an id token of
        the account (IdTokenIssued on `identity`) so Authorize applies the account's and fleet's rules."""
        if not isinstance(pcid, str) or not 0 < len(pcid) <= 64 or not pcid.isprintable():
            raise PncRejection(Reason.MALFORMED_REQUEST, "pcid: 1..64 printable characters")
        with self.pool.connection() as conn:
            row = conn.execute("SELECT contract_id FROM accounts WHERE account_id = %s", (account_id,)).fetchone()
            if row is None:
                raise PncRejection(Reason.MALFORMED_REQUEST, f"no account {account_id}")
            policy = CheckDigitPolicy.FLAG if self.settings.pnc_check_digit_policy == "flag" else CheckDigitPolicy.REJECT
            emaid = parse_emaid(row[0], policy).normalised
            token = conn.execute("SELECT account_id FROM id_tokens WHERE uid = %s", (emaid,)).fetchone()
        rec = self._event(emaid, emaid=emaid, account_id=account_id, pcid=pcid, requested_by=requested_by)
        self._publish(emaid, "PncContractEnrolled", rec)
        if token is None:
            from edges.api.identity import id_token_issued, id_token_key

            tok = id_token_issued(account_id=account_id, uid=emaid, token_type="OTHER", contract_id=emaid,
                                  label="Plug & Charge contract", valid_until=None, source=self.source,
                                  correlation_id=rec["event_id"])
            tok["causation_id"] = rec["event_id"]
            self._publish(id_token_key(emaid), "IdTokenIssued", tok, topic=IDENTITY.name)
        self._wait("SELECT 1 FROM pnc_enrolments WHERE pcid = %s AND event_id = %s", (pcid, rec["event_id"]))
        self._wait("SELECT 1 FROM id_tokens WHERE uid = %s", (emaid,))
        return {"emaid": emaid, "account_id": account_id, "pcid": pcid}

    def certificates(self, *, emaid: str | None = None, serial: str | None = None,
                     account_id: str | None = None) -> list[dict[str, Any]]:
        cols = ("issuer_key_id", "serial_number", "emaid", "account_id", "not_before", "not_after", "action", "pcid",
                "status", "revoked_at", "revocation_cause", "issued_at")
        where, args = [], []
        for col, val in (("emaid", emaid), ("serial_number", serial and serial.lower()), ("account_id", account_id)):
            if val is not None:
                where.append(f"{col} = %s")
                args.append(val)
        if not where:
            raise PncRejection(Reason.MALFORMED_REQUEST, "give an eMAID, a serial number or an account")
        with self.pool.connection() as conn:
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM contract_certificates WHERE {' AND '.join(where)} "
                                "ORDER BY issued_at, serial_number", args).fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def revoke(self, *, cause: str, requested_by: str, emaid: str | None = None, serial: str | None = None,
               comment: str | None = None) -> list[dict[str, Any]]:
        """Revoke one contract (serial) or every good contract of an eMAID; returns what was revoked."""
        if cause not in CAUSES:
            raise PncRejection(Reason.MALFORMED_REQUEST, f"cause must be one of {', '.join(CAUSES)}")
        if emaid is not None:
            emaid = parse_emaid(emaid, CheckDigitPolicy.FLAG).normalised
        rows = [r for r in self.certificates(emaid=emaid, serial=serial) if r["status"] == "good"]
        now = utcnow()
        out = []
        for r in rows:
            rec = self._event(r["emaid"], emaid=r["emaid"], serial_number=r["serial_number"],
                              issuer_key_id=r["issuer_key_id"], cause=cause, revoked_at=now,
                              requested_by=requested_by, comment=comment)
            self._publish(r["emaid"], "ContractCertificateRevoked", rec)
            out.append({"emaid": r["emaid"], "serial_number": r["serial_number"], "cause": cause,
                        "revoked_at": now.isoformat()})
        for r in rows:
            self._wait("SELECT 1 FROM contract_certificates WHERE issuer_key_id = %s AND serial_number = %s "
                       "AND status = 'revoked'", (r["issuer_key_id"], r["serial_number"]))
        return out

    # ---- OCPP 2.0.1: Get15118EVCertificate ---------------------------------------------------------------------------
    def get_15118_ev_certificate(self, payload: Mapping[str, Any], station_id: str) -> dict[str, Any]:
        action = payload.get("action") if isinstance(payload, Mapping) else None
        action = action if action in ("Install", "Update") else "Install"
        emaid: str | None = None
        stream: bytes | None = None  # real ISO 15118-2 EXI is answered in EXI, CVX1 in CVX1 (chargeverse/pnc/exi.py)
        decoded: exi_standin.InstallationRequest | exi_standin.UpdateRequest | None = None
        try:
            req = parse_get15118ev_certificate(dict(payload))
            stream = req.exi_request
            decoded = pnc_exi.decode_request(req.exi_request, req.action)
            issued, emaid, account_id, pcid = self._issue(decoded, req.action)
            exi = pnc_exi.respond(req.action, "OK", stream, decoded, self._sa_provisioning(stream),
                                  chain_der=issued.chain_der(), encrypted_private_key=issued.encrypted_private_key,
                                  dh_public_key=issued.dh_public_key, emaid=issued.emaid)
        except PncRejection as rej:
            self.reject("Get15118EVCertificate", rej, station_id=station_id, emaid=emaid, raw=dict(payload),
                        response_code=rej.iso15118_response_code,
                        request_signature_checked=_signature_checked(decoded))
            exi = pnc_exi.respond(action, rej.iso15118_response_code, stream, decoded, self._sa_provisioning(stream))
            return {"status": "Failed", "exiResponse": base64.b64encode(exi).decode(),
                    "statusInfo": {"reasonCode": rej.reason.value[:20], "additionalInfo": rej.detail[:512]}}
        m = self.material
        cert = issued.contract_certificate
        name_hash, key_hash = _issuer_hashes(m.mo.sub_ca2.certificate, hashes.SHA256())
        replaces = None
        if isinstance(decoded, exi_standin.UpdateRequest):
            replaces = _hex(x509.load_der_x509_certificate(decoded.contract_cert).serial_number)
        rec = self._event(emaid, emaid=issued.emaid, account_id=account_id, serial_number=_hex(cert.serial_number),
                          issuer_key_id=m.mo.sub_ca2.key_identifier.hex(), issuer_name_hash=name_hash.hex(),
                          issuer_key_hash=key_hash.hex(), not_before=cert.not_valid_before_utc,
                          not_after=cert.not_valid_after_utc, action=req.action, pcid=pcid,
                          recipient_fingerprint_sha256=issued.recipient_certificate.fingerprint(hashes.SHA256()).hex(),
                          replaces_serial_number=replaces, station_id=station_id,
                          certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                          request_signature_checked=_signature_checked(decoded))
        self._publish(issued.emaid, "ContractCertificateIssued", rec)  # on the log before the car is told
        return {"status": "Accepted", "exiResponse": base64.b64encode(exi).decode()}

    def _sa_provisioning(self, stream: bytes | None) -> pnc_exi.SaProvisioning | None:
        """The SAProvisioningCertificateChain (and signer) for a real-EXI answer; None for CVX1 or no material."""
        if stream is None or pnc_exi.is_cvx1(stream):
            return None
        try:
            m = self.material
            if (m.cps is not None and m.cps.not_after - utcnow() < CPS_RELOAD_BEFORE
                    and time.monotonic() >= self._next_cps_reload):
                # load_or_create renews our own CPS leaf (30 days ahead) or logs why it cannot
                with self._lock:
                    self._next_cps_reload = time.monotonic() + 3600  # at most hourly (key decryption is slow)
                    self._material = None
                m = self.material
            if m.cps is None:
                log.warning("no usable CPS chain: this Get15118EVCertificate response goes out unsigned "
                            "(see edges/pnc/README.md, `cv pnc init` / `cv pnc import-cps`)")
            return pnc_exi.sa_from_material(m)
        except PncRejection:
            return None

    def _issue(self, decoded: exi_standin.InstallationRequest | exi_standin.UpdateRequest,
               action: str) -> tuple[ContractIssued, str, str | None, str | None]:
        m = self.material
        now = utcnow()
        validity = dt.timedelta(days=self.settings.pnc_contract_validity_days)
        if isinstance(decoded, exi_standin.InstallationRequest):
            leaf = load_certificate(decoded.oem_provisioning_cert, what="OEM provisioning certificate")
            cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            if len(cns) != 1:
                raise PncRejection(Reason.MALFORMED_CERTIFICATE, "OEM provisioning certificate has no single CN")
            pcid = str(cns[0].value)
            with self.pool.connection() as conn:
                row = conn.execute("SELECT emaid, account_id FROM pnc_enrolments WHERE pcid = %s",
                                   (pcid,)).fetchone()
            if row is None:
                raise PncRejection(Reason.NO_CONTRACT, f"no contract is enrolled for the car {pcid!r}")
            trust = self._trust(["OEM", "V2G", OEM_SUB])
            roots = [c for kind, c in trust if kind != OEM_SUB]
            presented = [load_certificate(c, what="OEM sub-CA certificate") for c in decoded.oem_sub_certificates]
            subs = complete_from_pool(leaf, presented, [c for kind, c in trust if kind == OEM_SUB], roots)
            issued = install_contract(m.mo, row[0], leaf, subs, roots, now=now, validity=validity)
            return issued, row[0], row[1], pcid
        current = load_certificate(decoded.contract_cert, what="contract certificate")
        roots = [*m.mo_roots, *self.trusted_roots(["MO", "V2G"])]  # retired chains' contracts renew too
        issued = update_contract(m.mo, current, decoded.sub_certificates, roots, now=now,
                                 is_revoked=lambda c, i: self._revoked(c, i), validity=validity)
        if parse_emaid(decoded.emaid, CheckDigitPolicy.FLAG).normalised != issued.emaid:
            raise PncRejection(Reason.INVALID_EMAID, "the request's eMAID is not the contract certificate's")
        rows = self.certificates(emaid=issued.emaid)
        return issued, issued.emaid, rows[-1]["account_id"] if rows else None, None

    def _revoked(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        key_id = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest.hex()  # type: ignore[arg-type]
        return self.registry.status(key_id, cert.serial_number)[0] is CertStatus.REVOKED

    # ---- status: OCPP GetCertificateStatus, Authorize, HTTP OCSP -----------------------------------------------------
    def _answered(self, request: str, station_id: str | None, ca: CertificateAuthority | None, serial: int,
                  status: CertStatus) -> None:
        emaid = None
        if ca is not None:
            row = self.registry.row(ca.key_identifier.hex(), serial)
            emaid = row[3] if row else None
        rec = self._event(station_id or _hex(serial), request=request, station_id=station_id, emaid=emaid,
                          serial_number=_hex(serial), issuer_key_id=ca.key_identifier.hex() if ca else None,
                          status=status.value)
        try:
            self._publish(emaid or _hex(serial), "PncStatusAnswered", rec)
        except Exception as exc:  # noqa: BLE001 - the answer stands; the audit event is best effort
            log.error("status answer not recorded: %s", exc)

    def get_certificate_status(self, payload: Mapping[str, Any], station_id: str) -> dict[str, Any]:
        data = payload.get("ocspRequestData") if isinstance(payload, Mapping) else None
        try:
            cert_id = cert_id_from_ocpp(data)  # type: ignore[arg-type]
        except PncRejection as rej:
            self.reject("GetCertificateStatus", rej, station_id=station_id, raw=dict(payload), response_code="Failed")
            return {"status": "Failed", "statusInfo": {"reasonCode": rej.reason.value[:20],
                                                       "additionalInfo": rej.detail[:512]}}
        answer = get_certificate_status(self.responder, data, now=utcnow())  # type: ignore[arg-type]
        if answer["status"] != "Accepted":
            rej = PncRejection(Reason.WRONG_ISSUER, "we are not the OCSP responder for this issuer")
            self.reject("GetCertificateStatus", rej, station_id=station_id, raw=dict(payload), response_code="Failed")
            return {"status": "Failed", "statusInfo": {"reasonCode": answer.get("statusInfo", "Failed")[:20],
                                                       "additionalInfo": rej.detail}}
        ca = self.responder.issuer_for(cert_id)
        status = self.registry.status(ca.key_identifier.hex(), cert_id.serial_number)[0] if ca else CertStatus.UNKNOWN
        self._answered("GetCertificateStatus", station_id, ca, cert_id.serial_number, status)
        return answer

    def check_hash_data(self, hash_data: Sequence[Mapping[str, Any]], emaid: str, station_id: str) -> CertificateCheck:
        """Authorize's iso15118CertificateHashData: the contract among the entries, its status and its eMAID."""
        now = utcnow()
        found: tuple[CertId, CertificateAuthority, tuple[Any, ...]] | None = None
        for entry in hash_data:
            try:
                cert_id = cert_id_from_ocpp(entry)
            except PncRejection as rej:
                self.reject("Authorize", rej, station_id=station_id, emaid=emaid, raw=list(hash_data),
                            response_code="CertChainError")
                return CertificateCheck("CertChainError")
            ca = self.responder.issuer_for(cert_id)
            if ca is None:
                continue
            row = self.registry.row(ca.key_identifier.hex(), cert_id.serial_number)
            if row is not None:
                found = (cert_id, ca, row)
                break
        if found is None:
            self.reject("Authorize", PncRejection(Reason.UNTRUSTED_CHAIN, "no contract certificate of ours among "
                                                  "the hash data"), station_id=station_id, emaid=emaid,
                        raw=list(hash_data), response_code="NoCertificateAvailable")
            return CertificateCheck("NoCertificateAvailable")
        cert_id, ca, row = found
        status_value, _, _, cert_emaid, not_after, _ = row
        status = CertStatus.REVOKED if status_value == "revoked" else CertStatus.GOOD
        self._answered("Authorize", station_id, ca, cert_id.serial_number, status)
        serial = _hex(cert_id.serial_number)
        presented = parse_emaid(emaid, CheckDigitPolicy.FLAG).normalised if _is_emaid(emaid) else emaid
        if presented != cert_emaid:
            return CertificateCheck("CertChainError", cert_emaid, serial)
        # the same certificate rule as OCPI real-time authorization (edges/pnc/roaming.py)
        state = certificate_status(status_value, not_after, now)
        return CertificateCheck(OCPP_CERTIFICATE_STATUS[state], cert_emaid, serial)

    def ocsp(self, request_der: bytes) -> bytes:
        """RFC 6960 over HTTP: DER request in, DER response out (never raises on bad input)."""
        body = self.responder.respond_der(request_der, now=utcnow())
        try:
            from cryptography.x509 import ocsp

            req = ocsp.load_der_ocsp_request(request_der)
            cid = CertId(req.hash_algorithm, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
            ca = self.responder.issuer_for(cid)
            status = self.registry.status(ca.key_identifier.hex(), cid.serial_number)[0] if ca else CertStatus.UNKNOWN
            self._answered("OCSP", None, ca, cid.serial_number, status)
        except Exception:  # noqa: BLE001 - malformed: the responder already said so
            self.reject("OCSP", PncRejection(Reason.MALFORMED_REQUEST, "not a DER OCSP request"),
                        raw=base64.b64encode(request_der[:RAW_LIMIT]).decode(), response_code="malformedRequest")
        return body

    def crl(self) -> bytes:
        """DER CRL of MO sub-CA 2 (the issuer of every contract), from the projection."""
        m = self.material
        ca = m.mo.sub_ca2
        key_id = ca.key_identifier.hex()
        reg = RevocationRegistry()
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT serial_number, revoked_at, revocation_cause FROM contract_certificates "
                                "WHERE issuer_key_id = %s AND status = 'revoked'", (key_id,)).fetchall()
        for serial, at, cause in rows:
            reg.apply_revoked(key_id, Revocation(int(serial, 16), at, RevocationCause(cause)))
        now = utcnow()
        return build_crl(ca, reg, now=now, crl_number=int(now.timestamp())).public_bytes(serialization.Encoding.DER)

    def ca_issuers(self) -> bytes:
        m = self.material
        certs = [m.mo.sub_ca2.certificate, m.mo.sub_ca1.certificate, m.mo_root]
        return pkcs7.serialize_certificates(certs, serialization.Encoding.DER)

    # ---- OCPP 2.0.1: SignCertificate ---------------------------------------------------------------------------------
    def sign_certificate(self, payload: Mapping[str, Any], station_id: str, security_profile: int,
                         ocpp_version: str = "ocpp2.0.1") -> dict[str, Any]:
        ctype = payload.get("certificateType") or "ChargingStationCertificate"
        try:
            if ctype not in ("ChargingStationCertificate", "V2GCertificate"):
                raise PncRejection(Reason.MALFORMED_REQUEST, f"certificateType {ctype!r}")
            if security_profile != 3:
                raise PncRejection(Reason.PROFILE_VIOLATION, f"certificate signing needs security profile 3, "
                                   f"not {security_profile}")
            # the pure checks first: a bad CSR never touches the CA material
            check_csr(load_csr(payload.get("csr", "")), station_id=station_id,
                      organization=material.identity(self.settings).organization)
            m = self.material
            cert = sign_station_csr(m.cpo_sub2, payload.get("csr", ""), station_id=station_id,
                                    security_profile=security_profile, use=CertificateSigningUse(ctype),
                                    now=utcnow())
        except PncRejection as rej:
            self.reject("SignCertificate", rej, station_id=station_id, raw=dict(payload), response_code="Rejected")
            return {"status": "Rejected", "statusInfo": {"reasonCode": rej.reason.value[:20],
                                                         "additionalInfo": rej.detail[:512]}}
        chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                        for c in (cert, m.cpo_sub2.certificate, m.cpo_sub1.certificate))
        rec = self._event(station_id, station_id=station_id, certificate_type=ctype,
                          serial_number=_hex(cert.serial_number), issuer_key_id=m.cpo_sub2.key_identifier.hex(),
                          not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                          certificate_chain_pem=chain)
        self._publish(station_id, "StationCertificateSigned", rec)
        cmd = envelope(source=self.source, correlation_id=rec["event_id"], causation_id=rec["event_id"])
        cmd.update(command_id=rec["event_id"], charge_point_id=station_id, action="CertificateSigned",
                   payload=json.dumps({"certificateChain": chain, "certificateType": ctype}),
                   ocpp_version=ocpp_version, requested_by=self.source,
                   expires_at=utcnow() + dt.timedelta(minutes=10), timeout_ms=30_000)
        self._publish(station_id, "OcppCommandRequested", cmd, topic=OCPP_COMMANDS.name)
        return {"status": "Accepted"}


def _signature_checked(decoded: object) -> bool | None:
    """For the events: True/False whether a real-EXI request's XML signature was verified (exi.decode_request);
    None when not applicable (CVX1, or the request never decoded)."""
    checked = getattr(decoded, "signature_checked", None)
    return checked if isinstance(checked, bool) else None


def _is_emaid(text: str) -> bool:
    try:
        parse_emaid(text, CheckDigitPolicy.FLAG)
    except PncRejection:
        return False
    return True


_shared: PncService | None = None
_shared_lock = threading.Lock()


def shared() -> PncService:
    """The process's PnC service (created on first use, from settings)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PncService(source="edges.pnc")
        return _shared
