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
- a sweep unfreezes the permanent generation, collects it in full and freezes it again: the cycles that became
  garbage after their objects were frozen (a charger's connection that later closed) are reclaimed then.  A sweep
  pauses as long as a full collection (0.5-0.8 s at 10,000 sockets, measured), so it runs rarely: every `sweep`
  seconds (an hour by default).  That is cheap in memory because little such garbage exists: frozen objects are
  still freed by reference counting the moment they are dropped, so the frozen set tracks the live sockets, and
  sweeps every 15 s through a 10,000-charger reconnect storm found 0-10 garbage objects each (bench/RESULTS.md).
  (Growth of the frozen set is no signal: it grows when chargers connect, not when garbage accumulates.)  Each
  sweep is logged with its pause and what it reclaimed; `sweep=0` never sweeps.

Invariant: no garbage cycle outlives one `sweep` period plus one tick; no pause other than a sweep walks objects
older than one tick.  `stop()` unfreezes and switches the automatic collector back on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

#: a young-collection pause worth a warning (ms)
SLOW_MS = 50.0


def freeze_startup_objects() -> None:
    """Collect, then freeze everything built so far, leaving the automatic collector as it is: enough for a
    process whose long-lived objects are made at start-up (an API worker).  Measured with bench/station_search.py:
    the full pacer's young collection each second cost a paced API's p99 4.8 -> 25 ms (per-request garbage cycles
    pile up for a second); freezing once keeps the cheap automatic young collections."""
    gc.collect()
    gc.freeze()


class GcPacer:
    def __init__(self, tick: float = 1.0, sweep: float = 3600.0) -> None:
        self.tick, self.sweep = tick, sweep
        self._task: asyncio.Task[None] | None = None
        self.sweeps = 0
        self.last_sweep_ms = 0.0
        #: the longest young-collection pause since the last report (logged once a minute when over SLOW_MS)
        self.longest_young_ms = 0.0
        self._last_report = time.monotonic()
        self._last_sweep = time.monotonic()

    def sweep_due(self, now: float) -> bool:
        return self.sweep > 0 and now - self._last_sweep >= self.sweep

    def start(self) -> None:
        """Collect and freeze what start-up built, switch the automatic collector off, and keep collecting young
        objects and freezing survivors from the running loop."""
        gc.collect()
        gc.freeze()
        gc.disable()
        self._last_sweep = time.monotonic()
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

    def freeze_young(self) -> float:
        """One tick: collect what is young, freeze what survived.  Returns the pause in ms."""
        started = time.perf_counter()
        gc.collect(1)
        gc.freeze()
        pause = (time.perf_counter() - started) * 1000
        self.longest_young_ms = max(self.longest_young_ms, pause)
        return pause

    def sweep_all(self) -> tuple[int, float]:
        """Reclaim cycles among frozen objects: (objects collected, pause in ms)."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        pause = (time.perf_counter() - started) * 1000
        self.sweeps += 1
        self.last_sweep_ms = pause
        self._last_sweep = time.monotonic()
        return found, pause

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.freeze_young()
            now = time.monotonic()
            if now - self._last_report >= 60:
                if self.longest_young_ms > SLOW_MS:  # every frame in flight waited this long
                    log.warning("gc: young collections paused the process up to %.0f ms in the last %.0f s",
                                self.longest_young_ms, now - self._last_report)
                self.longest_young_ms, self._last_report = 0.0, now
            if self.sweep_due(time.monotonic()):
                # counting the frozen objects walks them all (it took 11% of the edge's samples when done each
                # tick): only here, once a sweep
                before = gc.get_freeze_count()
                found, pause = self.sweep_all()
                log.info("gc sweep: %d of %d frozen objects were garbage, reclaimed in a %.0f ms pause", found,
                         before, pause)
