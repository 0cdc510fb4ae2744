"""Mongo projection of partners' OCPI Locations (OcpiObjectReceived, module locations, on `ocpi.inbound`): the raw
location documents, as received, for browsing and for fields our typed tables do not keep (opening hours,
energy mix, images, directions, ...).

One document per Location (`_id` = partner|COUNTRY|PARTY|ID) holding:
- `raw`: the Location as text - verbatim for a whole PUT or pull, merged for a PATCH or an EVSE/Connector PUT by
  the same rules as the Postgres OCPI projection (projections/postgres/ocpi_fold.py), numbers as spelled;
- `doc`: the same Location as a Mongo document (numbers as doubles), so it can be queried;
- the owner party, the last `last_updated`, the event id and where it sits on the log.
Guarantees: documents and offsets are written in one transaction; only valid events of this platform change a
document (a refused push leaves the previous good one); a merge without a target changes nothing; rows depend
only on events, so a rebuild is identical.  Geo search is PostGIS's job (DESIGN.md §4), not this collection's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pymongo import ReplaceOne

from projections.base import SourcedEvent, real
from projections.mongo_base import MongoProjection
from projections.postgres.ocpi_fold import dumps, loads, patch_location, put_into_location

WHOLE = frozenset({"PUT", "PULL"})


def doc_id(rec: dict[str, Any]) -> str:
    return "|".join((rec["partner_id"], rec["country_code"].upper(), rec["party_id"].upper(),
                     rec["object_id"].upper()))


def merged(current_raw: str | None, rec: dict[str, Any]) -> str | None:
    """The Location text after this event, or None (nothing to apply)."""
    evse, conn = rec.get("evse_uid"), rec.get("connector_id")
    if rec["method"] in WHOLE and not evse:
        return rec["raw"]
    if current_raw is None:
        return None
    try:
        body, current = loads(rec["raw"]), loads(current_raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    out = put_into_location(current, body, evse, conn) if rec["method"] == "PUT" else \
        patch_location(current, body, evse, conn) if rec["method"] == "PATCH" else None
    return dumps(out) if out is not None else None


class OcpiLocationsMongoProjection(MongoProjection):
    name = "mongo.ocpi_locations"
    topics = ("ocpi.inbound",)

    def __init__(self, url: str, db: str, prefix: str = "", platform_id: str = "chargeverse") -> None:
        super().__init__(url, db, prefix)
        self.platform_id = platform_id
        self.locations = self.db[f"{prefix}ocpi_locations"]
        self.locations.create_index([("partner_id", 1), ("last_updated", 1)])

    def _mine(self, e: SourcedEvent) -> bool:
        r = e.record
        return (e.type == "OcpiObjectReceived" and r.get("platform_id") == self.platform_id
                and r.get("module") == "locations" and r.get("valid") is True)

    def write(self, new: list[SourcedEvent], session: Any) -> None:
        mine = [e for e in real(new) if self._mine(e)]
        texts: dict[str, str | None] = {}
        ids = sorted({doc_id(e.record) for e in mine})
        if ids:
            for d in self.locations.find({"_id": {"$in": ids}}, {"raw": 1}, session=session):
                texts[d["_id"]] = d["raw"]
        docs: dict[str, dict[str, Any]] = {}
        for e in mine:
            r = e.record
            key = doc_id(r)
            text = merged(texts.get(key), r)
            if text is None:
                continue
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            texts[key] = text
            docs[key] = {"_id": key, "partner_id": r["partner_id"], "country_code": r["country_code"].upper(),
                         "party_id": r["party_id"].upper(), "location_id": r["object_id"], "raw": text,
                         "doc": parsed, "last_updated": parsed.get("last_updated") if isinstance(parsed, dict)
                         else None, "event_id": r["event_id"],
                         "log": {"topic": e.topic, "partition": e.partition, "offset": e.offset}}
        if docs:
            self.locations.bulk_write([ReplaceOne({"_id": k}, d, upsert=True) for k, d in docs.items()],
                                      ordered=True, session=session)

    def document(self, partner_id: str, country_code: str, party_id: str, location_id: str) -> dict[str, Any] | None:
        return self.locations.find_one({"_id": doc_id({"partner_id": partner_id, "country_code": country_code,
                                                       "party_id": party_id, "object_id": location_id})})

    def checksum(self) -> str:
        h = hashlib.sha256()
        for d in self.locations.find({}, {"_id": 1, "raw": 1, "event_id": 1}).sort("_id", 1):
            h.update(json.dumps([d["_id"], d["raw"], d["event_id"]]).encode())
        return h.hexdigest()

    def reset(self) -> None:
        self.locations.delete_many({})
        self.reset_offsets()
