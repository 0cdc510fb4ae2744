"""The ledger engine (ledger/engine.py) over an in-memory state: exactly once, atomic sets, limits, holds that
resolve once, reversals, chains, seals -- each invariant of its docstring by name."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import accounts as A
from ledger import postings as P
from ledger.accounts import Balance
from ledger.chain import GENESIS, first_break
from ledger.engine import Engine, LedgerState, PostedSet, Rejection
from ledger.postings import PostingSet, SetKind
from ledger.records import SEALED, sealed_record
from ledger.seals import SealHead, posting_leaf, seal_root
from ledger import merkle

T = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
W = A.driver_wallet("u1")
CLEARING = A.psp_clearing("stripe")
SUSP = A.suspense()
CPO = A.cpo_payable("NL-GFX")


class Mem:
    """An in-memory ledger: one engine per call, sharing the state (as batches share the database)."""

    def __init__(self) -> None:
        self.state = LedgerState()
        self.offset = 0
        self.rows: dict[str, list] = defaultdict(list)

    def post(self, ps: PostingSet, part: str = "ledger:0") -> PostedSet | Rejection | None:
        eng = Engine(self.state)
        out = eng.post(part, self.offset, ps, f"evt-{self.offset}")
        self.offset += 1
        for s in eng.out.posted:
            self.rows[s.ledger_partition].extend(s.rows)
        return out

    def ok(self, ps: PostingSet, part: str = "ledger:0") -> PostedSet:
        out = self.post(ps, part)
        assert isinstance(out, PostedSet), out
        return out

    def refused(self, ps: PostingSet, reason: str, part: str = "ledger:0") -> Rejection:
        out = self.post(ps, part)
        assert isinstance(out, Rejection) and out.reason == reason, out
        return out

    def bal(self, account: str, currency: str = "EUR") -> Balance:
        return self.state.balances.get((account, currency), Balance())


def topup(amount: str, src: str = "top") -> PostingSet:
    return P.posting(src, "driver:u1", T, [P.debit(CLEARING, amount, "EUR"), P.credit(W, amount, "EUR")])


def spend(amount: str, src: str = "spend") -> PostingSet:
    return P.posting(src, "driver:u1", T, [P.debit(W, amount, "EUR"), P.credit(CPO, amount, "EUR")])


def hold(amount: str, hold_id: str = "h1", src: str = "hold") -> PostingSet:
    return P.hold(src, "driver:u1", T, hold_id, [P.debit(W, amount, "EUR"), P.credit(SUSP, amount, "EUR")],
                  session_id="s-1")


def test_exactly_once_a_redelivered_set_is_a_noop_and_a_conflicting_one_is_refused() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    heads = dict(m.state.heads)
    assert m.post(topup("50.00")) is None  # same content: duplicate
    assert m.bal(W).credits_posted == 5000 and m.state.heads == heads
    r = m.refused(topup("60.00"), "conflicting_duplicate")  # same source, different content
    assert "first one stands" in r.detail and m.bal(W).credits_posted == 5000
    # the same source under another key is a different posting set
    other = P.posting("top", "platform:x", T, [P.debit(CLEARING, "1.00", "EUR"), P.credit(SUSP, "1.00", "EUR")])
    m.ok(other)


def test_limits_a_wallet_cannot_go_below_zero_and_a_refused_set_changes_nothing() -> None:
    m = Mem()
    m.ok(topup("20.00"))
    before = (dict(m.state.balances), dict(m.state.heads), dict(m.state.known))
    r = m.refused(spend("20.01"), "limit")
    assert W in r.detail and "exceed credits" in r.detail
    assert before == (dict(m.state.balances), dict(m.state.heads), dict(m.state.known))
    m.ok(spend("20.00"))
    assert m.bal(W).normal(A.Kind.LIABILITY) == 0
    m.refused(spend("0.01", src="spend2"), "limit")
    # the refused source id is not taken: the same id can be posted once it is valid
    m.ok(topup("5.00", src="top2"))
    m.ok(spend("0.01", src="spend2"))


def test_limits_apply_to_a_fresh_account_and_to_credits_must_not_exceed_debits() -> None:
    m = Mem()
    m.refused(spend("1.00"), "limit")
    adv = A.name("cpo", "NL-GFX", "advance")
    pay = P.posting("adv", "cpo:NL-GFX", T, [P.debit(adv, "100.00", "EUR"), P.credit(A.name("platform", "main", "bank"),
                                                                                   "100.00", "EUR")])
    m.ok(pay)
    settle = P.posting("settle", "cpo:NL-GFX", T, [P.debit(CPO, "100.01", "EUR"), P.credit(adv, "100.01", "EUR")])
    assert "exceed debits" in m.refused(settle, "limit").detail


def test_holds_reserve_funds_and_a_post_releases_the_rest() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    h = hold("30.00")
    m.ok(h)
    assert m.bal(W) == Balance(0, 5000, 3000, 0)
    assert m.bal(W).available(A.Kind.LIABILITY) == 2000
    m.refused(spend("20.01"), "limit")  # only 20.00 is not reserved
    post = P.post_hold("post", h, T + timedelta(hours=1),
                       [P.debit(W, "12.34", "EUR"), P.credit(SUSP, "12.34", "EUR")])
    done = m.ok(post)
    assert [r.amount_minor for r, _ in done.rows] == [1234, 1234]
    assert m.bal(W) == Balance(1234, 5000, 0, 0)
    assert m.bal(SUSP) == Balance(0, 1234, 0, 0)
    m.ok(spend("37.66"))


def test_a_post_without_entries_posts_the_whole_hold_and_a_void_posts_nothing() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    h1, h2 = hold("10.00", "h1", "hold1"), hold("15.00", "h2", "hold2")
    m.ok(h1)
    m.ok(h2)
    whole = m.ok(P.post_hold("post1", h1, T))
    assert [(r.account, r.direction, r.amount_minor, r.kind) for r, _ in whole.rows] == [
        (W, "D", 1000, "POST_HOLD"), (SUSP, "C", 1000, "POST_HOLD")]
    void = m.ok(P.void_hold("void2", h2, T))
    assert [(r.account, r.direction, r.amount_minor, r.kind) for r, _ in void.rows] == [
        (W, "D", 1500, "VOID_HOLD"), (SUSP, "C", 1500, "VOID_HOLD")]
    assert m.bal(W) == Balance(1000, 5000, 0, 0)


def test_holds_resolve_at_most_once() -> None:
    for first, second in ((P.post_hold, P.void_hold), (P.void_hold, P.post_hold), (P.post_hold, P.post_hold),
                          (P.void_hold, P.void_hold)):
        m = Mem()
        m.ok(topup("50.00"))
        h = hold("30.00")
        m.ok(h)
        m.ok(first("r1", h, T))
        bal = m.bal(W)
        r = m.refused(second("r2", h, T), "hold_resolved")
        assert "at most once" in r.detail and "by r1" in r.detail
        assert m.bal(W) == bal
        assert m.post(first("r1", h, T)) is None  # the first resolution redelivered: a duplicate, not an error


def test_a_post_takes_at_most_what_the_hold_reserved() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    h = hold("30.00")
    m.ok(h)
    m.refused(P.post_hold("p", h, T, [P.debit(W, "30.01", "EUR"), P.credit(SUSP, "30.01", "EUR")]), "exceeds_hold")
    m.refused(P.post_hold("p", h, T, [P.debit(W, "5.00", "EUR"), P.credit(CPO, "5.00", "EUR")]), "exceeds_hold")
    assert m.bal(W).debits_pending == 3000  # still held


def test_holds_are_scoped_to_their_key_and_their_id_is_used_once() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    h = hold("10.00")
    m.ok(h)
    m.refused(hold("10.00", "h1", "hold-again"), "duplicate_hold")
    m.refused(P.void_hold("v", replace(h, ledger_key="driver:u2"), T), "unknown_hold")
    m.refused(P.void_hold("v", replace(h, hold_id="nope"), T), "unknown_hold")


def test_reversals_mirror_once_under_the_originals_key() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    c = spend("12.00")
    m.ok(c)
    rev = P.reversal(c, source_event_id="rev", occurred_at=T)
    done = m.ok(rev)
    assert [(r.direction, r.kind, r.reverses) for r, _ in done.rows] == [("C", "REVERSAL", "spend"),
                                                                         ("D", "REVERSAL", "spend")]
    assert m.bal(W).normal(A.Kind.LIABILITY) == 5000 and m.bal(CPO).normal(A.Kind.LIABILITY) == 0
    assert "reversed by rev" in m.refused(P.reversal(c, source_event_id="rev2", occurred_at=T),
                                          "already_reversed").detail
    m.refused(PostingSet("x", "driver:u1", T, (), SetKind.REVERSAL, reverses="rev"), "bad_reversal")  # of a reversal
    m.refused(PostingSet("y", "driver:u1", T, (), SetKind.REVERSAL, reverses="nope"), "unknown_original")
    h = hold("5.00", "h9", "hold9")
    m.ok(h)
    m.refused(PostingSet("z", "driver:u1", T, (), SetKind.REVERSAL, reverses="hold9"), "bad_reversal")


def test_a_reversal_without_entries_mirrors_what_was_posted_and_a_wrong_mirror_is_refused() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    h = hold("30.00")
    m.ok(h)
    m.ok(P.post_hold("post", h, T))  # posted the hold's entries
    done = m.ok(PostingSet("refund", "driver:u1", T, (), SetKind.REVERSAL, reverses="post"))
    assert [(r.account, r.direction, r.amount_minor) for r, _ in done.rows] == [(W, "C", 3000), (SUSP, "D", 3000)]
    c = spend("1.00", src="c2")
    m.ok(c)
    wrong = PostingSet("r2", "driver:u1", T, (P.credit(W, "0.50", "EUR"), P.debit(CPO, "0.50", "EUR")),
                       SetKind.REVERSAL, reverses="c2")
    m.refused(wrong, "not_a_mirror")


def test_a_spent_topup_cannot_be_reversed_into_a_negative_wallet() -> None:
    m = Mem()
    t = topup("10.00")
    m.ok(t)
    m.ok(spend("8.00"))
    m.refused(P.reversal(t, source_event_id="chargeback", occurred_at=T), "limit")


def test_invalid_sets_are_refused_with_their_reason_not_raised() -> None:
    m = Mem()
    bad = replace(topup("1.00"), ledger_key="driver:u2")
    assert m.refused(bad, "limited_account_key").source_event_id == "top"
    m.refused(replace(topup("1.00"), entries=topup("1.00").entries[:1] + (P.credit(W, "2.00", "EUR"),)), "unbalanced")


def test_chains_rows_get_consecutive_seqs_per_partition_and_link() -> None:
    m = Mem()
    m.ok(topup("50.00"), "ledger:0")
    m.ok(P.posting("x", "platform:a", T, [P.debit(CLEARING, "1.00", "EUR"), P.credit(SUSP, "1.00", "EUR")]),
         "ledger:1")
    m.ok(spend("5.00"), "ledger:0")
    assert [r.seq for r, _ in m.rows["ledger:0"]] == [1, 2, 3, 4]
    assert [r.seq for r, _ in m.rows["ledger:1"]] == [1, 2]
    for part, rows in m.rows.items():
        assert first_break(part, rows) is None
        assert m.state.heads[part] == (rows[-1][0].seq, rows[-1][1])


def test_deterministic_the_same_events_give_the_same_rows_and_hashes() -> None:
    def run() -> list:
        m = Mem()
        m.ok(topup("50.00"))
        h = hold("30.00")
        m.ok(h)
        m.refused(spend("25.00"), "limit")
        m.ok(P.post_hold("p", h, T))
        return [m.rows, m.state.heads, m.state.balances]

    assert run() == run()


def seal_rec(m: Mem, prev: bytes | None, **kw) -> dict:  # noqa: ANN003
    heads = []
    for part, rows in sorted(m.rows.items()):
        heads.append(SealHead(part, rows[-1][0].seq, rows[-1][1], merkle.root([posting_leaf(h) for _, h in rows])))
    rec = sealed_record(heads, seal_root(heads), prev, source="t")
    rec.update(kw)
    return rec


def test_seals_are_numbered_follow_each_other_and_bad_ones_are_refused() -> None:
    m = Mem()
    m.ok(topup("50.00"))
    eng = Engine(m.state)
    first = seal_rec(m, None)
    eng.apply("ledger:5", 0, SEALED, first)
    eng.apply("ledger:5", 1, SEALED, first)  # redelivered: ignored
    stale = seal_rec(m, None)  # does not follow the first
    eng.apply("ledger:5", 2, SEALED, stale)
    second = seal_rec(m, bytes.fromhex(first["root"]))
    eng.apply("ledger:5", 3, SEALED, second)
    forged = seal_rec(m, bytes.fromhex(second["root"]), root="00" * 32)
    eng.apply("ledger:5", 4, SEALED, forged)
    garbage = seal_rec(m, bytes.fromhex(second["root"]), root="zz")
    eng.apply("ledger:5", 5, SEALED, garbage)
    assert [s.seal.seal_no for s in eng.out.seals] == [1, 2]
    assert eng.out.duplicates == 1
    assert [r.reason for r in eng.out.rejections] == ["stale_seal", "bad_seal", "bad_seal"]


def test_a_seal_of_another_ledgers_chain_is_refused_once_our_chain_reaches_what_it_names() -> None:
    """A seal is a claim about *this* ledger's chains: one built from another store (another schema, another
    environment) published on this topic must not become this ledger's seal, or `verify` would fail forever.
    One naming a seq our chain has not reached waits (pending) and is judged when it gets there; meanwhile our
    own seals are not held back."""
    ours, theirs = Mem(), Mem()
    ours.ok(topup("50.00"))
    theirs.ok(topup("20.00", src="elsewhere"))  # same partition and seq, different content, so a different hash
    eng = Engine(ours.state)
    eng.apply("ledger:5", 0, SEALED, seal_rec(theirs, None))
    theirs.ok(topup("1.00", src="more"))  # their chain is now longer than ours: seq 4 does not exist here yet
    eng.apply("ledger:5", 1, SEALED, seal_rec(theirs, None))
    assert eng.out.seals == []
    assert [r.reason for r in eng.out.rejections] == ["foreign_seal"]
    assert [p.log_offset for p in ours.state.pending] == [1]
    eng.apply("ledger:5", 2, SEALED, seal_rec(ours, None))  # our own seal still lands as seal 1
    assert [s.seal.seal_no for s in eng.out.seals] == [1]
    assert [p.log_offset for p in ours.state.pending] == [1]
    ours.ok(topup("2.00", src="ours-more"))  # our chain reaches seq 4, with our own content
    assert ours.state.pending == []
    assert [r.reason for r in eng.out.rejections] == ["foreign_seal"]  # that engine's batch is over
    assert [s.seal.seal_no for s in eng.out.seals] == [1]


def test_a_seal_read_before_the_postings_it_names_waits_and_gives_what_the_log_order_gives() -> None:
    """A rebuild reads partitions in any interleaving, so the seal (on its own partition) can arrive before the
    chains it seals.  Every interleaving gives the same seals, numbers and refusals as reading in log order."""
    import itertools

    src = Mem()
    sets = [(topup("10.00", src=f"t{i}"), f"ledger:{i % 3}") for i in range(6)]
    for ps, part in sets:
        src.ok(ps, part)
    first = seal_rec(src, None)
    src.ok(topup("1.00", src="late"), "ledger:1")
    second = seal_rec(src, bytes.fromhex(first["root"]))
    sets.append((topup("1.00", src="late"), "ledger:1"))
    seal_events = [("ledger:9", 0, first), ("ledger:9", 1, second)]

    def run(order: list) -> tuple:
        state = LedgerState()
        eng = Engine(state)
        for kind, item in order:
            if kind == "set":
                ps, part = item
                i = sets.index(item)
                eng.post(part, i, ps, f"evt-{i}")  # as Mem posted them
            else:
                eng.apply(item[0], item[1], SEALED, item[2])
        return ([(s.seal.seal_no, s.seal.root, s.log_offset) for s in eng.out.seals],
                [r.reason for r in eng.out.rejections], state.pending, state.heads)

    chains = [("set", x) for x in sets]
    seals = [("seal", x) for x in seal_events]
    want = run(chains[:6] + seals[:1] + chains[6:] + seals[1:])  # the order they were written
    assert [n for n, _, _ in want[0]] == [1, 2] and want[1] == [] and want[2] == []
    # the seals' partition merged with the chains' at every position (each partition keeps its own order)
    for cut_a, cut_b in itertools.combinations_with_replacement(range(len(chains) + 1), 2):
        order = chains[:cut_a] + seals[:1] + chains[cut_a:cut_b] + seals[1:] + chains[cut_b:]
        assert run(order) == want, (cut_a, cut_b)


def test_the_ledger_reads_only_its_own_event_types() -> None:
    with pytest.raises(ValueError, match="StationHeartbeat"):
        Engine(LedgerState()).apply("ledger:0", 0, "StationHeartbeat", {})


def test_a_store_state_must_have_loaded_every_balance_it_touches() -> None:
    eng = Engine(LedgerState(loaded=set()))
    with pytest.raises(RuntimeError, match="not loaded"):
        eng.post("ledger:0", 0, topup("1.00"), "e")


ops = st.lists(st.tuples(st.sampled_from(["topup", "spend", "hold", "post", "void", "reverse"]),
                         st.integers(min_value=1, max_value=5000), st.integers(min_value=0, max_value=2)),
               min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_any_sequence_keeps_every_limit_and_debits_equal_credits(seq) -> None:  # noqa: ANN001
    from ledger.money import format_amount

    m = Mem()
    holds: list[PostingSet] = []
    posted: list[PostingSet] = []
    for i, (op, cents, pick) in enumerate(seq):
        amt = format_amount(cents, "EUR")
        if op == "topup":
            ps = topup(amt, f"t{i}")
        elif op == "spend":
            ps = spend(amt, f"s{i}")
        elif op == "hold":
            ps = hold(amt, f"h{i}", f"h{i}")
        elif op in ("post", "void") and holds:
            h = holds[pick % len(holds)]
            ps = (P.post_hold if op == "post" else P.void_hold)(f"r{i}", h, T)
        elif op == "reverse" and posted:
            ps = P.reversal(posted[pick % len(posted)], source_event_id=f"x{i}", occurred_at=T)
        else:
            continue
        out = m.post(ps)
        if isinstance(out, PostedSet):
            (holds if ps.kind is SetKind.HOLD else posted if ps.kind is SetKind.POSTING else []).append(ps)
        for (acc, _), b in m.state.balances.items():
            assert b.violation(A.parse(acc).flags) is None
            assert min(b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending) >= 0
        tot = [sum(getattr(b, f) for b in m.state.balances.values())
               for f in ("debits_posted", "credits_posted", "debits_pending", "credits_pending")]
        assert tot[0] == tot[1] and tot[2] == tot[3]  # the trial balance
    for part, rows in m.rows.items():
        assert first_break(part, rows) is None
    assert all(isinstance(h, bytes) and h != GENESIS for _, h in m.state.heads.values())
