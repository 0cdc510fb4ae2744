"""The operators' and analysts' ways in: `cv` commands and the worker's lag endpoint, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from chargeverse import ROOT
from chargeverse.events import envelope
from chargeverse.kafka import DeliveryError, EventProducer
from chargeverse.stack import free_port
from support import wait_for

pytestmark = pytest.mark.integration


def cv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chargeverse.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_replay_command_rebuilds_beside_the_live_projection_and_checks_it(platform, unique) -> None:  # noqa: ANN001
    from chargeverse.lag import projection_lag

    wait_for("pg.stations to catch up", lambda: projection_lag()["pg.stations"]["total"] == 0)
    r = cv("replay", "postgres", "--into", f"cli_{unique}", "--check")
    assert r.returncode == 0, r.stderr
    assert "identical to the live projection" in r.stdout and "events/s" in r.stdout
    refused = cv("replay", "postgres")  # never rebuilds the live one by accident
    assert refused.returncode == 2 and "--into" in refused.stderr


def test_tail_prints_typed_events_as_json_lines(platform, unique) -> None:  # noqa: ANN001
    p = EventProducer()
    hb = envelope(source="test", correlation_id=unique)
    hb["station_id"] = f"TAIL-{unique}"
    p.publish_sync("stations", hb["station_id"], "StationHeartbeat", hb)
    p.close()
    r = cv("tail", "stations")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    mine = [x for x in lines if x.get("station_id") == f"TAIL-{unique}"]
    assert len(mine) == 1 and mine[0]["type"] == "StationHeartbeat" and mine[0]["event_id"] == hb["event_id"]
    assert "partition" in mine[0]["_log"]
    assert cv("tail", "no.such.topic").returncode == 2


def test_worker_reports_lag_per_partition(platform) -> None:  # noqa: ANN001
    lag = httpx.get(f"{platform.worker}/lag", timeout=30).json()
    from streams.registry import CONSUMERS

    assert set(lag) == {c.name for c in CONSUMERS}
    assert {"stations", "pg.stations", "redis.live_status", "mongo.frame_archive"} <= set(lag)
    assert set(lag["pg.stations"]["stations"]) == {str(p) for p in range(6)}
    assert all(v["lag"] >= 0 and v["end"] >= v["position"] - 0 for v in lag["pg.stations"]["stations"].values())
    r = cv("lag")
    assert r.returncode == 0 and "pg.stations" in r.stdout and "total lag" in r.stdout


def test_topics_list_and_flow_name_every_topic_and_consumer(stack) -> None:  # noqa: ANN001
    from chargeverse.topics import CATALOGUE

    listed = cv("topics", "list").stdout
    flow = cv("flow").stdout
    for t in CATALOGUE:
        assert t.name in listed and t.name in flow
    assert "pg.stations" in flow and "mongo.frame_archive" in flow


def test_producer_reports_a_failed_delivery_to_its_caller() -> None:
    dead = EventProducer(bootstrap=f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1500})
    hb = envelope(source="t", correlation_id="c")
    hb["station_id"] = "X"
    with pytest.raises(DeliveryError):
        dead.publish_sync("stations", "X", "StationHeartbeat", hb, timeout=10)
    dead._stop.set()


def test_read_range_and_committed_offsets_are_exact(stack, topics, unique) -> None:  # noqa: ANN001
    """The processor's gap guard reads [committed offset, batch start) from the log with these two."""
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config, committed_offsets, read_range, resume_offsets

    p = EventProducer()
    delivered = [p.publish_sync("ocpp.commands", f"K-{unique}", "StationHeartbeat",
                                {**envelope(source="t", correlation_id=str(i)), "station_id": f"K-{unique}"})
                 for i in range(5)]
    p.close()
    part = delivered[0].partition
    first, last = delivered[0].offset, delivered[-1].offset
    got = read_range({("ocpp.commands", part): (first + 1, last)})
    assert [m.offset() for m in got] == list(range(first + 1, last))
    group = f"g-{unique}"
    assert committed_offsets(group, [("ocpp.commands", part)]) == {}
    c = Consumer({**base_config(), "group.id": group, "enable.auto.commit": False})
    log_start = c.get_watermark_offsets(TopicPartition("ocpp.commands", part), timeout=10)[0]
    # a group that never committed resumes (reset to earliest) at the start of the log: the guard expects that
    assert resume_offsets(group, [("ocpp.commands", part)]) == {("ocpp.commands", part): log_start}
    c.commit(offsets=[TopicPartition("ocpp.commands", part, last)], asynchronous=False)
    c.close()
    assert committed_offsets(group, [("ocpp.commands", part)]) == {("ocpp.commands", part): last}
    assert resume_offsets(group, [("ocpp.commands", part)]) == {("ocpp.commands", part): last}
