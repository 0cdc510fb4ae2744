"""Postgres projection of the OCPI objects partners push to us or we pull from them (OcpiObjectReceived on
`ocpi.inbound`): Locations (with a PostGIS point), Sessions, CDRs, Tariffs, and eMSPs' Tokens.

Guarantees:
- Only `valid` events change rows: a refused push (bad JSON, schema errors, unknown target) leaves the partner's
  previous good data exactly as it was.
- A whole object (PUT, POST, PULL) is stored as the verbatim text received; merges (PATCH, an EVSE or Connector
  PUT into its Location) follow projections/postgres/ocpi_fold.py.  A merge whose target does not exist changes
  nothing (the edge answers 2003 before publishing such a push; this only matters for a race).
- Events of one object share a key, hence a partition, hence their order; within a batch each touched row is
  read at most once and written once, in log order.
- `last_updated` is the object's own (what date_from/date_to filter on), or the event's occurred_at when the
  object lacks one.  Rows depend only on events: a replay into an empty schema is identical.
"""

from __future__ import annotations

import json

from dataclasses import dataclass
from typing import Any

import psycopg

from projections.base import SourcedEvent
from projections.postgres.ocpi_common import OcpiPgProjection
from projections.postgres.ocpi_fold import (ci, dumps, loads, parse_datetime, patch_location, patch_object,
                                            point_of, put_into_location)

TABLES = {"locations": "ocpi_locations", "sessions": "ocpi_sessions", "cdrs": "ocpi_cdrs",
          "tariffs": "ocpi_tariffs", "tokens": "ocpi_tokens", "hubclientinfo": "ocpi_hub_clients"}
#: the object id of a ClientInfo (one per party per connection: its URL names only the party)
CLIENT_INFO_ID = "-"

Key = tuple[str, ...]


def object_key(record: dict[str, Any]) -> Key:
    """(partner, COUNTRY, PARTY, ID[, TYPE]) of an OcpiObjectReceived record: the row's primary key."""
    k = (record["partner_id"], ci(record["country_code"]), ci(record["party_id"]), ci(record["object_id"]))
    if record["module"] == "tokens":
        k += (ci(record.get("token_type") or "RFID"),)
    return k


@dataclass
class _Doc:
    event: SourcedEvent
    text: str | None = None
    obj: Any = None

    def parsed(self) -> Any:
        if self.obj is None and self.text is not None:
            self.obj = loads(self.text)
        return self.obj

    def serialised(self) -> str:
        return self.text if self.text is not None else dumps(self.obj)


#: commands whose body carries the driver's Token (OCPI 2.2.1 StartSession / ReserveNow `token`)
TOKEN_COMMANDS = frozenset({"START_SESSION", "RESERVE_NOW"})


def command_token(record: dict[str, Any]) -> tuple[Key, str] | None:
    """The (row key, document) of the Token an accepted START_SESSION / RESERVE_NOW carries, or None.  Pure.

    Why: an eMSP need not push a driver's Token before starting a session for it; the command's copy is then all
    the CPO knows of the token (who owns it, its contract id), and billing needs exactly that to price the
    session for that eMSP and push it the CDR (streams/billing/partner.py), as the OCPP edge needs it to accept
    the charger's StartTransaction.  A Token pushed by the eMSP always wins over a command's copy."""
    if record.get("command") not in TOKEN_COMMANDS or record.get("result") != "ACCEPTED":
        return None
    try:
        body = loads(record.get("raw") or "")
    except ValueError:
        return None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, dict):
        return None
    fields = [token.get(f) for f in ("country_code", "party_id", "uid")]
    if not all(isinstance(f, str) and f for f in fields):
        return None
    ttype = token.get("type") if isinstance(token.get("type"), str) else "RFID"
    key = (record["partner_id"], ci(fields[0]), ci(fields[1]), ci(fields[2]), ci(ttype))
    return key, dumps(token)


class OcpiObjectsProjection(OcpiPgProjection):
    name = "pg.ocpi_objects"
    handles = frozenset({"OcpiObjectReceived", "OcpiCommandReceived"})
    tables = tuple((t, "1, 2, 3, 4, 5" if t == "ocpi_tokens" else "1, 2, 3, 4") for t in TABLES.values())

    def fold(self, cur: psycopg.Cursor[Any], events: list[SourcedEvent]) -> None:
        touched: dict[tuple[str, Key], _Doc | None] = {}

        def current(module: str, key: Key) -> Any:
            if (module, key) in touched:
                d = touched[(module, key)]
                return None if d is None else d.parsed()
            row = cur.execute(_select(module), key).fetchone()
            return loads(row[0]) if row else None

        for e in events:
            r = e.record
            if e.type == "OcpiCommandReceived":
                cmd = command_token(r)
                if cmd is not None:  # a token known only from an eMSP's command: kept unless one was pushed
                    key, text = cmd
                    if ("tokens", key) not in touched and current("tokens", key) is None:
                        touched[("tokens", key)] = _Doc(e, text=text)
                continue
            if not r.get("valid"):
                continue
            module, method = r["module"], r["method"]
            if module not in TABLES:
                continue
            key = object_key(r)
            whole = method in ("PUT", "POST", "PULL") and not (module == "locations" and r.get("evse_uid"))
            if whole:
                touched[(module, key)] = _Doc(e, text=r["raw"])
            elif method == "DELETE":
                touched[(module, key)] = None
            else:
                existing = current(module, key)
                if not isinstance(existing, dict):
                    continue
                body = loads(r["raw"])
                if module == "locations" and method == "PUT":
                    new = put_into_location(existing, body, r["evse_uid"], r.get("connector_id"))
                elif module == "locations":
                    new = patch_location(existing, body, r.get("evse_uid"), r.get("connector_id"))
                else:
                    new = patch_object(existing, body)
                if new is not None:
                    touched[(module, key)] = _Doc(e, obj=new)
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        deletes: dict[str, list[Key]] = {}
        for (module, key), d in touched.items():
            if d is None:
                deletes.setdefault(module, []).append(key)
            else:
                by_table.setdefault(module, []).append(_row(module, key, d))
        for module, keys in deletes.items():
            cur.executemany(_delete(module), keys)
        for module, rows in by_table.items():
            cur.executemany(_upsert(module), rows)

    def checksum_queries(self) -> tuple[str, ...]:
        return (
            "SELECT partner_id, country_code, party_id, id, doc, last_updated, publish, ST_AsText(location), "
            "evse_count, last_event_id FROM ocpi_locations ORDER BY 1, 2, 3, 4",
            "SELECT * FROM ocpi_sessions ORDER BY 1, 2, 3, 4",
            "SELECT * FROM ocpi_cdrs ORDER BY 1, 2, 3, 4",
            "SELECT * FROM ocpi_tariffs ORDER BY 1, 2, 3, 4",
            "SELECT * FROM ocpi_tokens ORDER BY 1, 2, 3, 4, 5",
            "SELECT * FROM ocpi_hub_clients ORDER BY 1, 2, 3, 4",
        )


def _keycols(module: str) -> str:
    return "partner_id, country_code, party_id, id" + (", token_type" if module == "tokens" else "")


def _where(module: str) -> str:
    return " AND ".join(f"{c.strip()} = %s" for c in _keycols(module).split(","))


def _select(module: str) -> str:
    return f"SELECT doc FROM {TABLES[module]} WHERE {_where(module)}"


def _delete(module: str) -> str:
    return f"DELETE FROM {TABLES[module]} WHERE {_where(module)}"


_EXTRA = {"locations": ("publish", "location", "evse_count"), "sessions": ("status",), "cdrs": (), "tariffs": (),
          "tokens": ("valid",), "hubclientinfo": ("role", "status")}


def _upsert(module: str) -> str:
    cols = [c.strip() for c in _keycols(module).split(",")] + ["doc", "last_updated", "last_event_id",
                                                               *_EXTRA[module]]
    vals = ["ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography" if c == "location" else "%s" for c in cols]
    keys = _keycols(module)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys.replace(" ", "").split(","))
    return (f"INSERT INTO {TABLES[module]} ({', '.join(cols)}) VALUES ({', '.join(vals)}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")


def _row(module: str, key: Key, d: _Doc) -> tuple[Any, ...]:
    # the row's columns need a few fields, never the exact numbers: a document kept as text is read with the
    # plain (C) parser, about twice as fast as the exact one, and not cached (d.parsed() stays exact for patches)
    obj = json.loads(d.text) if d.obj is None and d.text is not None else d.parsed()
    obj = obj if isinstance(obj, dict) else {}
    stamp = parse_datetime(obj.get("last_updated")) or d.event.record["occurred_at"]
    base: tuple[Any, ...] = (*key, d.serialised(), stamp, d.event.record["event_id"])
    if module == "locations":
        point = point_of(obj)
        evses = obj.get("evses")
        publish = obj.get("publish") if isinstance(obj.get("publish"), bool) else None
        return (*base, publish, *(point or (None, None)), len(evses) if isinstance(evses, list) else 0)
    if module == "sessions":
        return (*base, obj.get("status") if isinstance(obj.get("status"), str) else None)
    if module == "tokens":
        return (*base, obj.get("valid") if isinstance(obj.get("valid"), bool) else None)
    if module == "hubclientinfo":
        return (*base, *(obj.get(f) if isinstance(obj.get(f), str) else None for f in ("role", "status")))
    return base
