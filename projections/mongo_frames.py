"""Mongo projection of `ocpp.frames`: the frame archive operators search when debugging a charger.

One document per event (`_id` = event_id) holding the verbatim frame, its parsed action and where it sits on the
log.  Documents and offsets are written in one transaction; upserts by `_id` make a re-delivery harmless even on a
server without transactions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import pymongo
from pymongo import ReplaceOne

from projections.mongo_tx import in_transaction
from projections.base import SourcedEvent, advanced, real, unseen


def frame_document(e: SourcedEvent) -> dict[str, Any]:
    r = e.record
    doc = {k: v for k, v in r.items() if k != "event_id"}
    doc.update(_id=r["event_id"], kind=e.type, log={"topic": e.topic, "partition": e.partition, "offset": e.offset})
    return doc


class FrameArchiveProjection:
    name = "mongo.frame_archive"
    topics = ("ocpp.frames",)

    def __init__(self, url: str, db: str, prefix: str = "") -> None:
        """`prefix` namespaces the collections (a rebuild writes `<prefix>ocpp_frames` beside the live one).
        Collections, not databases, because the embedded nx-27017 shares collections across databases."""
        self.client: pymongo.MongoClient = pymongo.MongoClient(url, serverSelectionTimeoutMS=10000, tz_aware=True)
        self.db = self.client[db]
        self.frames = self.db[f"{prefix}ocpp_frames"]
        self.offsets_col = self.db[f"{prefix}projection_offsets"]
        # create both collections outside any transaction: nx-27017 cannot commit a transaction that created one
        self.frames.create_index([("charge_point_id", 1), ("occurred_at", 1)])
        self.offsets_col.create_index([("projection", 1)])

    def close(self) -> None:
        self.client.close()

    def offsets(self, session: Any = None) -> dict[tuple[str, int], int]:
        return {(d["topic"], d["partition"]): d["next_offset"]
                for d in self.offsets_col.find({"projection": self.name}, session=session)}

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0

        def body(s: Any) -> int:
            new = unseen(events, self.offsets(s))
            if not new:
                return 0
            docs = [frame_document(e) for e in real(new)]
            if docs:
                self.frames.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=True,
                                       session=s)
            for (t, p), o in advanced(new).items():
                self.offsets_col.replace_one(
                    {"_id": f"{self.name}:{t}:{p}"},
                    {"_id": f"{self.name}:{t}:{p}", "projection": self.name, "topic": t, "partition": p,
                     "next_offset": o}, upsert=True, session=s)
            return len(new)

        return in_transaction(self.client, body)

    def checksum(self) -> str:
        h = hashlib.sha256()
        ids = sorted(d["_id"] for d in self.frames.find({}, {"_id": 1}))
        for i in range(0, len(ids), 1000):
            docs = {d["_id"]: d for d in self.frames.find({"_id": {"$in": ids[i:i + 1000]}})}
            for _id in ids[i:i + 1000]:
                h.update(json.dumps(docs[_id], sort_keys=True, default=str).encode())
        return h.hexdigest()

    def reset(self) -> None:
        self.frames.delete_many({})
        self.offsets_col.delete_many({"projection": self.name})
