"""read_batches: a KafkaError from getmany is logged and becomes an empty read after a pause, never an escape
that would stop a worker's consumer for good; records pass through untouched."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.errors import KafkaConnectionError

from chargeverse.aiokafka_read import read_batches


class _Consumer:
    def __init__(self, outcomes: list) -> None:  # noqa: ANN001
        self.outcomes = outcomes
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict:
        self.asked.append((timeout_ms, max_records))
        out = self.outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out


def test_records_pass_through_and_a_broker_error_is_an_empty_read_after_a_pause(caplog) -> None:  # noqa: ANN001
    c = _Consumer([{"tp": ["r1", "r2"]}, KafkaConnectionError("broker restarting"), {"tp": ["r3"]}])

    async def run() -> list:
        out = [await read_batches(c, "push worker", timeout_ms=50, max_records=500)]
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING):
            out.append(await read_batches(c, "push worker", timeout_ms=50, max_records=500, pause_s=0.2))
        out.append(time.monotonic() - t0)
        out.append(await read_batches(c, "push worker", timeout_ms=50, max_records=500))
        return out

    first, failed, waited, after = asyncio.run(run())
    assert first == {"tp": ["r1", "r2"]} and after == {"tp": ["r3"]}
    assert failed == {} and waited >= 0.2  # no busy retry loop against a broker that is down
    assert "push worker: consume failed" in caplog.text and "broker restarting" in caplog.text
    assert c.asked == [(50, 500)] * 3
