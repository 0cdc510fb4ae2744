"""The payments processor: `sessions` (SessionStarted) + `billing` (CdrPriced) -> `billing` (PaymentEvent,
BillingReview) and `ledger` (LedgerPostingSet of holds, captures, releases, direct charges).

KEYING.  The two input topics have different keys (`sessions`: session id; `billing`: the paying account).  The
processor is a `StatefulProcessor` (streams/stateful.py) whose state is keyed by SESSION ID, read from the
record of both event types (CdrPriced carries `session_id`).  Its state and its offsets on both topics commit in
one Postgres transaction after its outputs are acknowledged, so co-partitioning of the two topics is not needed:
any worker holding any partitions finds a session's state in Postgres, and the processor's advisory lock
serialises batches.  Events of other types on `billing` (its own PaymentEvents, reviews, invoices) are passed
over (their key is irrelevant; the fold leaves no state for them).  Order ACROSS the two topics is not
guaranteed: the fold keeps a CdrPriced that arrives before its session's start (see fold.py), and a batch is
folded `sessions` first, so a start and its CDR delivered in one batch are handled in their natural order.

LOOKUPS read projections with a read-only autocommit connection: the account behind an id token (`id_tokens`),
the account's default payment method (`payment_methods`: the oldest reference of the configured provider, else
the oldest of any provider -- the first one the driver added is the default, as the API lists them), and the
currency of the station's tariff at the session's start (`station_tariffs`).

PROVIDER CALLS happen inside the batch, before the outputs are published; a crash before the commit re-runs the
batch with the same idempotency keys and the provider answers as before (LocalProvider and Stripe both honour
them), so nothing is held, captured or charged twice.  The LocalProvider keeps its holds in memory: a worker
restart between a session's start and its CDR makes the capture fail as `unknown_hold` (FAILED + review); use a
real provider beyond dev and the demo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

import psycopg

from chargeverse.kafka import EventProducer
from chargeverse.topics import BILLING, SESSIONS
from ledger.billing.payments import PaymentProvider
from projections.base import SourcedEvent
from projections.postgres.migrate import connect
from projections.postgres.station_tariffs import tariff_at
from streams.payments.config import PaymentSettings, get_payment_settings, make_provider
from streams.payments.fold import Lookups, Policy, apply
from streams.payments.port import SyncPayments
from streams.stateful import Output, StatefulProcessor

NAME = "payments"
HANDLED = frozenset({"SessionStarted", "CdrPriced", "RefundRequested"})


class PostgresLookups:
    """The fold's lookups against the projections (a read-only autocommit connection of its own)."""

    def __init__(self, dsn: str, schema: str = "public", provider: str = "local") -> None:
        self.dsn, self.schema, self.provider = dsn, schema, provider
        self.conn: psycopg.Connection | None = None

    def _c(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema, autocommit=True)
        return self.conn

    def account_of(self, uid: str) -> str | None:
        row = self._c().execute("SELECT account_id FROM id_tokens WHERE uid = %s", (uid,)).fetchone()
        return row[0] if row and row[0] else None

    def payment_method_of(self, account_id: str) -> str | None:
        row = self._c().execute(
            "SELECT payment_method_id FROM payment_methods WHERE account_id = %s "
            "ORDER BY (provider = %s) DESC, added_at, payment_method_id LIMIT 1",
            (account_id, self.provider)).fetchone()
        return row[0] if row else None

    def currency_at(self, station_id: str, at: datetime) -> str | None:
        t = tariff_at(self._c(), station_id, at)
        return None if t is None else str(t["currency"])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def key_of(e: SourcedEvent) -> str:
    """The state key: the session id (both handled event types carry it); other events share a dummy key."""
    if e.type in HANDLED and e.record.get("session_id"):
        return str(e.record["session_id"])
    return "-"


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None,
          provider: PaymentProvider | None = None, settings: PaymentSettings | None = None,
          name: str = NAME) -> StatefulProcessor:
    """The processor; `provider` overrides the configured one (tests pass their own LocalProvider), `name` keys
    its state and offsets (tests run a private one beside the worker's)."""
    s = settings or get_payment_settings()
    if provider is None and s.provider == "none":  # invoice-only platform: consume, decide nothing, emit nothing
        return StatefulProcessor(name, (SESSIONS.name, BILLING.name), dsn, lambda st, e: (st, []), key_of,
                                 producer=producer, schema=schema)
    pay = SyncPayments(provider or make_provider(s), retries=s.retries, timeout_seconds=s.timeout_seconds + 5)
    pg = PostgresLookups(dsn, schema, pay.name)
    lookups = Lookups(account_of=pg.account_of, payment_method_of=pg.payment_method_of, currency_at=pg.currency_at)
    policy = Policy(hold_amount=s.hold_amount, default_currency=s.default_currency)

    def fold(state: dict[str, Any] | None, e: SourcedEvent) -> tuple[dict[str, Any] | None, list[Output]]:
        if e.type not in HANDLED:
            return state, []
        return apply(state, e.type, e.record, lookups, pay, policy)

    proc = StatefulProcessor(name, (SESSIONS.name, BILLING.name), dsn, fold, key_of, producer=producer,
                             schema=schema)
    apply_in_order = proc.apply

    def apply_sessions_first(events: Sequence[SourcedEvent]) -> int:
        # a start and its CDR in one batch: the start first (stable: each partition keeps its order)
        return apply_in_order(sorted(events, key=lambda e: e.topic != SESSIONS.name))

    proc.apply = apply_sessions_first  # type: ignore[method-assign]
    close = proc.close

    def close_all() -> None:
        close()
        pg.close()
        pay.close()

    proc.close = close_all  # type: ignore[method-assign]
    return proc
