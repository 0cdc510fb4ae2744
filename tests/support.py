"""Helpers for integration tests: read the log, wait for projections (bounded waits only)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
import uuid
from typing import Any, Callable

from confluent_kafka import Consumer, TopicPartition

from chargeverse.avro import DecodeError, default_codec
from chargeverse.kafka import base_config


def read_topic(topic: str, bootstrap: str | None = None) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every message now on `topic` as (partition, offset, key, value), up to the high watermarks."""
    cfg = base_config(bootstrap)
    cfg.update({"group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    c = Consumer(cfg)
    try:
        md = c.list_topics(topic, timeout=10)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in md.topics[topic].partitions}
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        out = []
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error() or m.partition() not in todo:
                    continue
                out.append((m.partition(), m.offset(), m.key(), m.value()))
                if m.offset() + 1 >= ends[m.partition()][1]:
                    todo.discard(m.partition())
        assert not todo, f"could not read {topic} to its end"
        return sorted(out)
    finally:
        c.close()


def events(topic: str, where: Callable[[str, dict[str, Any]], bool] = lambda t, r: True,
           bootstrap: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    codec = default_codec()
    out = []
    for _, _, _, value in read_topic(topic, bootstrap):
        try:
            etype, rec = codec.decode(value)
        except DecodeError:
            continue
        if where(etype, rec):
            out.append((etype, rec))
    return out


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll `fn` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


#: tests set station tariffs in effect from here: their sessions carry fixed timestamps (some in the past), and a
#: tariff set "now" would not be in effect when such a session started (billing: UNKNOWN_TARIFF)
TARIFFS_SINCE = datetime(2020, 1, 1, tzinfo=timezone.utc)
