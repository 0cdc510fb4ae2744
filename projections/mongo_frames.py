"""Mongo projection of `ocpp.frames`: the frame archive operators search when debugging a charger.

One document per event (`_id` = event_id) holding the verbatim frame, its parsed action and where it sits on the
log.  Documents and offsets are written in one transaction; upserts by `_id` make a re-delivery harmless even on a
server without transactions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pymongo import ReplaceOne

from projections.base import SourcedEvent, real
from projections.mongo_base import MongoProjection


def frame_document(e: SourcedEvent) -> dict[str, Any]:
    r = e.record
    doc = {k: v for k, v in r.items() if k != "event_id"}
    doc.update(_id=r["event_id"], kind=e.type, log={"topic": e.topic, "partition": e.partition, "offset": e.offset})
    return doc


class FrameArchiveProjection(MongoProjection):
    name = "mongo.frame_archive"
    topics = ("ocpp.frames",)

    def __init__(self, url: str, db: str, prefix: str = "") -> None:
        super().__init__(url, db, prefix)
        self.frames = self.db[f"{prefix}ocpp_frames"]
        self.frames.create_index([("charge_point_id", 1), ("occurred_at", 1)])

    def write(self, new: list[SourcedEvent], session: Any) -> None:
        docs = [frame_document(e) for e in real(new)]
        if docs:
            self.frames.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=True,
                                   session=session)

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
        self.reset_offsets()
