"""Keys decide order: every writer (our confluent-kafka producer, Faust's aiokafka producer) must put a key on the
same partition, or the events of one station interleave unpredictably across partitions."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from chargeverse.kafka import EventProducer
from chargeverse.settings import get_settings

pytestmark = pytest.mark.integration


async def test_our_producer_and_fausts_producer_agree_on_every_keys_partition(topics) -> None:  # noqa: ANN001
    keys = [f"CP-{i}" for i in range(60)]
    ours = EventProducer()
    theirs = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap)
    await theirs.start()
    try:
        for k in keys:
            a = await ours.publish_raw("ocpp.commands", k, b"x")
            b = await (await theirs.send("ocpp.commands", value=b"x", key=k.encode()))
            assert a.partition == b.partition, f"key {k}: ours -> {a.partition}, aiokafka -> {b.partition}"
    finally:
        await theirs.stop()
        ours.close()
