"""Ledger throughput: post 1,000,000 postings through the ledger store, then `ledger verify` over all of them.

    .venv/bin/python bench/ledger_bench.py [--postings 1000000] [--drivers 20000] [--batch 5000] [--quick]
    (--quick: 100,000 postings)   [--dsn DSN: use an existing Postgres instead of starting one]

Starts its own Postgres (chargeverse.stack, temp dir, free port) unless --dsn is given.  Synthetic but realistic
posting sets, as the billing processor would publish them on 6 `ledger` partitions keyed by driver: a wallet
top-up per driver, then charging sessions of hold (2 postings) + post of part of the hold (2) + distribution to
the CPO, our revenue and VAT (4), with occasional further top-ups; about 3 postings per set, every set valid.
Generating the events is not part of any figure.

In the same run:
- baseline: the same posting rows written with plain COPY, in the same batches and transactions, into a table
  with the same columns and indexes as ledger_postings (no validation, balances, posting-set rows or hashing):
  the floor this Postgres sets;
- the ledger: `LedgerStore.post` of the same events (validate, limits, holds, chain hashes, sets, balances,
  offsets; one transaction per batch);
- `ledger.verify.verify` over everything (every chain rehashed, sets, heads, balances), after one seal;
- the seal itself (a Merkle root over every partition's chain).
Prints ONE line.  Targets (issue 5): post >= 5,000 postings/s; verify 1,000,000 postings < 60 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

# this file is named like the `ledger` package: keep its directory off the import path so `import ledger` finds
# the package, and load the sibling bench helper by path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _temp_stack(services: tuple[str, ...]):  # noqa: ANN202
    import importlib.util

    spec = importlib.util.spec_from_file_location("broker_ceiling", _HERE / "broker_ceiling.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.temp_stack(services)

PARTITIONS = 6
T0 = datetime(2025, 1, 6, 6, 0, tzinfo=timezone.utc)


def generate(total: int, drivers: int, batch: int, seed: int = 5) -> Iterator[list]:
    """Batches of SourcedEvents (LedgerPostingSet records as decoded from the log) holding `total` postings."""
    from ledger import accounts as A
    from ledger.records import POSTING_SET
    from projections.base import SourcedEvent

    rnd = random.Random(seed)
    offsets = [0] * PARTITIONS
    wallet = [0] * drivers  # cents available per driver (the generator only makes valid sets)
    t = T0
    susp, rev = A.suspense(), A.revenue()
    cpos = [A.cpo_payable(f"NL-C{i:02d}") for i in range(40)]
    vat = A.vat_payable("NL")
    clearing = A.psp_clearing("stripe")
    made = 0
    out: list = []
    n_sets = 0

    def money(c: int) -> str:
        return f"{c // 100}.{c % 100:02d}"

    def emit(d: int, src: str, kind: str, entries: list[tuple[str, str, int]], **kw: object) -> None:
        nonlocal made, n_sets
        key = f"driver:d{d}"
        part = zlib.crc32(key.encode()) % PARTITIONS
        rec = {"event_id": f"{src}#e", "occurred_at": t, "recorded_at": t, "source": "bench.billing",
               "correlation_id": kw.get("session_id") or src, "causation_id": None, "ledger_key": key,
               "source_event_id": src, "kind": kind, "session_id": kw.get("session_id"),
               "hold_id": kw.get("hold_id"), "reverses": None, "memo": None,
               "entries": [{"account": a, "direction": dr, "amount": money(c), "currency": "EUR"}
                           for a, dr, c in entries]}
        out.append(SourcedEvent("ledger", part, offsets[part], POSTING_SET, rec))
        offsets[part] += 1
        made += len(entries)
        n_sets += 1

    session = 0
    while made < total:
        t += timedelta(milliseconds=250)
        d = rnd.randrange(drivers)
        w = f"driver:d{d}:wallet"
        if wallet[d] < 3000 or total - made < 8:
            amount = rnd.choice((2000, 5000, 10000))
            emit(d, f"top-{made}", "POSTING", [(clearing, "DEBIT", amount), (w, "CREDIT", amount)])
            wallet[d] += amount
        else:
            session += 1
            sid = f"s{session}"
            emit(d, f"{sid}/hold", "HOLD", [(w, "DEBIT", 3000), (susp, "CREDIT", 3000)], session_id=sid, hold_id=sid)
            cost = rnd.randint(200, 3000)
            emit(d, f"{sid}/post", "POST_HOLD", [(w, "DEBIT", cost), (susp, "CREDIT", cost)], session_id=sid,
                 hold_id=sid)
            wallet[d] -= cost
            net = cost * 100 // 121
            fee = net // 5
            emit(d, f"{sid}/dist", "POSTING", [(susp, "DEBIT", cost), (rnd.choice(cpos), "CREDIT", net - fee),
                                               (rev, "CREDIT", fee), (vat, "CREDIT", cost - net)], session_id=sid)
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def baseline_rows(events: list) -> list[tuple]:
    """The posting rows of `events` as plain tuples (what the baseline COPYs); seqs are per partition."""
    rows = []
    for e in events:
        r = e.record
        for i, en in enumerate(r["entries"]):
            rows.append((f"ledger:{e.partition}", r["ledger_key"], r["source_event_id"], i, r["kind"],
                         r["occurred_at"], en["account"], en["currency"], "D" if en["direction"] == "DEBIT" else "C",
                         int(en["amount"].replace(".", ""))))
    return rows


def run_baseline(dsn: str, total: int, drivers: int, batch: int) -> tuple[int, float]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_baseline CASCADE")
        conn.execute("CREATE SCHEMA bench_baseline")
        conn.execute("CREATE TABLE bench_baseline.postings (LIKE ledger_bench.ledger_postings INCLUDING ALL)")
        conn.commit()
        seqs = [0] * PARTITIONS
        n, secs = 0, 0.0
        for events in generate(total, drivers, batch):
            rows = baseline_rows(events)
            t0 = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(
                    "COPY bench_baseline.postings (ledger_partition, seq, ledger_key, source_event_id, entry_index, "
                    "kind, occurred_at, account, currency, direction, amount_minor, hash) FROM STDIN") as cp:
                for r in rows:
                    p = int(r[0][7:])
                    seqs[p] += 1
                    cp.write_row((r[0], seqs[p], *r[1:], b"\x00" * 32))
            secs += time.perf_counter() - t0
            n += len(rows)
        conn.execute("DROP SCHEMA bench_baseline CASCADE")
        conn.commit()
    return n, secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postings", type=int, default=1_000_000)
    ap.add_argument("--drivers", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5000, help="events per store transaction")
    ap.add_argument("--quick", action="store_true", help="100,000 postings")
    ap.add_argument("--dsn", help="an existing Postgres (default: start one)")
    a = ap.parse_args()
    total = 100_000 if a.quick else a.postings

    def bench(dsn: str) -> str:
        from ledger.store import LedgerStore
        from ledger.verify import verify
        from ledger.records import SEALED
        from projections.base import SourcedEvent

        store = LedgerStore(dsn, "ledger_bench")
        store.reset()
        posted = sets = 0
        secs = 0.0
        for events in generate(total, a.drivers, a.batch):
            t0 = time.perf_counter()
            res = store.post(events)
            secs += time.perf_counter() - t0
            if res.rejections:
                raise SystemExit(f"bench data refused: {res.rejections[:2]}")
            posted += res.postings
            sets += res.posted_sets
        base_n, base_s = run_baseline(dsn, total, a.drivers, a.batch)
        if base_n != posted:
            raise SystemExit(f"baseline wrote {base_n} rows, the ledger {posted}")
        t0 = time.perf_counter()
        seal = store.seal_record(occurred_at=T0)
        seal_s = time.perf_counter() - t0
        store.post([SourcedEvent("ledger", 99, 0, SEALED, seal)])
        report = verify(store.conn)
        if not report.ok or report.postings != posted or report.seals != 1:
            raise SystemExit(f"verify failed: {report.summary()}")
        store.close()
        rate, base_rate = posted / secs, base_n / base_s
        verdict_p = "MET" if rate >= 5000 else "NOT MET"
        verdict_v = "MET" if report.seconds < 60 else "NOT MET"
        return (f"ledger {posted:,} postings ({sets:,} posting sets, {PARTITIONS} partitions, {a.drivers:,} drivers, "
                f"batches of {a.batch:,} events): post {rate:,.0f} postings/s ({secs:.1f} s) vs plain COPY of the same "
                f"rows {base_rate:,.0f} rows/s ({base_s:.1f} s) = {rate / base_rate:.1%} of baseline | verify "
                f"{report.postings:,} postings + {report.accounts:,} balances + 1 seal in {report.seconds:.1f} s | seal "
                f"(Merkle over {PARTITIONS} chains) {seal_s:.1f} s | targets: post >= 5,000/s {verdict_p}; verify 1M "
                f"< 60 s {verdict_v}")

    if a.dsn:
        line = bench(a.dsn)
    else:
        with _temp_stack(("postgres",)) as st:
            line = bench(st.env()["CV_POSTGRES_DSN"])
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
