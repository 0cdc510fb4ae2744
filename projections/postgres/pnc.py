"""Postgres projection of the `pnc` topic: enrolled cars, contract certificates and their status, station
certificates, trusted roots.

Guarantees (besides those of projections/base.py: rows and offsets in one transaction, deterministic rows):
- **An issued certificate is never forgotten**: ContractCertificateIssued inserts by (issuer key id, serial) and a
  second delivery changes nothing, so OCSP can always tell "ours, good" from "never issued by us" (unknown).
- **First revocation wins**: ContractCertificateRevoked of an already revoked serial keeps the first date and
  cause (what the CRL and every earlier OCSP answer said).  Issuance and revocation of a contract share the eMAID
  key, hence a partition, so the issuance is always applied first; a revocation of an unknown serial changes
  nothing (the service never publishes one).
- **The latest enrolment of a car wins** (a car sold and enrolled by its new owner).
- Nothing here reads the clock; status and validity are facts from the events.
- PncRequestRejected / PncStatusAnswered are audit events: not projected (they stay on the log).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

_Handler = Callable[[psycopg.Cursor, dict[str, Any]], None]


def _enrolled(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO pnc_enrolments (pcid, emaid, account_id, enrolled_at, event_id) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT (pcid) DO UPDATE SET emaid = EXCLUDED.emaid, account_id = EXCLUDED.account_id, "
                "enrolled_at = EXCLUDED.enrolled_at, event_id = EXCLUDED.event_id "
                "WHERE pnc_enrolments.enrolled_at <= EXCLUDED.enrolled_at",
                (r["pcid"], r["emaid"], r["account_id"], r["occurred_at"], r["event_id"]))


def _issued(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO contract_certificates (issuer_key_id, serial_number, emaid, account_id, issuer_name_hash,"
        " issuer_key_hash, not_before, not_after, action, pcid, station_id, replaces_serial, certificate_pem,"
        " issued_at, issued_event_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
        (r["issuer_key_id"], r["serial_number"].lower(), r["emaid"], r["account_id"], r["issuer_name_hash"].lower(),
         r["issuer_key_hash"].lower(), r["not_before"], r["not_after"], r["action"], r["pcid"], r["station_id"],
         r["replaces_serial_number"], r["certificate_pem"], r["occurred_at"], r["event_id"]))


def _revoked(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("UPDATE contract_certificates SET status = 'revoked', revoked_at = %s, revocation_cause = %s, "
                "revoked_by = %s WHERE issuer_key_id = %s AND serial_number = %s AND status = 'good'",
                (r["revoked_at"], r["cause"], r["requested_by"], r["issuer_key_id"], r["serial_number"].lower()))


def _station_signed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO station_certificates (issuer_key_id, serial_number, station_id, certificate_type,"
                " not_before, not_after, certificate_chain_pem, signed_at, event_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT DO NOTHING",
                (r["issuer_key_id"], r["serial_number"].lower(), r["station_id"], r["certificate_type"],
                 r["not_before"], r["not_after"], r["certificate_chain_pem"], r["occurred_at"], r["event_id"]))


def _root_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO pnc_trusted_roots (fingerprint_sha256, kind, subject, not_after, certificate_pem,"
                " added_at, added_by) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (r["fingerprint_sha256"].lower(), r["kind"], r["subject"], r["not_after"], r["certificate_pem"],
                 r["occurred_at"], r["added_by"]))


HANDLERS: dict[str, _Handler] = {
    "PncContractEnrolled": _enrolled,
    "ContractCertificateIssued": _issued,
    "ContractCertificateRevoked": _revoked,
    "StationCertificateSigned": _station_signed,
    "PncTrustedRootAdded": _root_added,
}


class PncProjection(TableProjection):
    name = "pg.pnc"
    topics = ("pnc",)
    tables = (("pnc_enrolments", "pcid"), ("contract_certificates", "issuer_key_id, serial_number"),
              ("station_certificates", "issuer_key_id, serial_number"), ("pnc_trusted_roots", "fingerprint_sha256"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)
