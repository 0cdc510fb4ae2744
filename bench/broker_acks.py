"""Acknowledgement latency of the embedded broker: why the OCPP edge's p99 sits where it does.

    .venv/bin/python bench/broker_acks.py [--seconds 30] [--rate 3300]

The OCPP edge answers a charger only after the broker has acknowledged (acks=all) the frame's event, so the
broker's acknowledgement tail is a floor under the edge's p99.  This starts a temp embedded stack (broker only),
produces 300-byte events at about `--rate` per second with the edge's producer settings (idempotent, acks=all,
linger 5 ms) and prints ONE line: p50/p99/p99.9/max from produce() to the delivery callback, and the tail as a
multiple of the median measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import temp_stack, use_env  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=3300)
    a = ap.parse_args()
    with temp_stack(("kafka",)) as st:
        use_env(st.env())
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        from chargeverse.kafka import base_config

        admin = AdminClient(base_config())
        for f in admin.create_topics([NewTopic("acks", 12, 1)]).values():
            f.result()
        p = Producer({**base_config(), "acks": "all", "linger.ms": 5, "enable.idempotence": True})
        lat: list[float] = []

        def on_delivery(t0: float):  # noqa: ANN202
            return lambda err, msg: lat.append((time.perf_counter() - t0) * 1000 if err is None else float("inf"))

        gap, i = 1.0 / a.rate, 0
        start = time.perf_counter()
        while (now := time.perf_counter()) < start + a.seconds:
            p.produce("acks", key=str(i).encode(), value=b"x" * 300, on_delivery=on_delivery(now))
            p.poll(0)
            i += 1
            time.sleep(max(0.0, start + i * gap - time.perf_counter()))
        p.flush(60)
    lat.sort()
    n = len(lat)
    q = lambda f: lat[min(n - 1, int(n * f))]  # noqa: E731
    print(f"acks=all n={n} rate={n / a.seconds:.0f}/s p50={q(.5):.1f}ms p99={q(.99):.1f}ms p999={q(.999):.1f}ms "
          f"max={lat[-1]:.1f}ms | p99/p50={q(.99) / q(.5):.1f}x failed={sum(x == float('inf') for x in lat)}")


if __name__ == "__main__":
    main()
