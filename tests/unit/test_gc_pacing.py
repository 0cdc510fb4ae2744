"""chargeverse/gc_pacing.py: survivors leave the collector's walk; garbage cycles are still reclaimed, in bounded time."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, Iterator

import pytest

from chargeverse.gc_pacing import GcPacer


class Node:
    """A container object the cyclic collector tracks; `other` makes cycles."""

    def __init__(self) -> None:
        self.other: Any = None


def _cycle() -> tuple[Node, weakref.ref]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


def _walked(obj: object) -> bool:
    """Is `obj` in a generation the collector walks (i.e. not frozen)?"""
    return any(o is obj for i in range(3) for o in gc.get_objects(i))


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_a_tick_reclaims_young_garbage_and_freezes_what_survives() -> None:
    pacer = GcPacer()
    gc.disable()
    keep, _ = _cycle()
    garbage, gone = _cycle()
    del garbage
    assert gone() is not None and _walked(keep)
    pacer.freeze_young()
    assert gone() is None                      # young cyclic garbage collected
    assert not _walked(keep)                   # the survivor is out of every later walk
    assert gc.get_freeze_count() > 0


def test_a_ticks_pause_is_measured_and_the_longest_kept_for_the_report() -> None:
    pacer = GcPacer()
    gc.disable()
    pile = [_cycle() for _ in range(20_000)]   # a tick with much young garbage to walk
    del pile
    slow = pacer.freeze_young()
    fast = pacer.freeze_young()                # nothing young left
    assert slow > 0 and pacer.longest_young_ms == max(slow, fast) >= fast


def test_a_cycle_that_dies_after_it_was_frozen_waits_for_the_sweep_and_no_longer() -> None:
    pacer = GcPacer()
    gc.disable()
    old, gone = _cycle()
    pacer.freeze_young()                       # frozen while alive (a charger's connection, say)
    del old                                    # ... then the charger goes away
    pacer.freeze_young()
    gc.collect()                               # not even a full automatic-style collection walks frozen objects
    assert gone() is not None
    found, pause = pacer.sweep_all()
    assert gone() is None and found >= 2 and pause >= 0
    assert pacer.sweeps == 1 and gc.get_freeze_count() > 0  # frozen again after the sweep


def test_start_switches_the_collector_to_the_pacer_and_stop_hands_it_back() -> None:
    async def scenario() -> tuple[bool, bool, int, int, bool]:
        pacer = GcPacer(tick=0.01, sweep=0.05)
        pacer.start()
        enabled_while_running = gc.isenabled()
        old, gone = _cycle()
        await asyncio.sleep(0.03)              # ticks freeze it
        frozen = not _walked(old)
        del old
        for _ in range(100):                   # reclaimed by a sweep within sweep + tick
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        reclaimed = gone() is None
        await pacer.stop()
        return enabled_while_running, frozen, pacer.sweeps, gc.get_freeze_count(), reclaimed

    enabled, frozen, sweeps, frozen_after_stop, reclaimed = asyncio.run(scenario())
    assert not enabled and frozen and reclaimed and sweeps >= 1
    assert frozen_after_stop == 0 and gc.isenabled()


def test_a_sweep_is_due_only_at_its_period() -> None:
    pacer = GcPacer(sweep=3600)
    pacer._last_sweep = 0.0
    assert not pacer.sweep_due(3599.0) and pacer.sweep_due(3600.0)
    assert not GcPacer(sweep=0).sweep_due(1e9)  # 0 = never
