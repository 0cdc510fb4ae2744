"""Acknowledgement latency of the embedded broker: the floor under the OCPP edge's p99.

    .venv/bin/python bench/broker_acks.py [--seconds 20] [--rate 2000]

The OCPP edge answers a charger only after the broker has acknowledged (acks=all) the frame's event, so the
broker's acknowledgement tail is a floor under the edge's p99.  This starts a temp embedded stack (broker only) and
produces 300-byte events at about `--rate` per second, twice, with acks=all and linger 5 ms:

- `idempotent`: librdkafka's idempotent producer (what every producer used before; Kafka's default);
- `ordered`: what the embedded stack's producers use now (chargeverse.kafka.producer_safety with
  CV_KAFKA_IDEMPOTENT_PRODUCER=false): idempotence off, one request in flight per connection, endless retries.

It prints ONE line: p50/p99/p99.9/max from produce() to the delivery callback for each, and the idempotent p99 as
a multiple of the ordered p99 measured in the same run.  (Finding, session 6: against noida-db the idempotent
producer holds about 1% of sends back for up to 500 ms; the broker answers every request in under 5 ms.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import temp_stack, use_env  # noqa: E402

ORDERED = {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1, "retries": 2_147_483_647}


def _run(topic: str, safety: dict[str, Any], seconds: float, rate: float) -> dict[str, float]:
    from confluent_kafka import Producer

    from chargeverse.kafka import base_config

    p = Producer({**base_config(), "acks": "all", "linger.ms": 5, **safety})
    lat: list[float] = []

    def on_delivery(t0: float):  # noqa: ANN202
        return lambda err, msg: lat.append((time.perf_counter() - t0) * 1000 if err is None else float("inf"))

    gap, i = 1.0 / rate, 0
    start = time.perf_counter()
    while (now := time.perf_counter()) < start + seconds:
        p.produce(topic, key=str(i).encode(), value=b"x" * 300, on_delivery=on_delivery(now))
        p.poll(0)
        i += 1
        time.sleep(max(0.0, start + i * gap - time.perf_counter()))
    p.flush(60)
    lat.sort()
    n = len(lat)
    q = lambda f: lat[min(n - 1, int(n * f))]  # noqa: E731
    return {"n": n, "p50": q(.5), "p99": q(.99), "p999": q(.999), "max": lat[-1],
            "failed": sum(x == float("inf") for x in lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=2000)
    a = ap.parse_args()
    with temp_stack(("kafka",)) as st:
        use_env(st.env())
        from confluent_kafka.admin import AdminClient, NewTopic

        from chargeverse.kafka import base_config

        admin = AdminClient(base_config())
        for f in admin.create_topics([NewTopic(t, 12, 1) for t in ("acks_i", "acks_o")]).values():
            f.result()
        idem = _run("acks_i", {"enable.idempotence": True}, a.seconds, a.rate)
        ordered = _run("acks_o", ORDERED, a.seconds, a.rate)
    fmt = lambda r: (f"p50={r['p50']:.1f}ms p99={r['p99']:.1f}ms p999={r['p999']:.1f}ms max={r['max']:.1f}ms "  # noqa: E731
                     f"failed={r['failed']:.0f}")
    print(f"acks=all rate={a.rate:.0f}/s n={idem['n']:.0f}+{ordered['n']:.0f} | idempotent {fmt(idem)} | "
          f"ordered {fmt(ordered)} | p99 idempotent/ordered={idem['p99'] / ordered['p99']:.1f}x")


if __name__ == "__main__":
    main()
