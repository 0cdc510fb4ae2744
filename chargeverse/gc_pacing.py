"""Short, bounded cyclic-GC pauses for a process that holds many long-lived objects (the OCPP edge's sockets).

Why: CPython's cyclic collector stops the whole process and walks every tracked object of the generations it
collects.  An edge holding 10,000 chargers keeps about a million such objects alive (connection, protocol, reader,
tasks, buffers per socket); measured on the edge under bench/ocpp_edge.py at 10,000 chargers: young-generation
collections of 20-170 ms and one middle-generation collection of 609 ms within 90 s -- and every frame in flight
waits for them, which set the edge's p99 at ~400 ms while its median was 5 ms.  Those objects are not garbage; the
collector only re-proves it, again and again.

How (`GcPacer`):
- the automatic collector is switched off while the pacer runs: every collection is one of the two below, so no
  threshold can start a walk of the old objects at an arbitrary moment;
- every `tick` seconds the young generations are collected (`gc.collect(1)`: only what was allocated since the
  last tick, so the pause is proportional to one tick's new objects, not to the sockets held), then every survivor
  is frozen (`gc.freeze()`, constant time): moved to the permanent generation the automatic collector never walks;
- every `sweep` seconds the permanent generation is unfrozen, collected in full and frozen again: the cycles that
  became garbage after their objects were frozen (a charger's connection that later closed) are reclaimed then.
  That one pause is as long as a full collection (hundreds of ms at 10,000 sockets), once per `sweep`, and is
  logged with its length; `sweep=0` never sweeps (memory then only grows with churn: for benchmarks).

Invariant: no garbage cycle outlives one `sweep` period plus one tick; no pause other than the sweep walks
objects older than one tick.  `stop()` unfreezes and switches the automatic collector back on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


class GcPacer:
    def __init__(self, tick: float = 1.0, sweep: float = 600.0) -> None:
        self.tick, self.sweep = tick, sweep
        self._task: asyncio.Task[None] | None = None
        self.sweeps = 0
        self.last_sweep_ms = 0.0

    def start(self) -> None:
        """Collect and freeze what start-up built, switch the automatic collector off, and keep collecting young
        objects and freezing survivors from the running loop."""
        gc.collect()
        gc.freeze()
        gc.disable()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gc-pacer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        gc.unfreeze()
        gc.enable()

    def freeze_young(self) -> None:
        """One tick: collect what is young, freeze what survived."""
        gc.collect(1)
        gc.freeze()

    def sweep_all(self) -> tuple[int, float]:
        """Reclaim cycles among frozen objects: (objects collected, pause in ms)."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        pause = (time.perf_counter() - started) * 1000
        self.sweeps += 1
        self.last_sweep_ms = pause
        return found, pause

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep
        while True:
            await asyncio.sleep(self.tick)
            if self.sweep > 0 and time.monotonic() >= next_sweep:
                found, pause = self.sweep_all()
                log.info("gc sweep: %d unreachable objects reclaimed in a %.0f ms pause", found, pause)
                next_sweep = time.monotonic() + self.sweep
            else:
                self.freeze_young()
