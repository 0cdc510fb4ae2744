"""Postgres projection of the `identity` topic: accounts, vehicles, favourites, payment-method references and id
tokens (also into `id_tokens`, which the OCPP edge authorises from).

Guarantees (besides those of projections/base.py: rows and offsets in one transaction, deterministic rows):
- **First registration wins.**  AccountRegistered is keyed by the account id, which is derived from the
  normalised email, so competing registrations of one email are ordered on one partition; the first inserts the
  row and later ones change nothing (`ON CONFLICT DO NOTHING`), on every replay alike.  The API compares the
  row's `registered_event_id` with its own event to answer 201 or 409.
- **First claim of an id token wins**, by the same argument (IdTokenIssued is keyed by the token's id); a blocked
  token stays blocked, and only the holding account can block it.
- **Rows depend only on their own partition.**  Account events (keyed by the account) may look at the account
  row: it is on the same partition, so it is there or not in the same way live and on replay; a vehicle for an
  account the projection does not have (its registration lost a race, or was dead-lettered) is dropped.  Token
  events live on the token's partition and never look at accounts (a cross-partition look would depend on
  which partition a replay happens to read first).  Unknown event types on the topic are passed over.

Why argon2id hashes travel on the log (AccountRegistered, PasswordChanged) and are computed at the edge:
- the log is the source of truth: a replay must rebuild the accounts table, logins included, without any side
  store;
- argon2 salts are random, so the hash must be computed once, before the event, for replays to be deterministic
  (a projection hashing would store a different hash on every rebuild — and would need the plaintext on the log);
- the plaintext never leaves the edge process; a hash with the default parameters (m=64 MiB, t=3, p=4; above
  OWASP's argon2id minimum of m=19 MiB, t=2, p=1) is what any password database holds, and the log is guarded
  like one (the same credentials policy as Postgres; chargers' secret hashes are already there, StationRegistered).
The cost, stated: superseded hashes stay on the log for its lifetime, so an attacker with log access can attack
old passwords offline (people reuse them).  The better design when that matters (and for erasure requests) is
crypto-shredding: encrypt the hash field with a per-account key kept outside the log and delete the key to erase.
That needs a key service and is not built yet.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

_Handler = Callable[[psycopg.Cursor, dict[str, Any]], None]


def _account_exists(cur: psycopg.Cursor, account_id: str) -> bool:
    return cur.execute("SELECT 1 FROM accounts WHERE account_id = %s", (account_id,)).fetchone() is not None


def _registered(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not str(r["password_hash"]).startswith("$argon2id$"):
        return
    cur.execute(
        "INSERT INTO accounts (account_id, email, password_hash, display_name, roles, contract_id, registered_at,"
        " registered_event_id, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (r["account_id"], r["email"], r["password_hash"], r["display_name"], list(r["roles"]), r["contract_id"],
         r["occurred_at"], r["event_id"], r["occurred_at"]))


def _password(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not str(r["password_hash"]).startswith("$argon2id$"):
        return
    cur.execute("UPDATE accounts SET password_hash = %s, password_changed_at = %s, updated_at = %s "
                "WHERE account_id = %s", (r["password_hash"], r["occurred_at"], r["occurred_at"], r["account_id"]))


def _profile(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    for f in ("display_name", "phone", "locale"):  # a fixed list: never a column name from the event
        if f in r["fields_set"]:
            cur.execute(f"UPDATE accounts SET {f} = %s, updated_at = %s WHERE account_id = %s",
                        (r[f], r["occurred_at"], r["account_id"]))


def _vehicle_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not _account_exists(cur, r["account_id"]):
        return
    cur.execute(
        "INSERT INTO vehicles (account_id, vehicle_id, make, model, year, battery_kwh, max_ac_kw, max_dc_kw,"
        " connector_types, nickname, added_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (r["account_id"], r["vehicle_id"], r["make"], r["model"], r["year"], r["battery_kwh"], r["max_ac_kw"],
         r["max_dc_kw"], list(r["connector_types"]), r["nickname"], r["occurred_at"]))


def _vehicle_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("DELETE FROM vehicles WHERE account_id = %s AND vehicle_id = %s", (r["account_id"], r["vehicle_id"]))


def _favourite_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not _account_exists(cur, r["account_id"]):
        return
    cur.execute("INSERT INTO favourites (account_id, station_id, added_at) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING", (r["account_id"], r["station_id"], r["occurred_at"]))


def _favourite_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("DELETE FROM favourites WHERE account_id = %s AND station_id = %s",
                (r["account_id"], r["station_id"]))


def _payment_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not _account_exists(cur, r["account_id"]):
        return
    cur.execute("INSERT INTO payment_methods (account_id, payment_method_id, provider, label, added_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (r["account_id"], r["payment_method_id"], r["provider"], r["label"], r["occurred_at"]))


def _payment_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("DELETE FROM payment_methods WHERE account_id = %s AND payment_method_id = %s",
                (r["account_id"], r["payment_method_id"]))


#: id_tokens.type is what a charger presents (OCPP 2.0.1 IdTokenEnumType; NULL matches any): an RFID card's
#: physical standard (ISO14443, ISO15693) is not known, so NULL; app tokens are CSMS-generated ("Central")
OCPP_TOKEN_TYPE: dict[str, str | None] = {"RFID": None, "APP_USER": "Central"}


def _token_issued(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    # no look at the accounts table: token events live on the token's partition, and whether the account's
    # partition has been applied yet differs between live and replay (the edge only issues for real accounts)
    row = cur.execute(
        "INSERT INTO account_id_tokens (uid, account_id, token_type, contract_id, label, status, valid_until,"
        " issued_at) VALUES (%s, %s, %s, %s, %s, 'Accepted', %s, %s) ON CONFLICT DO NOTHING RETURNING uid",
        (r["uid"], r["account_id"], r["token_type"], r["contract_id"], r["label"], r["valid_until"],
         r["occurred_at"])).fetchone()
    if row is None:  # the uid was claimed first by someone else (or re-issued): nothing changes
        return
    cur.execute("INSERT INTO id_tokens (uid, type, contract_id, account_id, status, valid_until, group_id,"
                " updated_at) VALUES (%s, %s, %s, %s, 'Accepted', %s, %s, %s) ON CONFLICT (uid) DO NOTHING",
                (r["uid"], OCPP_TOKEN_TYPE.get(r["token_type"]), r["contract_id"], r["account_id"],
                 r["valid_until"], r["group_id"], r["occurred_at"]))


def _token_blocked(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    row = cur.execute(
        "UPDATE account_id_tokens SET status = 'Blocked', blocked_at = %s, block_reason = %s "
        "WHERE uid = %s AND account_id = %s AND status <> 'Blocked' RETURNING uid",
        (r["occurred_at"], r["reason"], r["uid"], r["account_id"])).fetchone()
    if row is None:
        return
    cur.execute("UPDATE id_tokens SET status = 'Blocked', updated_at = %s WHERE uid = %s AND account_id = %s",
                (r["occurred_at"], r["uid"], r["account_id"]))


HANDLERS: dict[str, _Handler] = {
    "AccountRegistered": _registered,
    "PasswordChanged": _password,
    "ProfileUpdated": _profile,
    "VehicleAdded": _vehicle_added,
    "VehicleRemoved": _vehicle_removed,
    "FavouriteAdded": _favourite_added,
    "FavouriteRemoved": _favourite_removed,
    "PaymentMethodAdded": _payment_added,
    "PaymentMethodRemoved": _payment_removed,
    "IdTokenIssued": _token_issued,
    "IdTokenBlocked": _token_blocked,
}

_CHECKSUM_QUERIES = (
    "SELECT account_id, email, password_hash, display_name, phone, locale, roles, contract_id, registered_at,"
    " registered_event_id, password_changed_at, updated_at FROM accounts ORDER BY account_id",
    "SELECT * FROM vehicles ORDER BY account_id, vehicle_id",
    "SELECT * FROM favourites ORDER BY account_id, station_id",
    "SELECT * FROM payment_methods ORDER BY account_id, payment_method_id",
    "SELECT * FROM account_id_tokens ORDER BY uid",
    "SELECT t.uid, t.type, t.contract_id, t.account_id, t.status, t.valid_until, t.group_id, t.updated_at"
    " FROM id_tokens t JOIN account_id_tokens a ON a.uid = t.uid AND a.account_id = t.account_id ORDER BY t.uid",
)


class IdentityProjection(TableProjection):
    name = "pg.identity"
    topics = ("identity",)

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for query in _CHECKSUM_QUERIES:
                for row in self.conn.execute(query):
                    h.update(repr(row).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM id_tokens t USING account_id_tokens a "
                              "WHERE a.uid = t.uid AND a.account_id = t.account_id")
            self.conn.execute("TRUNCATE accounts, vehicles, favourites, payment_methods, account_id_tokens")
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
