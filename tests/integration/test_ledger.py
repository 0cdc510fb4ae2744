"""The ledger against the real Postgres (and, for the rebuild, the real log): exactly once, byte-identical rebuilds,
limits, holds, corrections, tamper evidence, proofs, and an audit API that reads and never writes.

Each test works in its own Postgres schema, so tests never see each other's ledger."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from typing import Iterator

import psycopg
import pytest

from chargeverse.events import derived_id
from ledger import accounts as A
from ledger import postings as P
from ledger import records as R
from ledger.audit import AuditReader
from ledger.postings import PostingSet
from ledger.store import TABLES, LedgerStore
from ledger.verify import ProofRejected, verify, verify_proof
from projections.base import SourcedEvent

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
CLEARING = A.psp_clearing("stripe")
SUSP = A.suspense()
CPO = A.cpo_payable("NL-GFX")
REV = A.revenue()
VAT = A.vat_payable("NL")


def W(u: str) -> str:  # noqa: N802
    return A.driver_wallet(u)


def event(ps: PostingSet, partition: int, offset: int) -> SourcedEvent:
    """A LedgerPostingSet as the billing processor would publish it: a deterministic event id per set."""
    rec = R.posting_set_record(ps, source="test.billing", event_id=derived_id(ps.source_event_id, ps.ledger_key))
    return SourcedEvent("ledger", partition, offset, R.POSTING_SET, rec)


def events(sets: list[tuple[int, PostingSet]], start: dict[int, int] | None = None) -> list[SourcedEvent]:
    """SourcedEvents for (partition, set) pairs with consecutive offsets per partition."""
    nxt = dict(start or {})
    out = []
    for part, ps in sets:
        out.append(event(ps, part, nxt.get(part, 0)))
        nxt[part] = nxt.get(part, 0) + 1
    return out


def topup(u: str, amount: str, src: str, t: datetime = T0) -> PostingSet:
    return P.posting(src, f"driver:{u}", t, [P.debit(CLEARING, amount, "EUR"), P.credit(W(u), amount, "EUR")])


def session_sets(u: str, n: int, t: datetime) -> list[PostingSet]:
    """A charging session paid from the wallet: hold, post part of it, distribute to CPO, revenue and VAT."""
    sid = f"sess-{u}-{n}"
    h = P.hold(f"{sid}/hold", f"driver:{u}", t, sid, [P.debit(W(u), "30.00", "EUR"), P.credit(SUSP, "30.00", "EUR")],
               session_id=sid)
    post = P.post_hold(f"{sid}/post", h, t + timedelta(minutes=40),
                       [P.debit(W(u), "12.10", "EUR"), P.credit(SUSP, "12.10", "EUR")])
    dist = P.posting(f"{sid}/dist", f"driver:{u}", t + timedelta(minutes=40), [
        P.debit(SUSP, "12.10", "EUR"), P.credit(CPO, "8.00", "EUR"), P.credit(REV, "2.00", "EUR"),
        P.credit(VAT, "2.10", "EUR")], session_id=sid, memo="22 kWh at NL-GFX")
    return [h, post, dist]


def history() -> list[tuple[int, PostingSet]]:
    """A mixed history over three partitions: top-ups, sessions, a refused overdraft, a void, a reversal."""
    out: list[tuple[int, PostingSet]] = []
    for i, u in enumerate(("ann", "bob", "cy")):
        out.append((i, topup(u, "100.00", f"top-{u}")))
    for n in range(3):
        for i, u in enumerate(("ann", "bob", "cy")):
            out += [(i, s) for s in session_sets(u, n, T0 + timedelta(hours=n + 1))]
    out.append((0, P.posting("overdraft-ann", "driver:ann", T0 + timedelta(hours=5),
                             [P.debit(W("ann"), "99.00", "EUR"), P.credit(CPO, "99.00", "EUR")])))
    h = P.hold("void-hold", "driver:bob", T0 + timedelta(hours=6), "hb", [P.debit(W("bob"), "5.00", "EUR"),
                                                                          P.credit(SUSP, "5.00", "EUR")])
    out += [(1, h), (1, P.void_hold("void-it", h, T0 + timedelta(hours=6, minutes=1)))]
    out.append((2, P.reversal(topup("cy", "100.00", "top-cy"), source_event_id="chargeback-cy",
                              occurred_at=T0 + timedelta(hours=7))))  # refused: cy has spent part of it
    return out


@pytest.fixture
def store(stack, unique) -> Iterator[LedgerStore]:  # noqa: ANN001
    from chargeverse.settings import get_settings

    s = LedgerStore(get_settings().postgres_dsn.get_secret_value(), f"ledger_{unique}")
    yield s
    s.close()


def _dsn() -> str:
    from chargeverse.settings import get_settings

    return get_settings().postgres_dsn.get_secret_value()


def _balance(store: LedgerStore, account: str) -> tuple[int, int, int, int] | None:
    with store.conn.transaction():
        row = store.conn.execute("SELECT debits_posted, credits_posted, debits_pending, credits_pending FROM "
                                 "ledger_accounts WHERE account = %s AND currency = 'EUR'", (account,)).fetchone()
    return tuple(int(x) for x in row) if row else None  # type: ignore[return-value]


def _seal(store: LedgerStore, partition: int = 5, offset: int = 0) -> dict:
    """Seal the current heads the way `cv ledger seal` does, and apply the event as the ledger would read it."""
    rec = store.seal_record(occurred_at=T0 + timedelta(days=1))
    res = store.post([SourcedEvent("ledger", partition, offset, R.SEALED, rec)])
    assert res.seals == 1, res
    return rec


# ---- exactly once ------------------------------------------------------------------------------------------------
def test_the_same_batch_applied_twice_changes_nothing(store: LedgerStore) -> None:
    batch = events(history())
    first = store.post(batch)
    assert first.new_events == len(batch) and first.posted_sets == len(batch) - 2 and first.postings > 0
    assert sorted(r.reason for r in first.rejections) == ["limit", "limit"]
    before = store.checksum()
    again = store.post(batch)
    assert (again.new_events, again.posted_sets, again.postings) == (0, 0, 0)
    # re-delivered refusals are reported again (the review queue may have missed them), never recorded twice
    assert sorted(r.source_event_id for r in again.rejections) == ["chargeback-cy", "overdraft-ann"]
    assert store.checksum() == before
    # the processor re-publishes the same sets after a crash: new offsets, same sets -> duplicates, no change
    redelivered = events(history(), start={0: 1000, 1: 1000, 2: 1000})
    res = store.post(redelivered)
    assert res.new_events == len(redelivered) and res.posted_sets == 0 and res.duplicates == len(batch) - 2
    assert store.checksum() == before
    assert verify(store.conn).ok


def test_a_conflicting_redelivery_is_refused_and_the_first_stands(store: LedgerStore) -> None:
    store.post(events([(0, topup("dee", "20.00", "top-dee"))]))
    res = store.post(events([(0, topup("dee", "25.00", "top-dee"))], start={0: 1}))
    assert [r.reason for r in res.rejections] == ["conflicting_duplicate"]
    assert _balance(store, W("dee")) == (0, 2000, 0, 0)


# ---- rebuild -----------------------------------------------------------------------------------------------------
def test_a_rebuild_from_the_log_gives_byte_identical_rows_and_hashes(stack, topics, unique) -> None:  # noqa: ANN001
    """Publish a history on the real `ledger` topic (keyed by ledger key, Avro-encoded), then rebuild it from the
    log twice with different batch sizes, as `cv replay` does: every row of every table and every hash is the
    same.  (The rebuild reads exactly the offsets this test wrote, so other writers of the topic cannot interfere.)"""
    from chargeverse.kafka import EventProducer
    from projections.replay import replay

    def posting_sets(tag: str) -> list[PostingSet]:
        def mine(text: str) -> str:
            return text.replace("driver:", f"driver:{tag}")

        return [PostingSet(f"{tag}/{ps.source_event_id}", mine(ps.ledger_key), ps.occurred_at,
                           tuple(P.Entry(mine(e.account), e.direction, e.amount, e.currency) for e in ps.entries),
                           ps.kind, ps.session_id, ps.hold_id, f"{tag}/{ps.reverses}" if ps.reverses else None,
                           ps.memo)
                for _, ps in history()]

    producer = EventProducer()
    a = LedgerStore(_dsn(), f"rebuild_a_{unique}")
    b = LedgerStore(_dsn(), f"rebuild_b_{unique}")
    try:
        # the history has a few ledger keys; with some prefixes they all hash to one partition, so draw prefixes
        # until they spread over several chains (the rebuild reads only the offsets of the history it keeps)
        for attempt in range(12):
            sets = posting_sets(f"{unique}{attempt}")
            sent = producer.publish_many_sync([
                ("ledger", R.key_of(ps), R.POSTING_SET,
                 R.posting_set_record(ps, source="test", event_id=derived_id(ps.source_event_id, "t")))
                for ps in sets])
            if len({d.partition for d in sent}) > 1:
                break
        assert len({d.partition for d in sent}) > 1  # several chains
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for d in sent:
            lo, hi = ranges.get(("ledger", d.partition), (d.offset, d.offset + 1))
            ranges[("ledger", d.partition)] = (min(lo, d.offset), max(hi, d.offset + 1))
        sa = replay(a, ranges=ranges)
        assert sa.applied == len(sets)
        from ledger.cli import publish_seal

        _, seal = publish_seal(_dsn(), a.schema, producer)  # what `cv ledger seal` does
        assert replay(a, ranges={("ledger", seal.partition): (seal.offset, seal.offset + 1)}).applied == 1
        lo, hi = ranges.get(("ledger", seal.partition), (seal.offset, seal.offset))
        ranges[("ledger", seal.partition)] = (min(lo, seal.offset), seal.offset + 1)
        sb = replay(b, ranges=ranges, batch=7)
        assert sb.events >= len(sets) + 1
        assert a.checksum() == b.checksum()
        with a.conn.transaction():
            for table in TABLES:
                for x, y in ((a.schema, b.schema), (b.schema, a.schema)):
                    diff = a.conn.execute(f"SELECT * FROM {x}.{table} EXCEPT ALL SELECT * FROM {y}.{table}").fetchall()
                    assert diff == [], f"{table}: rows only in {x}: {diff[:3]}"
            n = a.conn.execute("SELECT count(*), count(DISTINCT ledger_partition) FROM ledger_postings").fetchone()
            assert n[0] > len(sets) and n[1] > 1
            assert a.conn.execute("SELECT count(*) FROM ledger_seals").fetchone()[0] == 1
        assert verify(a.conn).ok and verify(b.conn).ok
        assert b.heads() == a.heads()
        # the same rebuild into the same schema after reset() (what `cv replay ledger --yes` does)
        before = b.checksum()
        b.reset()
        assert b.checksum() != before
        replay(b, ranges=ranges, batch=1000)
        assert b.checksum() == before
        # a rebuild that reads the seal before the chains it seals (partitions interleave in any order): the seal
        # waits, pending, and lands when its chains catch up -- the same ledger as reading in log order
        b.reset()
        seal_part = ("ledger", seal.partition)
        assert replay(b, ranges={seal_part: ranges[seal_part]}).events >= 1  # a partition reads in order
        with b.conn.transaction():
            assert b.conn.execute("SELECT count(*) FROM ledger_pending_seals").fetchone()[0] == 1
            assert b.conn.execute("SELECT count(*) FROM ledger_seals").fetchone()[0] == 0
        assert verify(b.conn).pending_seals == 1
        replay(b, ranges={k: v for k, v in ranges.items() if k != seal_part}, batch=3)
        assert b.checksum() == before
    finally:
        producer.close()
        a.close()
        b.close()


# ---- limits, holds, corrections ---------------------------------------------------------------------------------
def test_a_wallet_cannot_go_negative(store: LedgerStore) -> None:
    store.post(events([(0, topup("eve", "20.00", "top-eve"))]))
    res = store.post(events([(0, P.posting("spend", "driver:eve", T0, [P.debit(W("eve"), "20.01", "EUR"),
                                                                       P.credit(CPO, "20.01", "EUR")]))], {0: 1}))
    assert res.posted_sets == 0 and [r.reason for r in res.rejections] == ["limit"]
    assert "driver:eve:wallet" in res.rejections[0].detail
    assert _balance(store, W("eve")) == (0, 2000, 0, 0)
    with store.conn.transaction():
        stored = store.conn.execute("SELECT reason FROM ledger_rejections WHERE source_event_id = 'spend'").fetchall()
    assert stored == [("limit",)]
    # the database refuses a negative wallet too, whatever writes it
    with pytest.raises(psycopg.errors.CheckViolation):
        with store.conn.transaction():
            store.conn.execute("UPDATE ledger_accounts SET debits_posted = 2001 WHERE account = %s", (W("eve"),))


def test_a_hold_resolves_at_most_once(store: LedgerStore) -> None:
    h = P.hold("h", "driver:fay", T0, "sess-1", [P.debit(W("fay"), "30.00", "EUR"), P.credit(SUSP, "30.00", "EUR")])
    res = store.post(events([(0, topup("fay", "50.00", "top-fay")), (0, h),
                             (0, P.post_hold("post", h, T0, [P.debit(W("fay"), "9.99", "EUR"),
                                                             P.credit(SUSP, "9.99", "EUR")])),
                             (0, P.void_hold("void", h, T0)),
                             (0, P.post_hold("post-again", h, T0))]))
    assert [r.reason for r in res.rejections] == ["hold_resolved", "hold_resolved"]
    assert _balance(store, W("fay")) == (999, 5000, 0, 0)
    with store.conn.transaction():
        status = store.conn.execute("SELECT status, resolved_by FROM ledger_holds WHERE hold_id = 'sess-1'").fetchall()
    assert status == [("POSTED", "post")]
    # a second resolution written past the engine is refused by the database's unique index
    with pytest.raises(psycopg.errors.UniqueViolation):
        with store.conn.transaction():
            store.conn.execute(
                "INSERT INTO ledger_posting_sets (ledger_key, source_event_id, event_id, ledger_partition, log_offset, "
                "kind, occurred_at, hold_id, first_seq, entry_count, content_hash) VALUES ('driver:fay', 'sneaky', "
                "'e', 'ledger:0', 99, 'VOID_HOLD', now(), 'sess-1', 99, 1, '\\x00')")


def test_a_correction_is_a_reversal_plus_a_new_posting_and_rows_are_never_edited(store: LedgerStore) -> None:
    charge = P.posting("cdr-1", "driver:gus", T0 + timedelta(hours=1),
                       [P.debit(W("gus"), "15.00", "EUR"), P.credit(CPO, "15.00", "EUR")], session_id="s-gus")
    rev, fixed = P.correction(charge, [P.debit(W("gus"), "12.00", "EUR"), P.credit(CPO, "12.00", "EUR")],
                              reversal_source_id="cdr-1/rev", corrected_source_id="cdr-1/fix",
                              occurred_at=T0 + timedelta(days=1), memo="tariff corrected")
    res = store.post(events([(0, topup("gus", "50.00", "top-gus")), (0, charge), (0, rev), (0, fixed),
                             (0, P.reversal(charge, source_event_id="cdr-1/rev2", occurred_at=T0 + timedelta(days=2)))]))
    assert [r.reason for r in res.rejections] == ["already_reversed"]
    assert _balance(store, W("gus")) == (1500 + 1200, 5000 + 1500, 0, 0)
    r = AuditReader(_dsn(), store.schema)
    try:
        st = r.statement(W("gus"), "EUR", T0, T0 + timedelta(days=3))
        assert [(x["kind"], x["direction"], x["amount"], x["balance"]) for x in st["lines"]] == [
            ("POSTING", "CREDIT", "50.00", "50.00"), ("POSTING", "DEBIT", "15.00", "35.00"),
            ("REVERSAL", "CREDIT", "15.00", "50.00"), ("POSTING", "DEBIT", "12.00", "38.00")]
        assert st["closing_balance"] == "38.00"
        assert r.balance(W("gus"), as_of=T0 + timedelta(hours=2))[0].balance == 35
        assert r.balance(W("gus"))[0].balance == 38
        sets = r.session("s-gus")
        assert [(s["source_event_id"], s["kind"]) for s in sets] == [("cdr-1", "POSTING"), ("cdr-1/rev", "REVERSAL"),
                                                                     ("cdr-1/fix", "POSTING")]
    finally:
        r.close()
    for sql in ("UPDATE ledger_postings SET amount_minor = 1", "DELETE FROM ledger_postings",
                "UPDATE ledger_posting_sets SET memo = 'x'", "TRUNCATE ledger_postings"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable|rebuild"):
            with store.conn.transaction():
                store.conn.execute(sql)
    assert verify(store.conn).ok


# ---- tamper evidence --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def attacker(store: LedgerStore, table: str = "ledger_postings") -> Iterator[psycopg.Connection]:
    """Someone with the database owner's credentials: the immutability trigger stops UPDATE, so they switch it off
    first (ALTER TABLE ... DISABLE TRIGGER, as the table owner / a superuser can), edit, and switch it back on."""
    trigger = f"{table}_immutable"
    with psycopg.connect(_dsn(), options=f"-c search_path={store.schema},public", autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        try:
            yield conn
        finally:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


def _cli_verify(schema: str) -> tuple[int, str]:
    from ledger import cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="cmd"))
    a = parser.parse_args(["ledger", "verify", "--schema", schema])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = a.fn(a)
    return code, out.getvalue()


def test_verify_names_the_first_broken_link_after_a_row_is_edited_in_postgres(store: LedgerStore) -> None:
    store.post(events(history()))
    _seal(store)
    assert _cli_verify(store.schema)[0] == 0
    with store.conn.transaction():
        seq, amount, good = store.conn.execute(
            "SELECT seq, amount_minor, hash FROM ledger_postings WHERE ledger_partition = 'ledger:1' "
            "ORDER BY seq OFFSET 4 LIMIT 1").fetchone()
    with attacker(store) as conn:
        conn.execute("UPDATE ledger_postings SET amount_minor = amount_minor + 100 "
                     "WHERE ledger_partition = 'ledger:1' AND seq = %s", (seq,))
    report = verify(store.conn)
    assert not report.ok
    first = report.first
    assert (first.partition, first.seq) == ("ledger:1", seq)
    assert first.found == bytes(good).hex() and first.expected != first.found
    assert any("seal 1" in p.what for p in report.problems)  # the sealed postings root no longer matches
    code, out = _cli_verify(store.schema)
    assert code == 1 and f"first broken link: ledger:1 seq {seq}" in out
    # putting the amount back restores the chain: the hashes were never touched
    with attacker(store) as conn:
        conn.execute("UPDATE ledger_postings SET amount_minor = %s WHERE ledger_partition = 'ledger:1' AND seq = %s",
                     (amount, seq))
    assert verify(store.conn).ok


def test_verify_finds_a_deleted_posting_an_edited_set_and_a_forged_balance(store: LedgerStore) -> None:
    store.post(events(history()))
    _seal(store)
    with attacker(store) as conn:
        conn.execute("DELETE FROM ledger_postings WHERE ledger_partition = 'ledger:2' AND seq = 3")
    first = verify(store.conn).first
    assert (first.partition, first.seq, first.expected, first.found) == ("ledger:2", 3, "seq 3", "seq 4")

    other = LedgerStore(_dsn(), store.schema + "_b")
    try:
        other.post(events(history()))
        with attacker(other, "ledger_posting_sets") as conn:
            conn.execute("UPDATE ledger_posting_sets SET session_id = 'someone-else' WHERE session_id = 'sess-bob-1'")
            seq = conn.execute("SELECT min(first_seq) FROM ledger_posting_sets WHERE session_id = 'someone-else'"
                               ).fetchone()[0]
        assert (verify(other.conn).first.partition, verify(other.conn).first.seq) == ("ledger:1", seq)
    finally:
        other.close()

    third = LedgerStore(_dsn(), store.schema + "_c")
    try:
        third.post(events(history()))
        with third.conn.transaction():  # the balance cache is not insert-only, so no trigger to switch off
            third.conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE account = %s",
                               (CPO,))
        report = verify(third.conn)
        assert [p.what for p in report.problems] == [f"balance of {CPO} (EUR) differs from its postings"]
    finally:
        third.close()


# ---- proofs ----------------------------------------------------------------------------------------------------
def test_an_inclusion_proof_verifies_against_the_sealed_root_and_a_corrupted_one_is_rejected(store: LedgerStore
                                                                                             ) -> None:
    store.post(events(history()))
    sealed = _seal(store)
    root = bytes.fromhex(sealed["root"])
    r = AuditReader(_dsn(), store.schema)
    try:
        part, seq = r.locate("driver:bob", "sess-bob-2/dist", 2)
        doc = r.proof(part, seq).to_json()
    finally:
        r.close()
    assert doc["posting"]["account"] == REV and doc["posting"]["amount_minor"] == 200
    assert verify_proof(doc, root).seal_no == 1
    for corrupt in (lambda d: d["posting"].update(amount_minor=20000),
                    lambda d: d["posting"].update(account=A.driver_wallet("mallory")),
                    lambda d: d["posting_path"].__setitem__(0, "00" * 32),
                    lambda d: d["head"].update(postings_root="11" * 32),
                    lambda d: d.update(seal_index=(d["seal_index"] + 1) % d["seal_size"])):
        bad = json.loads(json.dumps(doc))
        corrupt(bad)
        with pytest.raises(ProofRejected):
            verify_proof(bad, root)
    # a proof generated after someone edited the row in Postgres does not lead to the root on the log
    with attacker(store) as conn:
        conn.execute("UPDATE ledger_postings SET amount_minor = 1 WHERE ledger_partition = %s AND seq = %s",
                     (part, seq))
    r = AuditReader(_dsn(), store.schema)
    try:
        with pytest.raises(ProofRejected, match="postings root"):
            verify_proof(r.proof(part, seq).to_json(), root)
    finally:
        r.close()


# ---- the audit API ------------------------------------------------------------------------------------------------
def test_the_audit_api_answers_auditors_refuses_drivers_and_has_no_way_to_write(store: LedgerStore) -> None:
    import asyncio

    import httpx
    import redis.asyncio as aioredis
    from fastapi import FastAPI

    from chargeverse.settings import get_settings
    from chargeverse.tokens import issue
    from edges.api import audit
    from edges.api.auth import api_routes, declared_access

    store.post(events(history()))
    sealed = _seal(store)
    app = FastAPI()
    app.include_router(audit.router)
    reader = AuditReader(_dsn(), store.schema)
    app.dependency_overrides[audit.reader] = lambda: reader
    routes = api_routes(app)
    assert routes and all(r.methods == {"GET"} and declared_access(r) == ("auditor", "admin") for r in routes)
    tokens = {roles: issue("t", list(roles)) for roles in (("driver",), ("operator", "fleet_manager"), ("auditor",),
                                                           ("admin",))}
    h = lambda *roles: {"Authorization": f"Bearer {tokens[roles]}"}  # noqa: E731
    urls = [f"/api/audit/accounts/{W('ann')}/balance", f"/api/audit/accounts/{W('ann')}/statement?currency=EUR"
            f"&from=2025-03-01T00:00:00&to=2025-03-02T00:00:00", "/api/audit/sessions/sess-cy-0/postings",
            "/api/audit/postings/ledger:0/3/proof", "/api/audit/posting-sets/driver:cy/top-cy/proof?entry=1",
            "/api/audit/seals", "/api/audit/rejections"]

    async def calls() -> None:
        app.state.redis = aioredis.Redis.from_url(get_settings().redis_url.get_secret_value())  # token keyring
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://audit.test") as c:
                for url in urls:
                    assert (await c.get(url)).status_code == 401, url
                    assert (await c.get(url, headers=h("driver"))).status_code == 403, url
                    assert (await c.get(url, headers=h("operator", "fleet_manager"))).status_code == 403, url
                    for roles in (("auditor",), ("admin",)):
                        assert (await c.get(url, headers=h(*roles))).status_code == 200, (url, roles)
                    for method in ("POST", "PUT", "PATCH", "DELETE"):
                        r = await c.request(method, url.split("?")[0], headers=h("admin"), json={})
                        assert r.status_code == 405, (method, url)
                a = h("auditor")
                bal = (await c.get(f"/api/audit/accounts/{W('ann')}/balance", headers=a)).json()["balances"][0]
                assert (bal["balance"], bal["available"]) == ("63.70", "63.70")  # 100 - 3 x 12.10
                past = (await c.get(f"/api/audit/accounts/{W('ann')}/balance?as_of=2025-03-01T09:30:00Z",
                                    headers=a)).json()["balances"][0]
                assert (past["balance"], past["debits_pending"], past["available"]) == ("100.00", "30.00", "70.00")
                sess = (await c.get("/api/audit/sessions/sess-cy-0/postings", headers=a)).json()["posting_sets"]
                assert [s["source_event_id"] for s in sess] == ["sess-cy-0/hold", "sess-cy-0/post", "sess-cy-0/dist"]
                assert all(s["event_id"] for s in sess)
                proof = (await c.get("/api/audit/posting-sets/driver:cy/top-cy/proof?entry=1", headers=a)).json()
                assert proof["posting"]["account"] == W("cy")
                verify_proof(proof, bytes.fromhex(sealed["root"]))
                assert (await c.get(f"/api/audit/accounts/{W('nobody')}/balance", headers=a)).status_code == 404
                assert (await c.get("/api/audit/accounts/not-an-account/balance", headers=a)).status_code == 422
                assert (await c.get(f"/api/audit/accounts/{W('ann')}/statement?currency=XBT&from=2025-03-01T00:00:00"
                                    "&to=2025-03-02T00:00:00", headers=a)).status_code == 422
                refused = (await c.get("/api/audit/rejections", headers=a)).json()["rejections"]
                assert {x["source_event_id"] for x in refused} == {"overdraft-ann", "chargeback-cy"}
        finally:
            await app.state.redis.aclose()

    try:
        asyncio.run(calls())
    finally:
        reader.close()
    # and below the API: the auditor's database connections cannot write either
    reader = AuditReader(_dsn(), store.schema)
    try:
        with reader.connection() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO ledger_rejections VALUES ('x', 'x', NULL, NULL, 'p', 0, NULL, 'r', 'd')")
            assert conn.execute("SELECT current_user").fetchone()[0] == "cv_ledger_auditor"
            with conn.transaction():
                conn.execute("SET TRANSACTION READ WRITE")  # even a read-write transaction: no privilege
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("UPDATE ledger_accounts SET debits_posted = 0")
    finally:
        reader.close()


def test_unknown_event_types_on_the_ledger_topic_fail_the_batch_and_write_nothing(store: LedgerStore) -> None:
    batch = events([(0, topup("hal", "5.00", "top-hal"))]) + [SourcedEvent("ledger", 0, 1, "StationHeartbeat", {})]
    with pytest.raises(ValueError, match="StationHeartbeat"):
        store.post(batch)
    assert store.offsets() == {} and _balance(store, W("hal")) is None
