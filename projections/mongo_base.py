"""What every Mongo projection shares: its client, its offsets collection, and the transactional batch skeleton.

Why one base: a Mongo projection's guarantee (documents and the offsets they came from are written in one
transaction, so a crash or a redelivery never applies an event twice or loses one) lives in exactly one place.
A subclass names its collections and writes its documents for the new events of a batch; this class skips what
was applied, runs the write and the offset update in one transaction (retried whole on a transient conflict,
projections/mongo_tx.py), and answers `offsets()` for the follower and the replay.
"""

from __future__ import annotations

from typing import Any, Sequence

import pymongo

from projections.base import SourcedEvent, advanced, unseen
from projections.mongo_tx import in_transaction


class MongoProjection:
    name: str = ""
    topics: tuple[str, ...] = ()

    def __init__(self, url: str, db: str, prefix: str = "") -> None:
        """`prefix` namespaces the collections (a rebuild writes beside the live ones).  Collections, not databases,
        because the embedded nx-27017 shares collections across databases."""
        self.client: pymongo.MongoClient = pymongo.MongoClient(url, serverSelectionTimeoutMS=10000, tz_aware=True)
        self.db = self.client[db]
        self.prefix = prefix
        self.offsets_col = self.db[f"{prefix}projection_offsets"]
        # collections and indexes are created outside any transaction: nx-27017 cannot commit a transaction that
        # created a collection
        self.offsets_col.create_index([("projection", 1)])

    def close(self) -> None:
        self.client.close()

    def offsets(self, session: Any = None) -> dict[tuple[str, int], int]:
        return {(d["topic"], d["partition"]): d["next_offset"]
                for d in self.offsets_col.find({"projection": self.name}, session=session)}

    def write(self, new: list[SourcedEvent], session: Any) -> None:
        """Write the documents of the batch's not-yet-applied events (inside the batch's transaction)."""
        raise NotImplementedError

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0

        def body(s: Any) -> int:
            new = unseen(events, self.offsets(s))
            if not new:
                return 0
            self.write(new, s)
            for (t, p), o in advanced(new).items():
                self.offsets_col.replace_one(
                    {"_id": f"{self.name}:{t}:{p}"},
                    {"_id": f"{self.name}:{t}:{p}", "projection": self.name, "topic": t, "partition": p,
                     "next_offset": o}, upsert=True, session=s)
            return len(new)

        return in_transaction(self.client, body)

    def reset_offsets(self) -> None:
        self.offsets_col.delete_many({"projection": self.name})
