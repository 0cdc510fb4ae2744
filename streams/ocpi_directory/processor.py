"""The OCPI directory processor: partner Locations and Sessions on `ocpi.inbound` -> `stations` (StationRegistered
own=false, ConnectorStatusChanged, StationConnectionChanged) and `sessions` (OcpiSessionUpdated).

Runs the pure fold (streams/ocpi_directory/fold.py) as a stateful processor (streams/stateful.py: state and
offsets in one Postgres transaction, outputs acknowledged before the commit) keyed by partner + module + object;
`ocpi.inbound` is keyed the same way, so one object's pushes arrive in order.  Every other event on the topic
(partners, CDRs, tariffs, tokens, commands, other platforms) folds to nothing and leaves no state.
"""

from __future__ import annotations

from typing import Any

from chargeverse.kafka import EventProducer
from chargeverse.topics import OCPI_INBOUND
from projections.base import SourcedEvent
from streams.ocpi_directory.fold import Policy, apply, is_ours, state_key
from streams.stateful import Output, StatefulProcessor

NAME = "ocpi_directory"
#: the state key of every event this processor passes over
OTHER = "-"


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None, *,
          policy: Policy | None = None, name: str = NAME) -> StatefulProcessor:
    pol = policy or Policy()

    def fold(state: dict[str, Any] | None, e: SourcedEvent) -> tuple[dict[str, Any] | None, list[Output]]:
        if not is_ours(e.type, e.record, pol.platform_id):
            return None, []
        return apply(state, e.type, e.record, pol)

    def key_of(e: SourcedEvent) -> str:
        return state_key(e.record) if is_ours(e.type, e.record, pol.platform_id) else OTHER

    return StatefulProcessor(name, (OCPI_INBOUND.name,), dsn, fold, key_of, producer=producer, schema=schema)
