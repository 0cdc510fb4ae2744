"""The embedded broker's own CPU as its log grows, and once the records are deleted.

    .venv/bin/python bench/broker_growth.py [--steps 6] [--per-step 50000] [--idle 5]

Why: noida-db's CPU grows with the records it holds even when nothing is written (it appears to rewrite a
snapshot of its whole log).  Our topics keep every record (event sourcing), so a long-running embedded platform,
and any benchmark phase measured after others, pays for the records written before it.  bench/ocpp_edge.py
empties the log before each phase for this reason; this script measures the effect itself.

Starts its own broker (a temp stack, Kafka only), writes `--per-step` 400-byte records per step to one
12-partition topic, and after each step measures the broker's CPU over `--idle` seconds with nothing written.
Then it deletes every record (DeleteRecords) and measures once more.  Prints ONE line: idle CPU (share of one
core) per records held, and after the deletion; the baseline is the first step's figure in the same run.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100


def _idle_share(pid: int, seconds: float) -> float:
    c0, t0 = _cpu(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu(pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--per-step", type=int, default=50_000)
    ap.add_argument("--idle", type=float, default=5.0)
    a = ap.parse_args()
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from broker_ceiling import create_topic, temp_stack, use_env

    with temp_stack(("kafka",)) as st:
        env = st.env()
        use_env(env)
        bs = env["CV_KAFKA_BOOTSTRAP"]
        pid = int(subprocess.run(["pgrep", "-f", f"noida-db start --data-dir {st.root}"], capture_output=True,
                                 text=True).stdout.split()[0])
        create_topic(bs, "growth", 12)
        rnd = random.Random(1)
        values = [rnd.randbytes(200).hex().encode() for _ in range(1000)]  # 400 bytes, not compressible
        p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "compression.type": "lz4"})
        held, figures = 0, []
        for _ in range(a.steps):
            for i in range(a.per_step):
                while True:
                    try:
                        p.produce("growth", values[i % 1000], key=str(i % 5000).encode())
                        break
                    except BufferError:
                        p.poll(0.01)
                p.poll(0)
            p.flush()
            held += a.per_step
            figures.append((held, _idle_share(pid, a.idle)))
        admin = AdminClient({"bootstrap.servers": bs})
        c = Consumer({"bootstrap.servers": bs, "group.id": "growth"})
        ends = [TopicPartition("growth", n, c.get_watermark_offsets(TopicPartition("growth", n), timeout=10)[1])
                for n in range(12)]
        c.close()
        for f in admin.delete_records(ends).values():
            f.result()
        after = _idle_share(pid, a.idle)
    base = figures[0][1]
    print("broker idle CPU by records held: "
          + " ".join(f"{n:,}={share:.0%}" for n, share in figures)
          + f" | after DeleteRecords={after:.0%} | largest/first={max(s for _, s in figures) / max(base, 1e-9):.1f}x",
          flush=True)


if __name__ == "__main__":
    main()
