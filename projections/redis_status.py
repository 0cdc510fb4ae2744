"""Redis projection of the `stations` topic: live station and connector status for the apps.

Keys (prefix `cv` live; a rebuild uses its own prefix):
- `{p}:station:{id}`   hash: online, edge_instance, last_heartbeat_at, boot_status, updated_at
- `{p}:connectors:{id}` hash: connector id -> JSON {status, error_code, info, status_at}
- `{p}:offsets:{projection}` hash: "topic:partition" -> next offset
Rows and offsets are written in one MULTI/EXEC transaction; events below the stored offset are skipped.  Everything
here can be rebuilt from the log.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Sequence

import redis

from projections.base import SourcedEvent, advanced, real, unseen
from projections.station_fold import fold

LIVE_STATION_FIELDS = ("online", "edge_instance", "last_heartbeat_at", "boot_status", "updated_at")


def _text(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bool):
        return "1" if v else "0"
    return "" if v is None else str(v)


class LiveStatusProjection:
    name = "redis.live_status"
    topics = ("stations",)

    def __init__(self, url: str, prefix: str = "cv") -> None:
        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self._offsets_key = f"{prefix}:offsets:{self.name}"

    def close(self) -> None:
        self.r.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        out = {}
        for k, v in self.r.hgetall(self._offsets_key).items():
            t, p = k.rsplit(":", 1)
            out[(t, int(p))] = int(v)
        return out

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0
        # One writer per partition (the consumer group) makes read-then-MULTI safe; WATCH guards against a
        # second writer anyway.
        with self.r.pipeline(transaction=True) as pipe:
            pipe.watch(self._offsets_key)
            new = unseen(events, self.offsets())
            if not new:
                pipe.unwatch()
                return 0
            patches = fold(real(new))
            pipe.multi()
            for sid, cols in patches.stations.items():
                live = {k: _text(cols[k]) for k in LIVE_STATION_FIELDS if k in cols}
                if "online" not in cols:
                    pipe.hsetnx(f"{self.prefix}:station:{sid}", "online", "0")
                if live:
                    pipe.hset(f"{self.prefix}:station:{sid}", mapping=live)
            for (sid, cid), cols in patches.connectors.items():
                if "status" in cols:
                    pipe.hset(f"{self.prefix}:connectors:{sid}", str(cid), json.dumps(
                        {k: _text(cols.get(k)) for k in ("status", "error_code", "info", "status_at")}))
            pipe.hset(self._offsets_key, mapping={f"{t}:{p}": o for (t, p), o in advanced(new).items()})
            pipe.execute()
        return len(new)

    def _own_keys(self) -> list[str]:
        """The keys this projection owns.  Only these: other state shares the Redis (auth keyring, rate limits,
        OCPP routes) and a rebuild must never touch it."""
        keys: list[str] = []
        for kind in ("station", "connectors"):
            keys.extend(self.r.scan_iter(f"{self.prefix}:{kind}:*", count=1000))
        return keys

    def checksum(self) -> str:
        h = hashlib.sha256()
        keys = sorted(self._own_keys())
        for k in keys:
            h.update(k[len(self.prefix):].encode())
            h.update(json.dumps(sorted(self.r.hgetall(k).items())).encode())
        return h.hexdigest()

    def reset(self) -> None:
        keys = [*self._own_keys(), self._offsets_key]
        for i in range(0, len(keys), 1000):
            self.r.delete(*keys[i:i + 1000])

