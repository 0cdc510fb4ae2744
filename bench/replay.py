"""Replay rate: rebuild the stations projections from offset 0 of a `stations` topic holding N events.

    .venv/bin/python bench/replay.py [--events 1000000] [--stations 1000] [--quick]   (--quick: 100,000 events)

Starts its own embedded stack (temp dir, free ports), creates the catalogue topics, and writes N synthetic but
realistic `stations` events with the platform's Codec (Avro single-object encoding), keyed by station id with
murmur2 like every platform writer: StationRegistered for each station first, then mostly ConnectorStatusChanged
and StationHeartbeat, with a few StationBooted / StationConnectionChanged (reboots).  Generating and producing them
is not part of any figure.

Then, in the same run:
- baseline: raw consume rate of that same topic (confluent-kafka, from the beginning, no decoding; best of 2);
- `projections.replay.replay(StationsProjection(dsn, schema))` from offset 0 into an empty Postgres schema;
- the same into Redis (`LiveStatusProjection` under an empty key prefix).
Each replay is checked (offsets cover all N events; 1 row per station).  Prints ONE line: events/s and the ratio to
the raw consume rate, plus the per-event decode cost measured on a sample (where the time goes).
Target (issue 2): replay >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import consume_all, temp_stack, use_env  # noqa: E402

STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "Finishing", "Available", "Charging")


def generate(bootstrap: str, n: int, stations: int, seed: int = 7, timeout: float = 240.0) -> dict[str, int]:
    """Produce n `stations` events (idempotent, acks=all); returns counts per event type."""
    from confluent_kafka import Producer

    from chargeverse.avro import default_codec
    from chargeverse.events import uuid7
    from chargeverse.passwords import hash_machine_secret

    codec = default_codec()
    rnd = random.Random(seed)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20,
                  "batch.size": 1_000_000, "compression.type": "lz4", "partitioner": "murmur2_random",
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                  "log.connection.close": False})
    errors: list[str] = []

    def done(err, msg) -> None:  # noqa: ANN001
        if err is not None:
            errors.append(str(err))

    deadline = time.monotonic() + timeout

    def produce(key: str, value: bytes) -> None:
        while True:
            try:
                p.produce("stations", value=value, key=key.encode(), on_delivery=done)
                return
            except BufferError:
                p.poll(0.01)
                if time.monotonic() > deadline:
                    raise RuntimeError("generation: producer queue stayed full past the time bound")

    t = datetime(2025, 1, 6, 6, 0, tzinfo=timezone.utc)
    step = timedelta(milliseconds=37)
    ids = [f"BENCH-{i:06d}" for i in range(stations)]
    conn_of = {sid: uuid7() for sid in ids}
    one_hash = hash_machine_secret("bench-secret-0123456789")  # argon2id of the light profile; same for all
    counts: dict[str, int] = {}

    def emit(etype: str, sid: str, payload: dict, source: str = "streams.stations") -> None:
        nonlocal t
        t += step
        rec = {"event_id": uuid7(), "occurred_at": t, "recorded_at": t, "source": source,
               "correlation_id": conn_of[sid], "causation_id": uuid7(), "station_id": sid}
        rec.update(payload)
        produce(sid, codec.encode(etype, rec))
        counts[etype] = counts.get(etype, 0) + 1

    for i, sid in enumerate(ids[:n]):
        lat, lon = 48.0 + rnd.random() * 6, 2.0 + rnd.random() * 12
        emit("StationRegistered", sid, dict(
            name=f"Bench station {i}", operator="chargeverse-bench", latitude=lat, longitude=lon,
            address=f"{i} Benchmark Street", own=True,
            connectors=[{"connector_id": c, "standard": "IEC_62196_T2", "max_power_kw": 22.0} for c in (1, 2)],
            password_hash=one_hash, security_profile=1), source="cli")
    for i in range(n - min(n, stations)):
        if time.monotonic() > deadline:
            raise RuntimeError("generation exceeded its time bound")
        sid = ids[rnd.randrange(stations)]
        x = rnd.random()
        if x < 0.70:
            emit("ConnectorStatusChanged", sid, dict(
                connector_id=rnd.randint(0, 2), status=rnd.choice(STATUSES), error_code="NoError", info=None,
                vendor_error_code=None))
        elif x < 0.97:
            emit("StationHeartbeat", sid, {})
        elif x < 0.99:
            conn_of[sid] = uuid7()
            emit("StationConnectionChanged", sid, dict(online=rnd.random() < 0.8, edge_instance="bench:1:9000"))
        else:
            emit("StationBooted", sid, dict(vendor="chargeverse-sim", model="SIM-22", serial_number=f"SN-{sid}",
                                            firmware_version="1.0.0", status="Accepted", interval=300))
        if i & 4095 == 0:
            p.poll(0)
    left = p.flush(max(1.0, deadline - time.monotonic()))
    if left or errors:
        raise RuntimeError(f"generation: {left} unacknowledged, errors {errors[:3]}")
    return counts


def decode_cost_us(bootstrap: str, sample: int = 50_000) -> float:
    """Average µs to decode one event (Codec.decode), on the first `sample` messages of the topic."""
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.avro import default_codec

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-decode", "enable.auto.commit": False,
                  "log.connection.close": False, "receive.message.max.bytes": 1_000_000_000})
    try:
        c.assign([TopicPartition("stations", p, 0) for p in range(6)])
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(values) < sample and time.monotonic() < deadline:
            values.extend(m.value() for m in c.consume(10000, timeout=0.5) if not m.error())
    finally:
        c.close()
    codec = default_codec()
    t0 = time.perf_counter()
    for v in values:
        codec.decode(v)
    return (time.perf_counter() - t0) / max(1, len(values)) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="100,000 events")
    a = ap.parse_args()
    n = 100_000 if a.quick else a.events

    with temp_stack() as st:
        env = st.env()
        use_env(env)
        from chargeverse.kafka import ensure_topics
        from projections.postgres.stations import StationsProjection
        from projections.redis_status import LiveStatusProjection
        from projections.replay import replay

        bootstrap = env["CV_KAFKA_BOOTSTRAP"]
        ensure_topics(bootstrap=bootstrap)
        t0 = time.perf_counter()
        counts = generate(bootstrap, n, a.stations)
        gen_s = time.perf_counter() - t0

        # baseline: the same topic, raw (best of 2)
        raw = []
        for _ in range(2):
            got, secs, _ = consume_all(bootstrap, "stations", expected=n, timeout=240)
            raw.append(got / secs)
        raw_rate = max(raw)
        dec_us = decode_cost_us(bootstrap)

        # noida-db 0.2.3 ignores Fetch max_bytes and can answer with a partition's whole remainder (>100 MB at
        # 1M events); chargeverse.kafka.base_config raises librdkafka's receive limit for every consumer.
        pg = StationsProjection(env["CV_POSTGRES_DSN"], "bench_replay")
        pg.reset()
        pg_stats = replay(pg, bootstrap=bootstrap)
        pg_offsets = sum(pg.offsets().values())
        with pg.conn.transaction():
            pg_rows = pg.conn.execute("SELECT count(*) FROM stations").fetchone()[0]
        pg.close()
        if pg_stats.events != n or pg_offsets != n or pg_rows != min(n, a.stations):
            raise SystemExit(f"postgres replay incomplete: {pg_stats.events} read, offsets {pg_offsets}, "
                             f"{pg_rows} stations")

        rd = LiveStatusProjection(env["CV_REDIS_URL"], "bench_replay")
        rd.reset()
        rd_stats = replay(rd, bootstrap=bootstrap)
        rd_offsets = sum(rd.offsets().values())
        rd.close()
        if rd_stats.events != n or rd_offsets != n:
            raise SystemExit(f"redis replay incomplete: {rd_stats.events} read, offsets {rd_offsets}")

    mix = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    verdict = "MET" if pg_stats.rate >= 20_000 else "NOT MET"
    print(f"replay {n:,} stations events ({a.stations:,} stations; {mix}; generated in {gen_s:.0f} s): "
          f"raw consume {raw_rate:,.0f} ev/s | postgres {pg_stats.rate:,.0f} ev/s "
          f"({pg_stats.rate / raw_rate:.1%} of raw, {pg_stats.seconds:.1f} s) | redis {rd_stats.rate:,.0f} ev/s "
          f"({rd_stats.rate / raw_rate:.1%} of raw, {rd_stats.seconds:.1f} s) | decode {dec_us:.1f} us/ev "
          f"(= {1e6 / dec_us:,.0f} ev/s cap) | target postgres >= 20,000 ev/s: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
