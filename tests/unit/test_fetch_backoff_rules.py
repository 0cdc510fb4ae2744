"""Empty-fetch pacing (chargeverse/fetch_backoff.py).  The policy: the pause grows from 1 ms while answers stay
empty, never past the cap nor past what the broker left unserved of the max wait, and drops to zero on records.
The patch: wraps aiokafka's fetch task once, restores it, refuses a fetcher of another shape, and a cancelled pause
ends the task with aiokafka's own result (so close() is never held up)."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from chargeverse import fetch_backoff
from chargeverse.fetch_backoff import FIRST_WAIT_S, next_wait

CAP = 0.05
MAX_WAIT = 1.5


def test_an_answer_with_records_never_waits() -> None:
    assert next_wait(CAP, True, 0.0, MAX_WAIT, CAP) == 0.0


def test_waits_grow_from_one_millisecond_and_stop_at_the_cap() -> None:
    waits, w = [], 0.0
    for _ in range(12):
        w = next_wait(w, False, 0.0001, MAX_WAIT, CAP)
        waits.append(w)
    assert waits[0] == FIRST_WAIT_S == 0.001
    assert all(b >= a for a, b in zip(waits, waits[1:]))
    assert max(waits) == CAP and waits[-1] == CAP
    assert waits.index(CAP) <= 7  # at the cap within a few empty answers: an idle consumer settles quickly


def test_records_after_idling_reset_the_wait() -> None:
    w = next_wait(CAP, False, 0.0, MAX_WAIT, CAP)
    assert w == CAP
    w = next_wait(w, True, 0.0, MAX_WAIT, CAP)
    assert w == 0.0
    assert next_wait(w, False, 0.0, MAX_WAIT, CAP) == FIRST_WAIT_S


@pytest.mark.parametrize("elapsed", [MAX_WAIT, MAX_WAIT + 0.3, 30.0])
def test_a_broker_that_held_the_fetch_for_its_max_wait_adds_no_wait(elapsed: float) -> None:
    """Apache Kafka answers an empty fetch only after the max wait: pacing must cost nothing there."""
    assert next_wait(CAP, False, elapsed, MAX_WAIT, CAP) == 0.0


def test_the_wait_only_makes_up_what_the_broker_left_unserved() -> None:
    assert next_wait(CAP, False, MAX_WAIT - 0.01, MAX_WAIT, CAP) == pytest.approx(0.01)


def test_a_cap_of_zero_disables_pacing() -> None:
    assert next_wait(CAP, False, 0.0, MAX_WAIT, 0.0) == 0.0


# ---- the patch itself, on a stand-in with the shape of aiokafka's Fetcher (no broker: the mechanics only) --------
class _FakeFetcher:
    """Answers every fetch at once, empty (as noida-db does), or with records when told."""

    _fetch_max_wait_ms = 1500

    def __init__(self) -> None:
        self.calls = 0
        self.records = False

    async def _proc_fetch_request(self, assignment, node_id, request):  # noqa: ANN001, ANN201 - aiokafka's shape
        self.calls += 1
        return self.records


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeFetcher]]:
    monkeypatch.setattr(fetch_backoff, "_fetcher_class", lambda: _FakeFetcher)
    original = _FakeFetcher._proc_fetch_request
    yield _FakeFetcher
    fetch_backoff.uninstall()
    assert _FakeFetcher._proc_fetch_request is original


def test_install_wraps_once_and_uninstall_restores(fake: type[_FakeFetcher]) -> None:
    original = fake._proc_fetch_request
    assert fetch_backoff.install(50) and fetch_backoff.installed()
    once = fake._proc_fetch_request
    assert fetch_backoff.install(20)  # a new cap re-wraps the original, never the wrapper
    assert fake._proc_fetch_request is not once and fake._proc_fetch_request.__wrapped__ is original
    fetch_backoff.uninstall()
    assert fake._proc_fetch_request is original and not fetch_backoff.installed()


def test_a_zero_cap_installs_nothing(fake: type[_FakeFetcher]) -> None:
    assert not fetch_backoff.install(0)
    assert not fetch_backoff.installed()


def test_an_unknown_fetcher_shape_is_refused_not_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other:
        async def _proc_fetch_request(self, node_id, request):  # noqa: ANN001, ANN202 - a different aiokafka
            return False

    monkeypatch.setattr(fetch_backoff, "_fetcher_class", lambda: Other)
    before = Other._proc_fetch_request
    assert not fetch_backoff.install(50)
    assert Other._proc_fetch_request is before


async def test_empty_answers_are_paced_and_records_reset_the_pause(fake: type[_FakeFetcher]) -> None:
    fetch_backoff.install(50)
    f = fake()
    for _ in range(8):
        assert await f._proc_fetch_request(None, 1, None) is False
    assert getattr(f, fetch_backoff._STATE_ATTR)[1] == 0.05  # grown to the cap
    f.records = True
    assert await f._proc_fetch_request(None, 1, None) is True
    assert getattr(f, fetch_backoff._STATE_ATTR)[1] == 0.0


async def test_cancelling_a_paused_fetch_ends_it_with_aiokafkas_result(fake: type[_FakeFetcher],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's close() cancels, then awaits, each pending fetch task: the task must end (not raise
    CancelledError into close(), not sit out the pause)."""
    monkeypatch.setattr(fetch_backoff, "FIRST_WAIT_S", 3600.0)
    fetch_backoff.install(3_600_000)
    fake._fetch_max_wait_ms = 7_200_000
    try:
        task = asyncio.create_task(fake()._proc_fetch_request(None, 1, None))
        await asyncio.sleep(0.05)
        assert not task.done()  # pausing for an hour
        task.cancel()
        assert await asyncio.wait_for(task, 5) is False
    finally:
        fake._fetch_max_wait_ms = 1500
