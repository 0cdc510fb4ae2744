"""Pacing of empty fetches for aiokafka (hence every Faust worker) when the broker ignores a Fetch's max wait.

Why: a Kafka broker holds a Fetch that finds no new record for up to the request's max wait (aiokafka's
`fetch_max_wait_ms`; Faust asks for 1.5 s) and answers as soon as a record arrives: that long poll is what keeps an
idle consumer cheap.  noida-db 0.2.3, the embedded broker (DESIGN.md §5), answers an empty Fetch at once, and
aiokafka sends a node's next Fetch the moment the previous one is done, so each idle consumer re-fetched ~15,000
times a second and an idle platform burnt about two cores (broker included).  The broker is a binary we cannot
change; the client has to make up the wait it skipped.

How: aiokafka keeps at most one fetch task per broker node in flight (`Fetcher._proc_fetch_request`); its fetcher
routine sends that node's next Fetch only after the task is done.  `install()` wraps that task: when a response
added no record and came back sooner than the max wait the request asked for, the task waits a little before it
ends -- 1 ms after the first empty answer, doubling while answers stay empty, never more than the cap (20 ms by
default) nor the part of the max wait the broker left unserved.  A response with records resets the wait to zero.

Invariants:
- Nothing is skipped or reordered: the wait happens after aiokafka has fully handled the response (positions,
  buffered records, errors); the wrapper never touches either.
- Latency cost is bounded by the cap: a record produced while a consumer waits is fetched at most `cap_ms` later,
  and a busy consumer (every answer carries records) never waits.
- Stopping and rebalancing are not held up: the wait is an `asyncio.sleep` inside the very task aiokafka cancels
  on `close()` and on losing an assignment.  A cancelled wait ends the task with aiokafka's own "nothing new"
  result (`False`, as aiokafka does when cancelled while sending), so `Fetcher.close()` -- which cancels, then
  awaits, each pending task -- finishes at once instead of receiving a CancelledError mid-shutdown.
- On a broker that honours the max wait (Apache Kafka, production) an empty answer arrives only after the max wait,
  so no wait is ever added there.

`install()` patches the class once per process (idempotent; `uninstall()` restores it, for tests) and refuses, with
a warning and no patch, an aiokafka whose fetcher does not have the shape this was written against (0.14).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

#: first wait after an empty answer, in seconds; doubled per further empty answer up to the cap
FIRST_WAIT_S = 0.001
DEFAULT_CAP_MS = 20

_ORIGINAL_ATTR = "_cv_original_proc_fetch_request"
_STATE_ATTR = "_cv_empty_fetch_wait"


def next_wait(previous: float, got_records: bool, elapsed: float, max_wait: float, cap: float) -> float:
    """The pause, in seconds, before a node's next Fetch (pure: the policy, unit-tested on its own).

    `previous` is the pause after the node's last answer (0 after records), `elapsed` how long this Fetch took,
    `max_wait` the wait the request asked the broker for, `cap` the longest pause allowed."""
    if got_records or cap <= 0:
        return 0.0
    grown = FIRST_WAIT_S if previous <= 0 else previous * 2
    return max(0.0, min(grown, cap, max_wait - elapsed))


def _fetcher_class() -> Any:
    from aiokafka.consumer.fetcher import Fetcher

    return Fetcher


def _shape_ok(proc: Any) -> bool:
    if proc is None or not inspect.iscoroutinefunction(proc):
        return False
    return list(inspect.signature(proc).parameters) == ["self", "assignment", "node_id", "request"]


def installed() -> bool:
    return _ORIGINAL_ATTR in vars(_fetcher_class())


def install(cap_ms: int = DEFAULT_CAP_MS) -> bool:
    """Pace empty fetches of every aiokafka consumer in this process; True when the patch is (now) in place.

    `cap_ms <= 0` installs nothing (and removes an earlier install), for a broker that honours the max wait."""
    cls = _fetcher_class()
    if cap_ms <= 0:
        uninstall()
        return False
    original = vars(cls).get(_ORIGINAL_ATTR) or getattr(cls, "_proc_fetch_request", None)
    if not _shape_ok(original):
        log.warning("aiokafka's Fetcher._proc_fetch_request is not the shape chargeverse.fetch_backoff knows; "
                    "empty fetches are not paced (idle consumers will spin against a broker ignoring max wait)")
        return False
    cap = cap_ms / 1000.0

    @functools.wraps(original)
    async def paced(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        started = time.monotonic()
        got = await original(self, assignment, node_id, request)
        waits: dict[int, float] = self.__dict__.setdefault(_STATE_ATTR, {})
        max_wait = getattr(self, "_fetch_max_wait_ms", 500) / 1000.0
        wait = next_wait(waits.get(node_id, 0.0), bool(got), time.monotonic() - started, max_wait, cap)
        waits[node_id] = wait
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # cancelled while sending: aiokafka swallowed it and returned; the task is wanted finished, not paused
            return bool(got)
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # close() or a lost assignment: end like aiokafka's own cancelled fetch, so its awaiter goes on
                return bool(got)
        return bool(got)

    setattr(cls, _ORIGINAL_ATTR, original)
    cls._proc_fetch_request = paced
    return True


def uninstall() -> None:
    cls = _fetcher_class()
    original: Callable[..., Awaitable[bool]] | None = vars(cls).get(_ORIGINAL_ATTR)
    if original is not None:
        cls._proc_fetch_request = original
        delattr(cls, _ORIGINAL_ATTR)
