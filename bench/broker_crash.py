"""What a kill -9 of the embedded broker (noida-db) loses, and that a clean stop/start loses nothing.

    .venv/bin/python bench/broker_crash.py [--messages 20000] [--delays 0.5,2,5,10,20]

Starts its own broker (chargeverse.stack, temp dir, free port).  For every delay d, one cycle:
1. create topic `crash.seq.N` (3 partitions) and produce a numbered sequence with an idempotent acks=all producer,
   recording which numbers were acknowledged;
2. right after the last acknowledgement create a second topic `crash.new.N` and write one acknowledged message;
3. sleep d, then kill -9 the broker (Stack.kill('kafka')), start it again (Stack.start('kafka'));
4. read back: do both topics still exist, and how many acknowledged numbers are gone.
Then the same with a clean stop/start (Stack.stop + Stack.start) right after the last acknowledgement (d = 0).
Prints ONE line: per delay, acknowledged messages lost and whether each topic survived.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import create_topic, temp_stack  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402


def produce_seq(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> set[int]:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": int(timeout * 1000), "log.connection.close": False})
    acked: set[int] = set()

    def done(err, msg) -> None:  # noqa: ANN001
        if err is None:
            acked.add(struct.unpack(">Q", msg.value()[:8])[0])

    pad = b"x" * 192  # 200-byte messages
    for i in range(n):
        while True:
            try:
                p.produce(topic, struct.pack(">Q", i) + pad, key=str(i % 97).encode(), on_delivery=done)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(timeout)
    return acked


def broker_answers(bootstrap: str, timeout: float = 30.0) -> bool:
    """True once the broker serves metadata (bounded)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-probe", "log.connection.close": False,
                  "log_level": 0})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c.list_topics(timeout=2)
                return True
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        return False
    finally:
        c.close()


def read_back(bootstrap: str, topic: str, timeout: float = 60.0) -> set[int] | None:
    """The sequence numbers now on `topic`, or None when the topic does not exist."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"crash-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "log.connection.close": False})
    try:
        md = c.list_topics(timeout=10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            return None
        ends = {}
        for p in md.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = (lo, hi)
        c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in ends.items()])
        seen: set[int] = set()
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for m in c.consume(5000, timeout=0.5):
                if m.error():
                    continue
                seen.add(struct.unpack(">Q", m.value()[:8])[0])
                if m.offset() + 1 >= ends[m.partition()][1]:
                    pending.discard(m.partition())
        return seen
    finally:
        c.close()


def cycle(st, n: int, delay: float, clean: bool, idx: int) -> str:  # noqa: ANN001
    bootstrap = f"127.0.0.1:{st.ports.kafka}"
    seq, new = f"crash.seq.{idx}", f"crash.new.{idx}"
    create_topic(bootstrap, seq, 3)
    acked = produce_seq(bootstrap, seq, n)
    create_topic(bootstrap, new, 1)
    new_acked = produce_seq(bootstrap, new, 1)
    time.sleep(delay)
    t0 = time.monotonic()
    if clean:
        st.stop("kafka")
    else:
        st.kill("kafka")
    st.start("kafka")
    restart_s = time.monotonic() - t0
    if not broker_answers(bootstrap):
        alive = st.pid("kafka") is not None
        log = (st.root / "kafka" / "server.log").read_text(errors="replace").strip().splitlines()[-1:]
        st.kill("kafka")  # whatever is left, then a fresh start so the next cycle can run
        st.start("kafka")
        what = "clean stop/start" if clean else f"kill -9 @{delay:g}s"
        return (f"{what}: broker did not answer after restart (process {'alive' if alive else 'dead'}; "
                f"log: {log[0][:120] if log else '-'})")
    got = read_back(bootstrap, seq)
    got_new = read_back(bootstrap, new)
    what = "clean stop/start" if clean else f"kill -9 @{delay:g}s"
    seq_state = "topic LOST" if got is None else f"lost {len(acked - got):,}/{len(acked):,} acked"
    new_state = ("new topic LOST" if got_new is None else
                 f"new topic ok ({len(new_acked - got_new)} of its 1 acked msg lost)")
    return f"{what}: {seq_state}, {new_state} (restart {restart_s:.1f} s)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--delays", default="0.5,2,5,10,20")
    a = ap.parse_args()
    delays = [float(x) for x in a.delays.split(",")]
    parts = []
    with temp_stack(("kafka",)) as st:
        for i, d in enumerate(delays):
            parts.append(cycle(st, a.messages, d, clean=False, idx=i))
        parts.append(cycle(st, a.messages, 0.0, clean=True, idx=len(delays)))
    print(f"broker_crash noida-db, {a.messages:,} x 200 B acks=all per cycle: " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
