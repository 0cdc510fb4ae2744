"""Coalescing of concurrent keyed reads into batched ones: one Postgres statement for the N chargers that shake
hands at the same moment, not N round trips.

Why: in a reconnect storm every handshake reads its charger's registration (and every BootNotification re-reads
it).  One psycopg round trip costs the event loop a send, a wake-up and a receive; under a storm of hundreds of
handshakes a second those system calls, not the query, were the edge's limit (bench/RESULTS.md, OCPP edge).
Batching turns N round trips into N / batch.

How: a read starts a fetch at once when fewer than `max_inflight` fetches are running (so an idle edge answers a
lone handshake with no added delay); otherwise it waits, and when a fetch finishes, every key that arrived
meanwhile goes out in the next one (up to `max_batch` keys).  No timer, no linger.

Invariants:
- freshness is unchanged: a read is only ever answered by a fetch that STARTED after the read was asked, so a
  revocation committed before a handshake began is always seen by that handshake (nothing is cached here);
- every waiter gets an answer or the fetch's exception; a failed fetch fails only the reads it carried;
- a key absent from the fetch's answer is answered None (unknown).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, Mapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    def __init__(self, fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]], *, max_batch: int = 256,
                 max_inflight: int = 2) -> None:
        if max_batch < 1 or max_inflight < 1:
            raise ValueError("max_batch and max_inflight must be >= 1")
        self.fetch = fetch
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: fetches made and keys read, for the bench and tests (keys / fetches = the batching achieved)
        self.fetches = 0
        self.keys = 0

    async def get(self, key: K) -> V | None:
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(fut)
        self._pump()
        return await fut

    def _pump(self) -> None:
        while self._waiting and self._running < self.max_inflight:
            batch: dict[K, list[asyncio.Future[V | None]]] = {}
            for key in list(self._waiting)[:self.max_batch]:
                batch[key] = self._waiting.pop(key)
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            self.fetches += 1
            self.keys += len(batch)
            try:
                found = await self.fetch(list(batch))
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter of this batch
                for futs in batch.values():
                    for f in futs:
                        if not f.done():
                            f.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                if not isinstance(exc, Exception):
                    raise
                return
            for key, futs in batch.items():
                value = found.get(key)
                for f in futs:
                    if not f.done():
                        f.set_result(value)
        finally:
            self._running -= 1
            self._pump()
