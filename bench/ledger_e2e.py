"""Ledger end to end from the log: 1,000,000 postings published as `LedgerPostingSet` events on a fresh `ledger`
topic, then consumed and posted by the LedgerStore through `projections.replay.replay` (the same `apply` the live
agent runs), compared with the raw consume rate of the same topic in the same run.

    .venv/bin/python bench/ledger_e2e.py [--postings 1000000] [--drivers 20000] [--batch 5000] [--quick]
    (--quick: 100,000 postings)

Starts its own embedded Kafka + Postgres (temp dir, free ports) and creates the catalogue topics, so `ledger` is
new and empty.  The events are what billing publishes: posting sets from ledger.billing.postings_plan, half own-
station charges (3 entries: driver receivable / revenue / VAT) and half roamed charges at cost (2 entries: driver
receivable / partner CPO payable), keyed by the driver's ledger key and encoded with the platform's Codec.
Generating and producing them is not part of any figure.

Then, in the same run:
- baseline: raw consume of that same topic (confluent-kafka, from the beginning, no decoding; best of 2);
- the ledger: `replay(LedgerStore(dsn, schema))` from offset 0 into an empty schema: decode, validate, balances,
  chain hashes, sets, offsets, one transaction per batch.
Checked: every set posted, every posting written, nothing refused.  Prints ONE line: postings/s and events/s of
the ledger, and its events/s as a share of the raw consume rate.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import consume_all, temp_stack, use_env  # noqa: E402


def generate(bootstrap: str, postings: int, drivers: int, seed: int = 11,
             timeout: float = 600.0) -> tuple[int, int, int]:
    """Produce posting sets until `postings` entries are on `ledger`; returns (sets, postings, own-station sets)."""
    from confluent_kafka import Producer

    from chargeverse.avro import default_codec
    from chargeverse.events import envelope
    from ledger.billing.cdr_checks import Price
    from ledger.billing.postings_plan import DriverPayer, own_session_plan, roamed_session_plan

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
    sets = written = own = 0
    partners = [("DE", "TNM"), ("BE", "BEC"), ("FR", "ALL"), ("NL", "EVB")]
    while written < postings:
        if time.monotonic() > deadline:
            raise RuntimeError("generation exceeded its time bound")
        payer = DriverPayer(f"bench-{rnd.randrange(drivers):06d}")
        net = Decimal(rnd.randrange(100, 3000)) / 100
        price = Price(net, (net * Decimal("1.21")).quantize(Decimal("0.01")))
        rec = envelope(source="bench", correlation_id=f"s-{sets}")
        if rnd.random() < 0.5:
            plan = own_session_plan(source_event_id=rec["event_id"], session_id=f"S{sets}", payer=payer,
                                    total_cost=price, currency="EUR", vat_country="NL")
            own += 1
        else:
            cc, party = rnd.choice(partners)
            plan = roamed_session_plan(source_event_id=rec["event_id"], session_id=f"R{sets}", payer=payer,
                                       partner_cost=price, currency="EUR", cpo_country_code=cc, cpo_party_id=party,
                                       vat_country="NL")
        rec.update(plan.ledger_fields())
        value = codec.encode("LedgerPostingSet", rec)
        while True:
            try:
                p.produce("ledger", value=value, key=plan.ledger_key.encode(), on_delivery=done)
                break
            except BufferError:
                p.poll(0.01)
                if time.monotonic() > deadline:
                    raise RuntimeError("generation: producer queue stayed full past the time bound")
        sets += 1
        written += len(plan.legs)
        if sets & 4095 == 0:
            p.poll(0)
    left = p.flush(max(1.0, deadline - time.monotonic()))
    if left or errors:
        raise RuntimeError(f"generation: {left} unacknowledged, errors {errors[:3]}")
    return sets, written, own


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postings", type=int, default=1_000_000)
    ap.add_argument("--drivers", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5000, help="events per replay batch (one transaction each)")
    ap.add_argument("--quick", action="store_true", help="100,000 postings")
    a = ap.parse_args()
    n = 100_000 if a.quick else a.postings

    with temp_stack(("kafka", "postgres")) as st:
        env = st.env()
        use_env(env)
        from chargeverse.kafka import ensure_topics
        from ledger.store import LedgerStore
        from projections.replay import replay

        bootstrap = env["CV_KAFKA_BOOTSTRAP"]
        ensure_topics(bootstrap=bootstrap)
        t0 = time.perf_counter()
        sets, postings, own = generate(bootstrap, n, a.drivers)
        gen_s = time.perf_counter() - t0

        raw = []
        for _ in range(2):
            got, secs, _ = consume_all(bootstrap, "ledger", expected=sets, timeout=600)
            raw.append(got / secs)
        raw_rate = max(raw)

        store = LedgerStore(env["CV_POSTGRES_DSN"], "bench_ledger_e2e")
        stats = replay(store, bootstrap=bootstrap, batch=a.batch, stall_seconds=120)
        with store.conn.transaction():
            got_sets = store.conn.execute("SELECT count(*) FROM ledger_posting_sets").fetchone()[0]
            got_postings = store.conn.execute("SELECT count(*) FROM ledger_postings").fetchone()[0]
            refused = store.conn.execute("SELECT count(*) FROM ledger_rejections").fetchone()[0]
        offsets = sum(store.offsets().values())
        store.close()
        if (stats.events, got_sets, got_postings, refused, offsets) != (sets, sets, postings, 0, sets):
            raise SystemExit(f"ledger replay incomplete: read {stats.events}/{sets}, sets {got_sets}, postings "
                             f"{got_postings}/{postings}, refused {refused}, offsets {offsets}")

    ev_rate = stats.events / stats.seconds
    print(f"ledger e2e {postings:,} postings in {sets:,} LedgerPostingSet events ({own:,} own 3-entry, "
          f"{sets - own:,} roamed 2-entry; {a.drivers:,} drivers; generated in {gen_s:.0f} s): raw consume "
          f"{raw_rate:,.0f} ev/s | ledger from the log {postings / stats.seconds:,.0f} postings/s = "
          f"{ev_rate:,.0f} ev/s ({ev_rate / raw_rate:.1%} of raw consume, {stats.seconds:.1f} s, batch {a.batch})",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
