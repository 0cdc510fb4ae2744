"""The roaming billing processor: partner CDRs on `ocpi.inbound` -> `billing` (CdrPriced ROAMED, BillingDiscrepancy,
BillingReview) and `ledger` (LedgerPostingSet).

Runs the pure fold (streams/roaming_billing/fold.py) as a stateful processor (streams/stateful.py) keyed by
partner + CDR identity; `ocpi.inbound` is keyed by partner + module + object id, so one CDR's pushes share a
partition and arrive in order.  Every other event on the topic (locations, tariffs, partners, other platforms)
folds to nothing.

Lookups, asked once when a CDR first arrives and kept in the state with the outcome:
- the partner's tariffs and the Location's time zone from the OCPI projection's tables (`ocpi_tariffs`,
  `ocpi_locations`, in the OCPI schema `ocpi_schema`);
- the account behind the driver's token from `id_tokens` (in the platform schema `schema`).
Known race, stated: the tariff comes from a projection of the same topic on another partition; a CDR processed
before its tariff was projected is re-priced from the copy embedded in the CDR, or, when it embeds none, goes
to review as UNKNOWN_TARIFF (never lost: the CDR is in the review entry verbatim).
"""

from __future__ import annotations

from typing import Any, Mapping

import psycopg

from chargeverse.kafka import EventProducer
from chargeverse.topics import OCPI_INBOUND
from projections.base import SourcedEvent
from projections.postgres.migrate import connect
from streams.roaming_billing.fold import Lookups, Policy, apply, is_partner_cdr, state_key
from streams.stateful import Output, StatefulProcessor

NAME = "roaming_billing"
#: the state key of every event this processor does not bill (they fold to nothing)
OTHER = "-"


class PostgresLookups:
    """The fold's lookups against the projections (read-only autocommit connections of its own)."""

    def __init__(self, dsn: str, schema: str = "public", ocpi_schema: str = "public") -> None:
        self.dsn, self.schema, self.ocpi_schema = dsn, schema, ocpi_schema
        self._conns: dict[str, psycopg.Connection] = {}

    def _c(self, schema: str) -> psycopg.Connection:
        c = self._conns.get(schema)
        if c is None or c.closed or c.broken:
            c = self._conns[schema] = connect(self.dsn, schema, autocommit=True)
        return c

    def tariff_of(self, partner_id: str, country_code: str, party_id: str, tariff_id: str) -> Mapping[str, Any] | None:
        from projections.postgres.ocpi_fold import loads

        row = self._c(self.ocpi_schema).execute(
            "SELECT doc FROM ocpi_tariffs WHERE partner_id = %s AND country_code = %s AND party_id = %s AND id = %s",
            (partner_id, country_code.upper(), party_id.upper(), tariff_id.upper())).fetchone()
        doc = loads(row[0]) if row else None
        return doc if isinstance(doc, dict) else None

    def time_zone_of(self, partner_id: str, country_code: str, party_id: str, location_id: str) -> str | None:
        row = self._c(self.ocpi_schema).execute(
            "SELECT doc::jsonb ->> 'time_zone' FROM ocpi_locations WHERE partner_id = %s AND country_code = %s "
            "AND party_id = %s AND id = %s",
            (partner_id, country_code.upper(), party_id.upper(), location_id.upper())).fetchone()
        return row[0] if row and row[0] else None

    def payer_of(self, uid: str) -> Mapping[str, Any] | None:
        row = self._c(self.schema).execute("SELECT account_id FROM id_tokens WHERE uid = %s", (uid,)).fetchone()
        if row is None or not row[0]:
            return None
        return {"account_id": row[0]}

    def close(self) -> None:
        for c in self._conns.values():
            c.close()


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None, *,
          ocpi_schema: str | None = None, policy: Policy | None = None) -> StatefulProcessor:
    """The processor.  `ocpi_schema`: where the OCPI projections write (Settings.ocpi_schema_name; default:
    `schema`).  `policy`: platform id (Settings.ocpi_platform_id), VAT country, discrepancy threshold, fee."""
    pol = policy or Policy()
    pg = PostgresLookups(dsn, schema, ocpi_schema or schema)
    lookups = Lookups(tariff_of=pg.tariff_of, payer_of=pg.payer_of, time_zone_of=pg.time_zone_of)

    def fold(state: dict[str, Any] | None, e: SourcedEvent) -> tuple[dict[str, Any] | None, list[Output]]:
        if not is_partner_cdr(e.type, e.record, pol.platform_id):
            return None, []
        return apply(state, e.type, e.record, lookups, pol)

    def key_of(e: SourcedEvent) -> str:
        return state_key(e.record) if is_partner_cdr(e.type, e.record, pol.platform_id) else OTHER

    proc = StatefulProcessor(NAME, (OCPI_INBOUND.name,), dsn, fold, key_of, producer=producer, schema=schema)
    close = proc.close

    def close_all() -> None:
        close()
        pg.close()

    proc.close = close_all  # type: ignore[method-assign]
    return proc
