"""The ledger in Postgres: applies batches of `ledger` topic events like a projection (projection name "ledger").

`post(events)` loads the state the batch can touch (balances of its accounts, the holds and sets it refers to, the
chain heads, the latest seal), runs the pure engine (ledger/engine.py) and writes its output -- posting sets,
chained postings, balances, heads, seals, refusals -- in ONE transaction with the projection offsets.  So:

- **Exactly once from the log.** Offsets skip what was applied; a redelivery at another offset is a duplicate by
  (ledger_key, source_event_id), enforced again by the primary key.  Refused events are recorded once (by event id)
  and returned, also when a batch is re-delivered, so the processor can publish them to its review queue
  at-least-once (its review events are keyed by the event id, so duplicates collapse).
- **Serial per schema.** Writers take a transaction-scoped advisory lock, so two workers never interleave a
  read-modify-write of the same balance or chain head.
- **Rebuildable.** Rows depend only on the events; `reset()` + replay from offset 0 reproduces every row and hash
  byte for byte (`checksum()` compares them; tests/integration/test_ledger.py proves it).
- **Immutable.** The migration's triggers refuse UPDATE/DELETE on postings, sets, seals and refusals for everyone;
  only the balance and head caches are updated, and `ledger verify` recomputes both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ledger import accounts, merkle
from ledger.accounts import Balance, Direction
from ledger.engine import Engine, HoldInfo, LedgerState, Outcome, PendingSeal, Rejection, SetInfo
from ledger.postings import HoldState, MinorEntry, SetKind
from ledger.records import POSTING_SET, SEALED, sealed_from_record, sealed_record
from ledger.seals import Seal, SealHead, posting_leaf, seal_root
from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate

NAME = "ledger"
TOPIC = "ledger"
_LOCK_CLASS = 727275  # pg_advisory_xact_lock(class, hashtext(schema)): one ledger writer per schema

#: every table of the ledger, in the order checksums read them
TABLES = ("ledger_posting_sets", "ledger_postings", "ledger_accounts", "ledger_chain_heads", "ledger_seals",
          "ledger_seal_heads", "ledger_rejections", "ledger_pending_seals")
_ORDER = {
    "ledger_posting_sets": "ledger_key, source_event_id",
    "ledger_postings": "ledger_partition, seq",
    "ledger_accounts": "account, currency",
    "ledger_chain_heads": "ledger_partition",
    "ledger_seals": "seal_no",
    "ledger_seal_heads": "seal_no, ledger_partition",
    "ledger_rejections": "event_id",
    "ledger_pending_seals": "ledger_partition, log_offset",
}


def partition_name(topic: str, partition: int) -> str:
    """The ledger partition (chain) of events from `topic`[`partition`]."""
    return f"{topic}:{partition}"


@dataclass
class PostResult:
    """What a batch did.  `rejections` are this batch's refusals plus, for events it skipped as already applied,
    the refusals recorded when they were first applied (so none is lost to a crash between commit and review)."""

    new_events: int = 0
    posted_sets: int = 0
    postings: int = 0
    duplicates: int = 0
    seals: int = 0
    rejections: list[Rejection] = field(default_factory=list)


class LedgerStore:
    name = NAME
    topics = (TOPIC,)

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn = dsn
        self.schema = schema
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)

    def close(self) -> None:
        self.conn.close()

    def _reconnect_if_broken(self) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)

    # ---- the Projection protocol -------------------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
        return {(t, p): o for t, p, o in rows}

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        return self.post(events).new_events

    def post(self, events: Sequence[SourcedEvent]) -> PostResult:
        """Apply the events not applied yet, atomically with their offsets."""
        result = PostResult()
        if not events:
            return result
        self._reconnect_if_broken()
        conn = self.conn
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema))
            stored = {(t, p): o for t, p, o in conn.execute(
                "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s",
                (self.name,)).fetchall()}
            new = unseen(events, stored)
            new_ids = {id(e) for e in new}
            skipped = [e for e in real(events) if id(e) not in new_ids]
            if new:
                data = real(new)
                for e in data:
                    if e.type not in (POSTING_SET, SEALED):
                        raise ValueError(f"the ledger does not read {e.type!r} events "
                                         f"({e.topic}[{e.partition}]@{e.offset})")
                engine = Engine(self._load_state(data))
                for e in data:
                    engine.apply(partition_name(e.topic, e.partition), e.offset, e.type, e.record)
                self._write(engine.out)
                conn.cursor().executemany(
                    "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition) "
                    "DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
                out = engine.out
                result.new_events = len(new)
                result.posted_sets = len(out.posted)
                result.postings = out.postings
                result.duplicates = out.duplicates
                result.seals = len(out.seals)
                result.rejections = list(out.rejections)
            if skipped:
                result.rejections += self._stored_rejections([e.record.get("event_id") for e in skipped])
        return result

    # ---- loading the state a batch can touch -------------------------------------------------------------------
    def _load_state(self, events: list[SourcedEvent]) -> LedgerState:
        conn = self.conn
        st = LedgerState(loaded=set())
        set_keys: set[tuple[str, str]] = set()
        hold_keys: set[tuple[str, str]] = set()
        rev_keys: set[tuple[str, str]] = set()
        acc_keys: set[tuple[str, str]] = set()
        seal_ids: list[str] = []
        for e in events:
            r = e.record
            if e.type == SEALED:
                seal_ids.append(r["event_id"])
                continue
            key = r.get("ledger_key")
            set_keys.add((key, r.get("source_event_id")))
            if r.get("hold_id") is not None:
                hold_keys.add((key, r["hold_id"]))
            if r.get("reverses") is not None:
                rev_keys.add((key, r["reverses"]))
            for en in r.get("entries") or ():
                acc_keys.add((en.get("account"), en.get("currency")))
        if set_keys:
            for k, s, h in conn.execute(
                    "SELECT s.ledger_key, s.source_event_id, s.content_hash FROM ledger_posting_sets s "
                    "JOIN unnest(%s::text[], %s::text[]) AS b(k, s) ON s.ledger_key = b.k AND s.source_event_id = b.s",
                    _cols(set_keys, 2)):
                st.known[(k, s)] = bytes(h)
        if hold_keys:
            rows = conn.execute(
                "SELECT h.ledger_key, h.hold_id, h.source_event_id, r.kind, r.source_event_id, p.account, "
                "p.direction, p.amount_minor, p.currency FROM ledger_posting_sets h "
                "JOIN unnest(%s::text[], %s::text[]) AS b(k, id) ON h.ledger_key = b.k AND h.hold_id = b.id "
                "JOIN ledger_postings p ON p.ledger_partition = h.ledger_partition "
                " AND p.seq BETWEEN h.first_seq AND h.first_seq + h.entry_count - 1 "
                "LEFT JOIN ledger_posting_sets r ON r.ledger_key = h.ledger_key AND r.hold_id = h.hold_id "
                " AND r.kind IN ('POST_HOLD', 'VOID_HOLD') "
                "WHERE h.kind = 'HOLD' ORDER BY h.ledger_key, h.hold_id, p.seq", _cols(hold_keys, 2)).fetchall()
            for k, hid, src, rkind, rsrc, acc, d, amt, cur in rows:
                info = st.holds.get((k, hid))
                if info is None:
                    state = HoldState()
                    if rkind is not None:
                        state = HoldState("POSTED" if rkind == "POST_HOLD" else "VOIDED", rsrc)
                    info = st.holds[(k, hid)] = HoldInfo(src, (), state)
                info.entries += (MinorEntry(acc, Direction.from_code(d), int(amt), cur),)
                acc_keys.add((acc, cur))
        if rev_keys:
            rows = conn.execute(
                "SELECT o.ledger_key, o.source_event_id, o.kind, r.source_event_id, p.account, p.direction, "
                "p.amount_minor, p.currency FROM ledger_posting_sets o "
                "JOIN unnest(%s::text[], %s::text[]) AS b(k, s) ON o.ledger_key = b.k AND o.source_event_id = b.s "
                "JOIN ledger_postings p ON p.ledger_partition = o.ledger_partition "
                " AND p.seq BETWEEN o.first_seq AND o.first_seq + o.entry_count - 1 "
                "LEFT JOIN ledger_posting_sets r ON r.ledger_key = o.ledger_key AND r.reverses = o.source_event_id "
                " AND r.kind = 'REVERSAL' "
                "ORDER BY o.ledger_key, o.source_event_id, p.seq", _cols(rev_keys, 2)).fetchall()
            for k, src, kind, rev_by, acc, d, amt, cur in rows:
                info = st.sets.get((k, src))
                if info is None:
                    info = st.sets[(k, src)] = SetInfo(SetKind(kind), (), rev_by)
                info.entries += (MinorEntry(acc, Direction.from_code(d), int(amt), cur),)
                acc_keys.add((acc, cur))
        acc_keys = {(a, c) for a, c in acc_keys if isinstance(a, str) and isinstance(c, str)}
        if acc_keys:
            for acc, cur, d, c, dp, cp in conn.execute(
                    "SELECT a.account, a.currency, a.debits_posted, a.credits_posted, a.debits_pending, "
                    "a.credits_pending FROM ledger_accounts a "
                    "JOIN unnest(%s::text[], %s::text[]) AS b(a, c) ON a.account = b.a AND a.currency = b.c",
                    _cols(acc_keys, 2)):
                st.balances[(acc, cur)] = Balance(int(d), int(c), int(dp), int(cp))
        st.loaded = acc_keys
        parts = {partition_name(e.topic, e.partition) for e in events}
        for eid, part, off, at, root, prev, heads in conn.execute(
                "SELECT event_id, ledger_partition, log_offset, sealed_at, root, previous_root, heads "
                "FROM ledger_pending_seals ORDER BY ledger_partition, log_offset"):
            st.pending.append(PendingSeal(eid, part, off, at, tuple(
                SealHead(h["ledger_partition"], int(h["seq"]), bytes.fromhex(h["head_hash"]),
                         bytes.fromhex(h["postings_root"])) for h in heads), bytes(root),
                bytes(prev) if prev is not None else None))
        sealing = bool(seal_ids or st.pending)
        if sealing:  # a seal waits on every chain it names, so the engine must see all heads
            rows = conn.execute("SELECT ledger_partition, seq, hash FROM ledger_chain_heads").fetchall()
        else:
            rows = conn.execute("SELECT ledger_partition, seq, hash FROM ledger_chain_heads "
                                "WHERE ledger_partition = ANY(%s)", (sorted(parts),)).fetchall()
        for p, seq, h in rows:
            st.heads[p] = (seq, bytes(h))
        if sealing:
            named: set[tuple[str, int]] = {(h.ledger_partition, h.seq) for ps in st.pending for h in ps.heads}
            for e in events:
                if e.type == SEALED:
                    try:
                        named.update((h.ledger_partition, h.seq) for h in sealed_from_record(e.record)[0])
                    except (KeyError, ValueError, TypeError):
                        pass  # the engine refuses the malformed seal and says why
            if named:
                for p, seq, h in conn.execute(
                        "SELECT p.ledger_partition, p.seq, p.hash FROM ledger_postings p "
                        "JOIN unnest(%s::text[], %s::bigint[]) AS b(p, s) ON p.ledger_partition = b.p AND p.seq = b.s",
                        ([n[0] for n in named], [n[1] for n in named])):
                    st.posting_hashes[(p, seq)] = bytes(h)
            row = conn.execute("SELECT seal_no, root FROM ledger_seals ORDER BY seal_no DESC LIMIT 1").fetchone()
            st.last_seal = (row[0], bytes(row[1])) if row else None
            st.seal_event_ids = {r[0] for r in conn.execute(
                "SELECT event_id FROM ledger_seals WHERE event_id = ANY(%s)", (seal_ids,))}
        return st

    # ---- writing the engine's output ---------------------------------------------------------------------------
    def _write(self, out: Outcome) -> None:
        cur = self.conn.cursor()
        if out.posted:
            with cur.copy("COPY ledger_posting_sets (ledger_key, source_event_id, event_id, causation_id, "
                          "ledger_partition, log_offset, kind, occurred_at, session_id, hold_id, reverses, memo, "
                          "first_seq, entry_count, content_hash) FROM STDIN") as cp:
                for s in out.posted:
                    ps = s.ps
                    cp.write_row((ps.ledger_key, ps.source_event_id, s.event_id, s.causation_id, s.ledger_partition,
                                  s.log_offset, getattr(ps.kind, "value", ps.kind), ps.occurred_at, ps.session_id, ps.hold_id,
                                  ps.reverses, ps.memo, s.first_seq, len(s.rows), s.content_hash))
            with cur.copy("COPY ledger_postings (ledger_partition, seq, ledger_key, source_event_id, entry_index, "
                          "kind, occurred_at, account, currency, direction, amount_minor, hash) FROM STDIN") as cp:
                for s in out.posted:
                    t = s.ps.occurred_at
                    for row, h in s.rows:
                        cp.write_row((row.ledger_partition, row.seq, row.ledger_key, row.source_event_id,
                                      row.entry_index, row.kind, t, row.account, row.currency, row.direction,
                                      row.amount_minor, h))
        if out.balances:  # one COPY and one upsert instead of a statement per account
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS ledger_balance_batch (LIKE ledger_accounts) "
                        "ON COMMIT DELETE ROWS")
            with cur.copy("COPY ledger_balance_batch (account, currency, kind, flags, debits_posted, credits_posted, "
                          "debits_pending, credits_pending, opened_at) FROM STDIN") as cp:
                for (a, c), b in out.balances.items():
                    acc = accounts.parse(a)
                    cp.write_row((a, c, acc.kind.value, int(acc.flags), *b, out.opened.get((a, c), _EPOCH)))
            cur.execute(
                "INSERT INTO ledger_accounts SELECT * FROM ledger_balance_batch ORDER BY account, currency "
                "ON CONFLICT (account, currency) DO UPDATE SET debits_posted = EXCLUDED.debits_posted, "
                "credits_posted = EXCLUDED.credits_posted, debits_pending = EXCLUDED.debits_pending, "
                "credits_pending = EXCLUDED.credits_pending")
        if out.heads:
            cur.executemany(
                "INSERT INTO ledger_chain_heads (ledger_partition, seq, hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (ledger_partition) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
                sorted((p, s, h) for p, (s, h) in out.heads.items()))
        if out.rejections:
            cur.executemany(
                "INSERT INTO ledger_rejections (event_id, event_type, ledger_key, source_event_id, ledger_partition, "
                "log_offset, occurred_at, reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (event_id) DO NOTHING",
                [(r.event_id, r.event_type, _text(r.ledger_key), _text(r.source_event_id), r.ledger_partition,
                  r.log_offset, r.occurred_at if isinstance(r.occurred_at, datetime) else None, r.reason, r.detail)
                 for r in out.rejections])
        if out.pending_added:
            cur.executemany(
                "INSERT INTO ledger_pending_seals (event_id, ledger_partition, log_offset, sealed_at, root, "
                "previous_root, heads) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(p.event_id, p.ledger_partition, p.log_offset, p.sealed_at, p.root, p.previous_root,
                  Jsonb([{"ledger_partition": h.ledger_partition, "seq": h.seq, "head_hash": h.head_hash.hex(),
                          "postings_root": h.postings_root.hex()} for h in p.heads]))
                 for p in out.pending_added])
        if out.pending_settled:
            cur.execute("DELETE FROM ledger_pending_seals WHERE event_id = ANY(%s)", (out.pending_settled,))
        for s in out.seals:
            seal = s.seal
            cur.execute("INSERT INTO ledger_seals (seal_no, event_id, ledger_partition, log_offset, sealed_at, root, "
                        "previous_root) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (seal.seal_no, seal.event_id, s.ledger_partition, s.log_offset, s.sealed_at, seal.root,
                         seal.previous_root))
            cur.executemany("INSERT INTO ledger_seal_heads (seal_no, ledger_partition, seq, head_hash, postings_root) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            [(seal.seal_no, h.ledger_partition, h.seq, h.head_hash, h.postings_root)
                             for h in seal.heads])

    def _stored_rejections(self, event_ids: list[Any]) -> list[Rejection]:
        rows = self.conn.execute(
            "SELECT event_id, event_type, ledger_key, source_event_id, ledger_partition, log_offset, occurred_at, "
            "reason, detail FROM ledger_rejections WHERE event_id = ANY(%s) ORDER BY ledger_partition, log_offset",
            ([i for i in event_ids if isinstance(i, str)],)).fetchall()
        return [Rejection(*r) for r in rows]

    # ---- sealing -----------------------------------------------------------------------------------------------
    def heads(self) -> dict[str, tuple[int, bytes]]:
        with self.conn.transaction():
            return {p: (s, bytes(h)) for p, s, h in
                    self.conn.execute("SELECT ledger_partition, seq, hash FROM ledger_chain_heads")}

    def seal_record(self, *, source: str = "cv ledger seal", occurred_at: datetime | None = None) -> dict[str, Any]:
        """A LedgerSealed record sealing every partition's current chain head (and its postings root), following
        the latest applied seal.  Publish it on the `ledger` topic under records.SEAL_KEY; the ledger records it
        when it applies it (so seals, too, are rebuilt from the log)."""
        heads = []
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            last = self.conn.execute("SELECT root FROM ledger_seals ORDER BY seal_no DESC LIMIT 1").fetchone()
            for part, seq, head in self.conn.execute(
                    "SELECT ledger_partition, seq, hash FROM ledger_chain_heads ORDER BY ledger_partition").fetchall():
                heads.append(SealHead(part, seq, bytes(head), self.postings_root(part, seq)))
        return sealed_record(heads, seal_root(heads), bytes(last[0]) if last else None, source=source,
                             occurred_at=occurred_at)

    def postings_root(self, partition: str, upto: int) -> bytes:
        """Merkle root over leaf_hash(hash_1..hash_upto) of a partition (streamed; O(log n) memory)."""
        acc = merkle.Accumulator()
        with self.conn.cursor(name=f"roots_{partition.replace(':', '_')}") as cur:
            cur.itersize = 50_000
            cur.execute("SELECT hash FROM ledger_postings WHERE ledger_partition = %s AND seq <= %s ORDER BY seq",
                        (partition, upto))
            for (h,) in cur:
                acc.add(posting_leaf(bytes(h)))
        if acc.size != upto:
            raise RuntimeError(f"{partition} has {acc.size} postings up to seq {upto}: run `cv ledger verify`")
        return acc.root()

    # ---- replay support ----------------------------------------------------------------------------------------
    def checksum(self) -> str:
        """SHA-256 over every ledger row in a fixed order and text form (UTC times, hex bytes)."""
        h = hashlib.sha256()
        with self.conn.transaction():
            self.conn.execute("SET LOCAL TimeZone = 'UTC'")
            for table in TABLES:
                h.update(f"\x00{table}\x00".encode())
                with self.conn.cursor(name=f"ck_{table}") as cur:
                    cur.itersize = 20_000
                    cur.execute(sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
                        sql.Identifier(table), sql.SQL(_ORDER[table])))
                    for (text,) in cur:
                        h.update(text.encode())
                        h.update(b"\n")
        return h.hexdigest()

    def reset(self) -> None:
        """Drop the whole ledger of this schema and its offsets, before a rebuild from the log."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.schema))
            self.conn.execute("SET LOCAL chargeverse.ledger_rebuild = 'on'")
            self.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)))
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _cols(pairs: Iterable[tuple[Any, Any]], n: int) -> tuple[list[Any], ...]:
    """Column lists of a set of tuples (for unnest joins); non-string members are dropped."""
    rows = [p for p in pairs if all(isinstance(x, str) for x in p)]
    return tuple([r[i] for r in rows] for i in range(n))


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def latest_seal(conn: psycopg.Connection, covering: tuple[str, int] | None = None) -> Seal | None:
    """The newest seal (that covers (partition, seq), when given)."""
    if covering is None:
        row = conn.execute("SELECT seal_no, event_id, root, previous_root FROM ledger_seals "
                           "ORDER BY seal_no DESC LIMIT 1").fetchone()
    else:
        row = conn.execute(
            "SELECT s.seal_no, s.event_id, s.root, s.previous_root FROM ledger_seals s JOIN ledger_seal_heads h "
            "ON h.seal_no = s.seal_no WHERE h.ledger_partition = %s AND h.seq >= %s "
            "ORDER BY s.seal_no DESC LIMIT 1", covering).fetchone()
    if row is None:
        return None
    heads = tuple(SealHead(p, s, bytes(hh), bytes(r)) for p, s, hh, r in conn.execute(
        "SELECT ledger_partition, seq, head_hash, postings_root FROM ledger_seal_heads WHERE seal_no = %s "
        "ORDER BY ledger_partition", (row[0],)))
    return Seal(row[0], row[1], bytes(row[2]), bytes(row[3]) if row[3] is not None else None, heads)

