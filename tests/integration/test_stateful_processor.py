"""The stateful processor's invariants (streams/stateful.py), against the real broker and Postgres."""

from __future__ import annotations

import uuid

import pytest

from chargeverse.avro import default_codec
from chargeverse.events import derive, envelope
from chargeverse.kafka import DeliveryError, EventProducer
from projections.base import SourcedEvent
from streams.stateful import StatefulProcessor
from support import read_topic

pytestmark = pytest.mark.integration


def _count_fold(out_topic: str):  # noqa: ANN202
    """A toy fold: count events per station; emit a heartbeat (id derived from the input) on every 2nd."""

    def fold(state, e: SourcedEvent):  # noqa: ANN001, ANN202
        n = (state or {}).get("n", 0) + 1
        outs = []
        if n % 2 == 0:
            rec = derive(e.record, tag="count", source="test", station_id=e.record["station_id"])
            outs.append((out_topic, e.record["station_id"], "StationHeartbeat", rec))
        return {"n": n}, outs

    return fold


def _events(n: int, stations: int, topic: str = "in") -> list[SourcedEvent]:
    out = []
    for i in range(n):
        rec = envelope(source="t", correlation_id="c")
        rec["station_id"] = f"S{i % stations}"
        out.append(SourcedEvent(topic, 0, i, "StationHeartbeat", rec))
    return out


def _proc(settings, name: str, out_topic: str, producer=None) -> StatefulProcessor:  # noqa: ANN001
    return StatefulProcessor(name, ("in",), settings.postgres_dsn.get_secret_value(), _count_fold(out_topic),
                             lambda e: e.record["station_id"], producer=producer)


def _new_topic(settings) -> str:  # noqa: ANN001
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"t-stateful-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result()
    return name


def test_outputs_on_the_log_state_and_offsets_committed_and_reapplying_is_a_no_op(settings, topics) -> None:  # noqa: ANN001
    out = _new_topic(settings)
    name = f"toy-{uuid.uuid4().hex[:6]}"
    p = _proc(settings, name, out)
    evs = _events(10, 2)
    assert p.apply(evs) == 10
    assert p.offsets() == {("in", 0): 10}
    msgs = read_topic(out, settings.kafka_bootstrap)
    assert len(msgs) == 4  # S0 and S1 reach n=2 and n=4
    before = p.checksum()
    assert p.apply(evs) == 0 and len(read_topic(out, settings.kafka_bootstrap)) == 4
    assert p.checksum() == before
    p.close()


def test_a_crash_after_publishing_reprocesses_with_identical_outputs(settings, topics) -> None:  # noqa: ANN001
    out = _new_topic(settings)
    name = f"toy-{uuid.uuid4().hex[:6]}"
    real_producer = EventProducer(settings.kafka_bootstrap)

    class DiesAfterPublish:
        def publish_many_sync(self, events):  # noqa: ANN001, ANN202
            real_producer.publish_many_sync(events)
            raise DeliveryError("worker killed before its commit")

    p = _proc(settings, name, out, producer=DiesAfterPublish())  # type: ignore[arg-type]
    evs = _events(4, 1)
    with pytest.raises(DeliveryError):
        p.apply(evs)
    assert p.offsets() == {} and p.checksum() == _proc(settings, f"{name}-empty", out).checksum()
    p2 = _proc(settings, name, out, producer=real_producer)
    assert p2.apply(evs) == 4
    msgs = read_topic(out, settings.kafka_bootstrap)
    ids = [default_codec().decode(m[3])[1]["event_id"] for m in msgs]
    assert len(ids) == 4 and len(set(ids)) == 2  # the re-published copies are identical: sinks drop them
    real_producer.close()
