"""Consumer lag per partition, for operators: how far each processor and projection is behind the log.

A projection's lag is measured from the offsets it stores with its rows (what is really applied), a processor's
from its consumer group's committed offsets.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, TopicPartition

from chargeverse.kafka import base_config
from chargeverse.settings import get_settings


def _high_watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    md = consumer.list_topics(topic, timeout=10)
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in md.topics[topic].partitions}


def projection_lag() -> dict[str, Any]:
    """{consumer: {topic: {partition: {"position": n, "end": n, "lag": n}}, "total": n}}."""
    from projections.registry import build
    from streams.registry import CONSUMERS, PROJECTIONS

    from streams.registry import group_id

    cfg = base_config()
    cfg.update({"group.id": f"lag-{get_settings().worker_id}", "enable.auto.commit": False})
    consumer = Consumer(cfg)
    out: dict[str, Any] = {}
    try:
        highs = {t: _high_watermarks(consumer, t) for c in CONSUMERS for t in c.consumes}
        for c in CONSUMERS:
            if c.name in PROJECTIONS:  # projections and stateful processors keep their offsets in their store
                proj = build(PROJECTIONS[c.name])
                try:
                    positions = proj.offsets()
                finally:
                    proj.close()  # type: ignore[attr-defined]
            else:  # the committed offsets of the processor's own consumer group
                gcfg = dict(cfg, **{"group.id": group_id(c.group)})
                gconsumer = Consumer(gcfg)
                try:
                    tps = [TopicPartition(t, p) for t in c.consumes for p in highs[t]]
                    positions = {(tp.topic, tp.partition): max(tp.offset, 0)
                                 for tp in gconsumer.committed(tps, timeout=10)}
                finally:
                    gconsumer.close()
            entry: dict[str, Any] = {"kind": c.kind, "total": 0}
            for t in c.consumes:
                parts = {}
                for p, end in sorted(highs[t].items()):
                    pos = positions.get((t, p), 0)
                    parts[p] = {"position": pos, "end": end, "lag": max(end - pos, 0)}
                    entry["total"] += parts[p]["lag"]
                entry[t] = parts
            out[c.name] = entry
    finally:
        consumer.close()
    return out
