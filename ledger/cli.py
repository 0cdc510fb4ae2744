"""`cv ledger verify|balance|statement|session|proof|seal`: the ledger for operators and auditors.

Hooked into chargeverse/cli.py by `add_parser(sub)`.  Every command but `seal` only reads (through
ledger/audit.py's read-only connections, or verify's read-only snapshot); `seal` publishes a LedgerSealed event
and changes nothing itself -- the ledger records the seal when it applies the event, like any other.
Exit codes: 0 fine, 1 verification or proof failed, 2 bad input or nothing found.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any


def _dsn() -> str:
    from chargeverse.settings import get_settings

    get_settings.cache_clear()
    return get_settings().postgres_dsn.get_secret_value()


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2025-01-31T23:59:59Z") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _reader(a: argparse.Namespace) -> Any:
    from ledger.audit import AuditReader

    return AuditReader(_dsn(), a.schema, max_size=1)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_verify(a: argparse.Namespace) -> int:
    from projections.postgres.migrate import connect
    from ledger.verify import check_published_seals, verify

    with connect(_dsn(), a.schema) as conn:
        report = verify(conn)
        print(report.summary())
        for p in report.problems[1:a.show]:
            print(f"  also: {p}")
        problems = []
        if a.log:
            problems = check_published_seals(conn, _published_seals())
            for p in problems:
                print(f"log: {p}")
            if not problems:
                print("every seal published on the log is in the ledger with the same root")
    return 0 if report.ok and not problems else 1


def _published_seals() -> list[dict[str, Any]]:
    from confluent_kafka import Consumer

    from chargeverse.avro import DecodeError, default_codec
    from chargeverse.kafka import base_config, iter_range
    from ledger.records import SEALED

    c = Consumer({**base_config(), "group.id": "ledger-verify"})
    try:
        parts = list(c.list_topics("ledger", timeout=10).topics["ledger"].partitions)
    finally:
        c.close()
    codec = default_codec()
    out = []
    for msgs in iter_range({("ledger", p): (0, None) for p in parts}):
        for m in msgs:
            try:
                etype, rec = codec.decode(m.value())
            except DecodeError:
                continue
            if etype == SEALED:
                out.append(rec)
    return out


def cmd_balance(a: argparse.Namespace) -> int:
    from ledger.audit import NotFound

    r = _reader(a)
    try:
        _print([b.to_json() for b in r.balance(a.account, a.as_of, a.currency)])
    except NotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        r.close()
    return 0


def cmd_statement(a: argparse.Namespace) -> int:
    r = _reader(a)
    try:
        st = r.statement(a.account, a.currency, a.since, a.until, a.limit)
    finally:
        r.close()
    print(f"{st['account']} ({st['currency']}, {st['kind']}) from {st['from']} to {st['to']}")
    print(f"{'opening balance':>60} {st['opening_balance']:>14}")
    for ln in st["lines"]:
        print(f"{ln['occurred_at'][:19]}  {ln['kind']:<9} {ln['direction']:<6} {ln['amount']:>12} "
              f"{ln['effect']:<8} {ln['source_event_id'][:20]:<20} {ln['balance']:>14}")
    print(f"{'closing balance':>60} {st['closing_balance']:>14}" + ("  (truncated: raise --limit)"
                                                                     if st["truncated"] else ""))
    return 0


def cmd_session(a: argparse.Namespace) -> int:
    from ledger.audit import NotFound

    r = _reader(a)
    try:
        _print(r.session(a.session_id))
    except NotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        r.close()
    return 0


def cmd_proof(a: argparse.Namespace) -> int:
    from ledger.audit import NotFound, NotSealed
    from ledger.verify import ProofRejected, verify_proof

    if a.verify:
        with open(a.verify) as f:
            doc = json.load(f)
        try:
            p = verify_proof(doc, bytes.fromhex(a.root) if a.root else None)
        except ProofRejected as exc:
            print(f"proof REJECTED: {exc}")
            return 1
        print(f"proof OK: {p.row.ledger_partition} seq {p.row.seq} ({p.row.account} {p.row.direction} "
              f"{p.row.amount_minor} {p.row.currency}) is under seal {p.seal_no} root {p.seal_root.hex()}"
              + ("" if a.root else " (pass --root from the LedgerSealed event on the log to anchor it)"))
        return 0
    r = _reader(a)
    try:
        if a.set:
            part, seq = r.locate(a.set[0], a.set[1], a.entry)
        elif a.partition and a.seq:
            part, seq = a.partition, a.seq
        else:
            print("give PARTITION SEQ, --set LEDGER_KEY SOURCE_EVENT_ID, or --verify FILE", file=sys.stderr)
            return 2
        doc = r.proof(part, seq).to_json()
    except (NotFound, NotSealed) as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        r.close()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"proof of {part} seq {seq} against seal {doc['seal_no']} written to {a.out}")
    else:
        _print(doc)
    return 0


def publish_seal(dsn: str, schema: str = "public", producer: Any = None, *, dry_run: bool = False
                 ) -> tuple[dict[str, Any], Any]:
    """Seal the ledger's current chain heads: build the LedgerSealed record from the store and publish it on the
    `ledger` topic under SEAL_KEY (unless `dry_run`).  Returns (record, delivery).  For `cv ledger seal` and for a
    periodic sealer (e.g. a worker timer); the ledger records the seal when it applies the event."""
    from ledger.records import SEAL_KEY, SEALED
    from ledger.store import LedgerStore

    store = LedgerStore(dsn, schema)
    try:
        rec = store.seal_record()
    finally:
        store.close()
    if dry_run:
        return rec, None
    from chargeverse.kafka import EventProducer

    own = producer is None
    producer = producer or EventProducer()
    try:
        return rec, producer.publish_sync("ledger", SEAL_KEY, SEALED, rec)
    finally:
        if own:
            producer.close()


def cmd_seal(a: argparse.Namespace) -> int:
    rec, d = publish_seal(_dsn(), a.schema, dry_run=a.dry_run)
    heads = ", ".join(f"{h['ledger_partition']}@{h['seq']}" for h in rec["heads"]) or "(no postings yet)"
    if d is None:
        print(f"would seal root {rec['root']} over {heads}")
    else:
        print(f"published seal root {rec['root']} over {heads} as {d.topic}[{d.partition}]@{d.offset}; the ledger "
              "records it when it applies it")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `ledger` and its sub-commands to `cv`'s sub-parsers."""
    lp = sub.add_parser("ledger", help="verify, audit and seal the ledger")
    lsub = lp.add_subparsers(dest="ledger_cmd", required=True)

    def cmd(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        sp = lsub.add_parser(name, help=help)
        sp.add_argument("--schema", default="public", help="Postgres schema of the ledger (default: public)")
        sp.set_defaults(fn=fn)
        return sp

    sp = cmd("verify", cmd_verify, "recompute every hash chain, seal and balance; report the first broken link")
    sp.add_argument("--log", action="store_true", help="also compare the seals with the LedgerSealed events on "
                                                       "the log")
    sp.add_argument("--show", type=int, default=10, help="how many problems to list (default 10)")
    sp = cmd("balance", cmd_balance, "balance of an account, now or as of a time")
    sp.add_argument("account", help="e.g. driver:u-42:wallet")
    sp.add_argument("--as-of", type=_time, help="ISO time (UTC if no offset)")
    sp.add_argument("--currency")
    sp = cmd("statement", cmd_statement, "postings of an account over a time range with running balance")
    sp.add_argument("account")
    sp.add_argument("--currency", required=True)
    sp.add_argument("--from", dest="since", type=_time, required=True)
    sp.add_argument("--to", dest="until", type=_time, required=True)
    sp.add_argument("--limit", type=int, default=1000)
    sp = cmd("session", cmd_session, "every posting set of a charging session with its source events")
    sp.add_argument("session_id")
    sp = cmd("proof", cmd_proof, "inclusion proof of a posting against its seal, or check one (--verify)")
    sp.add_argument("partition", nargs="?", help="ledger partition, e.g. ledger:3")
    sp.add_argument("seq", nargs="?", type=int)
    sp.add_argument("--set", nargs=2, metavar=("LEDGER_KEY", "SOURCE_EVENT_ID"), help="locate by posting set")
    sp.add_argument("--entry", type=int, default=0, help="entry index within --set (default 0)")
    sp.add_argument("--out", help="write the proof JSON here")
    sp.add_argument("--verify", metavar="FILE", help="check a proof file instead")
    sp.add_argument("--root", help="hex seal root the proof must lead to (from the LedgerSealed event)")
    sp = cmd("seal", cmd_seal, "publish a seal (Merkle root over every chain head) on the ledger topic")
    sp.add_argument("--dry-run", action="store_true", help="compute and print the root, publish nothing")
    return lp
