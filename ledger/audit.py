"""Read-only audit queries over the ledger: balances as of any time, statements, a session's postings with their
source events, and inclusion proofs against sealed roots.  Used by `cv ledger ...` and the audit API.

Auditors read, never write, and that is enforced below the code: every connection here runs with
`default_transaction_read_only` and, where the database has it (projections/postgres/migrations/100_ledger.sql),
as the role `cv_ledger_auditor`, which holds SELECT on the ledger tables and nothing else.  A write attempted
through an AuditReader fails in Postgres (tests/integration/test_ledger.py shows both guards).

"As of" means business time: the `occurred_at` of the events, the same clock every posting carries.  Limits are
enforced in log order, so a balance as of a moment between two late-arriving events may show an intermediate
value the ledger never held in log order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator

import psycopg
from psycopg_pool import ConnectionPool

from ledger import accounts, money
from ledger.accounts import Balance
from ledger.chain import PostingRow
from ledger.postings import POSTED_KINDS
from ledger.seals import PostingProof, build_proof
from ledger.store import latest_seal

AUDITOR_ROLE = "cv_ledger_auditor"
_POSTED = tuple(k.value for k in POSTED_KINDS)


class NotFound(LookupError):
    pass


class NotSealed(LookupError):
    """The posting exists but no seal covers it yet (`cv ledger seal`)."""


@dataclass(frozen=True)
class AccountBalance:
    account: str
    currency: str
    kind: str
    debits_posted: Decimal
    credits_posted: Decimal
    debits_pending: Decimal
    credits_pending: Decimal
    balance: Decimal  # posted, on the account's normal side
    available: Decimal  # after open holds
    as_of: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.__dict__.items()}


def _balance(account: str, currency: str, b: Balance, as_of: datetime | None) -> AccountBalance:
    kind = accounts.parse(account).kind
    f = money.from_minor
    return AccountBalance(account, currency, kind.value, f(b.debits_posted, currency), f(b.credits_posted, currency),
                          f(b.debits_pending, currency), f(b.credits_pending, currency),
                          f(b.normal(kind), currency), f(b.available(kind), currency), as_of)


_AS_OF = """
SELECT p.currency,
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'D' AND p.kind = ANY(%(posted)s)), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'C' AND p.kind = ANY(%(posted)s)), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'D' AND p.kind = 'HOLD' AND r.ledger_key IS NULL), 0),
  coalesce(sum(p.amount_minor) FILTER (WHERE p.direction = 'C' AND p.kind = 'HOLD' AND r.ledger_key IS NULL), 0)
FROM ledger_postings p
LEFT JOIN ledger_posting_sets h
       ON p.kind = 'HOLD' AND h.ledger_key = p.ledger_key AND h.source_event_id = p.source_event_id
LEFT JOIN ledger_posting_sets r
       ON r.ledger_key = h.ledger_key AND r.hold_id = h.hold_id AND r.kind IN ('POST_HOLD', 'VOID_HOLD')
      AND r.occurred_at <= %(t)s
WHERE p.account = %(a)s AND p.occurred_at <= %(t)s AND (%(c)s::text IS NULL OR p.currency = %(c)s)
GROUP BY p.currency ORDER BY p.currency
"""


class AuditReader:
    """Read-only access to one schema's ledger, through a small pool of read-only connections."""

    def __init__(self, dsn: str, schema: str = "public", max_size: int = 4) -> None:
        self.schema = schema
        self._pool = ConnectionPool(dsn, min_size=1, max_size=max_size, open=True, configure=self._configure,
                                    kwargs={"options": f"-c search_path={schema},public", "autocommit": True})

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        row = conn.execute("SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                           (AUDITOR_ROLE,)).fetchone()
        if row and row[0]:
            conn.execute(f"SET ROLE {AUDITOR_ROLE}")

    def close(self) -> None:
        self._pool.close()

    def connection(self) -> Any:
        """A pooled read-only connection (context manager)."""
        return self._pool.connection()

    # ---- balances ----------------------------------------------------------------------------------------------
    def balance(self, account: str, as_of: datetime | None = None, currency: str | None = None
                ) -> list[AccountBalance]:
        """The account's balance per currency, now (the maintained totals) or as of a business time."""
        accounts.parse(account)
        with self.connection() as conn, conn.transaction():
            if as_of is None:
                rows = conn.execute(
                    "SELECT currency, debits_posted, credits_posted, debits_pending, credits_pending "
                    "FROM ledger_accounts WHERE account = %s AND (%s::text IS NULL OR currency = %s) "
                    "ORDER BY currency", (account, currency, currency)).fetchall()
            else:
                rows = conn.execute(_AS_OF, {"posted": list(_POSTED), "t": as_of, "a": account,
                                             "c": currency}).fetchall()
        if not rows:
            raise NotFound(f"no postings on {account}" + (f" in {currency}" if currency else "")
                           + (f" up to {as_of.isoformat()}" if as_of else ""))
        return [_balance(account, cur, Balance(int(d), int(c), int(dp), int(cp)), as_of)
                for cur, d, c, dp, cp in rows]

    # ---- statements --------------------------------------------------------------------------------------------
    def statement(self, account: str, currency: str, since: datetime, until: datetime, limit: int = 1000
                  ) -> dict[str, Any]:
        """The postings of one account and currency with since <= occurred_at < until, oldest first, with the
        posted balance (normal side) before the first and after each."""
        kind = accounts.parse(account).kind
        money.minor_units(currency)
        sign_d = 1 if kind.normal_side is accounts.Direction.DEBIT else -1
        with self.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            d, c = conn.execute(
                "SELECT coalesce(sum(amount_minor) FILTER (WHERE direction = 'D'), 0), "
                "coalesce(sum(amount_minor) FILTER (WHERE direction = 'C'), 0) FROM ledger_postings "
                "WHERE account = %s AND currency = %s AND occurred_at < %s AND kind = ANY(%s)",
                (account, currency, since, list(_POSTED))).fetchone()
            opening = sign_d * (int(d) - int(c))
            rows = conn.execute(
                "SELECT p.occurred_at, p.ledger_partition, p.seq, p.ledger_key, p.source_event_id, p.kind, "
                "p.direction, p.amount_minor, s.session_id, s.memo, s.causation_id FROM ledger_postings p "
                "JOIN ledger_posting_sets s ON s.ledger_key = p.ledger_key AND s.source_event_id = p.source_event_id "
                "WHERE p.account = %s AND p.currency = %s AND p.occurred_at >= %s AND p.occurred_at < %s "
                "ORDER BY p.occurred_at, p.ledger_partition, p.seq LIMIT %s",
                (account, currency, since, until, limit + 1)).fetchall()
        running = opening
        lines = []
        for t, part, seq, key, src, k, direction, amt, session, memo, cause in rows[:limit]:
            effect = "posted" if k in _POSTED else ("pending" if k == "HOLD" else "released")
            if effect == "posted":
                running += sign_d * int(amt) if direction == "D" else -sign_d * int(amt)
            lines.append({"occurred_at": t.isoformat(), "ledger_partition": part, "seq": seq, "ledger_key": key,
                          "source_event_id": src, "causation_id": cause, "kind": k, "effect": effect,
                          "direction": "DEBIT" if direction == "D" else "CREDIT",
                          "amount": money.format_amount(int(amt), currency), "session_id": session, "memo": memo,
                          "balance": money.format_amount(running, currency)})
        return {"account": account, "currency": currency, "kind": kind.value, "from": since.isoformat(),
                "to": until.isoformat(), "opening_balance": money.format_amount(opening, currency),
                "closing_balance": money.format_amount(running, currency), "lines": lines,
                "truncated": len(rows) > limit}

    # ---- sessions ----------------------------------------------------------------------------------------------
    def session(self, session_id: str) -> list[dict[str, Any]]:
        """Every posting set of a charging session, in time order, with its postings and source events."""
        with self.connection() as conn, conn.transaction():
            sets = conn.execute(
                "SELECT ledger_key, source_event_id, event_id, causation_id, kind, occurred_at, hold_id, reverses, "
                "memo, ledger_partition, first_seq, entry_count FROM ledger_posting_sets WHERE session_id = %s "
                "ORDER BY occurred_at, ledger_partition, first_seq", (session_id,)).fetchall()
            out = []
            for key, src, eid, cause, kind, t, hold, rev, memo, part, first, n in sets:
                postings = conn.execute(
                    "SELECT seq, entry_index, account, direction, amount_minor, currency, hash FROM ledger_postings "
                    "WHERE ledger_partition = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                    (part, first, first + n - 1)).fetchall()
                out.append({
                    "ledger_key": key, "source_event_id": src, "event_id": eid, "causation_id": cause, "kind": kind,
                    "occurred_at": t.isoformat(), "hold_id": hold, "reverses": rev, "memo": memo,
                    "ledger_partition": part,
                    "postings": [{"seq": seq, "entry_index": i, "account": acc,
                                  "direction": "DEBIT" if d == "D" else "CREDIT",
                                  "amount": money.format_amount(int(a), cur), "currency": cur,
                                  "hash": bytes(h).hex()} for seq, i, acc, d, a, cur, h in postings],
                })
        if not out:
            raise NotFound(f"no posting sets for session {session_id}")
        return out

    # ---- proofs ------------------------------------------------------------------------------------------------
    def locate(self, ledger_key: str, source_event_id: str, entry_index: int = 0) -> tuple[str, int]:
        """(partition, seq) of entry `entry_index` of a posting set."""
        with self.connection() as conn, conn.transaction():
            row = conn.execute("SELECT ledger_partition, first_seq, entry_count FROM ledger_posting_sets "
                               "WHERE ledger_key = %s AND source_event_id = %s",
                               (ledger_key, source_event_id)).fetchone()
        if row is None or not 0 <= entry_index < row[2]:
            raise NotFound(f"no posting {entry_index} in set {ledger_key}/{source_event_id}")
        return row[0], row[1] + entry_index

    def proof(self, partition: str, seq: int) -> PostingProof:
        """Inclusion proof of posting (partition, seq) against the latest seal that covers it."""
        with self.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute(
                "SELECT s.event_id, s.causation_id, p.ledger_key, p.source_event_id, s.kind, "
                "(extract(epoch FROM s.occurred_at) * 1000000)::bigint, s.session_id, s.hold_id, s.reverses, "
                "s.memo, p.entry_index, p.account, p.direction, p.amount_minor, p.currency "
                "FROM ledger_postings p JOIN ledger_posting_sets s "
                "ON s.ledger_key = p.ledger_key AND s.source_event_id = p.source_event_id "
                "WHERE p.ledger_partition = %s AND p.seq = %s", (partition, seq)).fetchone()
            if row is None:
                raise NotFound(f"no posting {partition} seq {seq}")
            seal = latest_seal(conn, (partition, seq))
            if seal is None:
                raise NotSealed(f"{partition} seq {seq} is not sealed yet; run `cv ledger seal`")
            upto = next(h.seq for h in seal.heads if h.ledger_partition == partition)
            hashes = [bytes(h) for (h,) in conn.execute(
                "SELECT hash FROM ledger_postings WHERE ledger_partition = %s AND seq <= %s ORDER BY seq",
                (partition, upto))]
        posting = PostingRow(partition, seq, row[0], row[1], row[2], row[3], row[4], int(row[5]), *row[6:13],
                             int(row[13]), row[14])
        return build_proof(posting, hashes, seal)

    def seals(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.connection() as conn, conn.transaction():
            rows = conn.execute("SELECT seal_no, event_id, sealed_at, root, previous_root FROM ledger_seals "
                                "ORDER BY seal_no DESC LIMIT %s", (limit,)).fetchall()
        return [{"seal_no": n, "event_id": e, "sealed_at": t.isoformat(), "root": bytes(r).hex(),
                 "previous_root": bytes(p).hex() if p is not None else None} for n, e, t, r, p in rows]

    def rejections(self, limit: int = 100) -> Iterator[dict[str, Any]]:
        with self.connection() as conn, conn.transaction():
            rows = conn.execute("SELECT event_id, event_type, ledger_key, source_event_id, ledger_partition, "
                                "log_offset, occurred_at, reason, detail FROM ledger_rejections "
                                "ORDER BY ledger_partition, log_offset DESC LIMIT %s", (limit,)).fetchall()
        for r in rows:
            yield dict(zip(("event_id", "event_type", "ledger_key", "source_event_id", "ledger_partition",
                            "log_offset", "occurred_at", "reason", "detail"),
                           (*r[:6], r[6].isoformat() if r[6] else None, *r[7:])))
