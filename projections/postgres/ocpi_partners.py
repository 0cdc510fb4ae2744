"""Postgres projection of OCPI partner state: connections, their roles, and the credentials tokens we issued.

Reads the partner events on `ocpi.inbound` (keyed by partner id, so one partner's events are in order):
OcpiPartnerOnboarded, OcpiTokenIssued, OcpiPartnerRegistered, OcpiCredentialsRotated, OcpiPartnerDeleted.

Token validity - the rule the edge enforces (edges/ocpi/auth.py) and tests name:
- a token is valid while `valid_until` is NULL or in the future;
- an exchange (registration or re-roll) makes its new token open-ended and gives every other open token of the
  partner `valid_until = occurred_at + previous_token_grace_seconds` (from the event, so a replay decides the
  same): during a re-roll both the old and the new token work until the grace ends, and a lost answer can be
  retried with the old one; a token already closing keeps its earlier end;
- a deletion ends every token of the partner at its `occurred_at`;
- kind A tokens only open the versions and credentials endpoints.

Only hashes and sealed tokens are stored; never a token.  Rows depend only on events (replay-identical).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg

from projections.base import SourcedEvent
from projections.postgres.ocpi_common import OcpiPgProjection

PARTNER_EVENTS = frozenset({"OcpiPartnerOnboarded", "OcpiTokenIssued", "OcpiPartnerRegistered",
                            "OcpiCredentialsRotated", "OcpiPartnerDeleted"})


class OcpiPartnersProjection(OcpiPgProjection):
    name = "pg.ocpi_partners"
    handles = PARTNER_EVENTS
    tables = (("ocpi_partners", "partner_id"), ("ocpi_partner_roles", "partner_id, role, country_code, party_id"),
              ("ocpi_credentials_tokens", "token_hash"))

    def fold(self, cur: psycopg.Cursor[Any], events: list[SourcedEvent]) -> None:
        for e in events:
            r = e.record
            at = r["occurred_at"]
            pid = r["partner_id"]
            if e.type == "OcpiPartnerOnboarded":
                cur.execute(
                    "INSERT INTO ocpi_partners (partner_id, name, state, plain_token, their_versions_url, "
                    "their_token_sealed, updated_at, last_event_id) VALUES (%s,%s,'ONBOARDED',%s,%s,%s,%s,%s) "
                    "ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, state = 'ONBOARDED', "
                    "plain_token = EXCLUDED.plain_token, their_versions_url = EXCLUDED.their_versions_url, "
                    "their_token_sealed = EXCLUDED.their_token_sealed, version = NULL, endpoints = '[]', "
                    "roles = '[]', their_credentials = NULL, registered_at = NULL, "
                    "updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id",
                    (pid, r["name"], r.get("plain_token", False), r.get("their_versions_url"),
                     r.get("their_token_sealed"), at, r["event_id"]))
                cur.execute("DELETE FROM ocpi_partner_roles WHERE partner_id = %s", (pid,))
                # a re-onboarding (after a deletion) starts from no valid token but the new token A
                cur.execute("UPDATE ocpi_credentials_tokens SET valid_until = %s WHERE partner_id = %s AND "
                            "(valid_until IS NULL OR valid_until > %s)", (at, pid, at))
                if r.get("token_a_hash"):
                    self._open_token(cur, r["token_a_hash"], pid, "A", at)
            elif e.type == "OcpiTokenIssued":
                self._open_token(cur, r["token_hash"], pid, r["kind"], at)
            elif e.type in ("OcpiPartnerRegistered", "OcpiCredentialsRotated"):
                until = at + timedelta(seconds=max(0, int(r["previous_token_grace_seconds"])))
                cur.execute("UPDATE ocpi_credentials_tokens SET valid_until = %s WHERE partner_id = %s AND "
                            "token_hash <> %s AND (valid_until IS NULL OR valid_until > %s)",
                            (until, pid, r["our_token_hash"], until))
                self._open_token(cur, r["our_token_hash"], pid, "C" if r["initiated_by"] == "PARTNER" else "B",
                                 at)
                roles = [{"role": x["role"], "country_code": x["country_code"], "party_id": x["party_id"],
                          "name": x["name"]} for x in r["roles"]]
                registered = e.type == "OcpiPartnerRegistered"
                cur.execute(
                    "UPDATE ocpi_partners SET state = 'REGISTERED', their_token_sealed = %s, "
                    "their_versions_url = %s, version = %s, endpoints = %s, roles = %s, their_credentials = %s, "
                    "registered_at = CASE WHEN %s THEN %s ELSE registered_at END, updated_at = %s, "
                    "last_event_id = %s WHERE partner_id = %s",
                    (r["their_token_sealed"], r["their_versions_url"], r["version"], r["endpoints"],
                     json.dumps(roles), r["their_credentials"], registered, at, at, r["event_id"], pid))
                cur.execute("DELETE FROM ocpi_partner_roles WHERE partner_id = %s", (pid,))
                cur.executemany(
                    "INSERT INTO ocpi_partner_roles (partner_id, role, country_code, party_id, name) "
                    "VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    [(pid, x["role"], x["country_code"], x["party_id"], x["name"]) for x in roles])
            elif e.type == "OcpiPartnerDeleted":
                cur.execute("UPDATE ocpi_credentials_tokens SET valid_until = %s WHERE partner_id = %s AND "
                            "(valid_until IS NULL OR valid_until > %s)", (at, pid, at))
                cur.execute("UPDATE ocpi_partners SET state = 'DELETED', updated_at = %s, last_event_id = %s "
                            "WHERE partner_id = %s", (at, r["event_id"], pid))
                cur.execute("DELETE FROM ocpi_partner_roles WHERE partner_id = %s", (pid,))

    @staticmethod
    def _open_token(cur: psycopg.Cursor[Any], token_hash: str, partner_id: str, kind: str, at: Any) -> None:
        cur.execute("INSERT INTO ocpi_credentials_tokens (token_hash, partner_id, kind, issued_at, valid_until) "
                    "VALUES (%s,%s,%s,%s,NULL) ON CONFLICT (token_hash) DO UPDATE SET valid_until = NULL, "
                    "kind = EXCLUDED.kind WHERE ocpi_credentials_tokens.partner_id = EXCLUDED.partner_id",
                    (token_hash, partner_id, kind, at))

    def checksum_queries(self) -> tuple[str, ...]:
        return ("SELECT partner_id, name, state, plain_token, their_versions_url, their_token_sealed, version, "
                "endpoints::text, "
                "roles::text, their_credentials, registered_at, updated_at, last_event_id FROM ocpi_partners "
                "ORDER BY partner_id",
                "SELECT * FROM ocpi_partner_roles ORDER BY partner_id, role, country_code, party_id",
                "SELECT * FROM ocpi_credentials_tokens ORDER BY token_hash")
