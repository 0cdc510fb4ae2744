"""The event -> processor map: every consumer of every topic, in one place (the topics are in
chargeverse/topics.py).  `cv flow` prints it; streams/app.py builds its Faust agents from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Consumer:
    name: str
    kind: str  # "processor" (emits events), "projection" (writes a store) or "edge" (an edge's own worker)
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    what: str
    group: str  # the worker process (and Kafka consumer group) it runs in


#: one worker process each; a slow group never stalls another
GROUPS: tuple[str, ...] = ("processors", "projections", "archive")


def group_id(group: str) -> str:
    """The Faust app id, hence the Kafka consumer group, of a worker group."""
    from chargeverse.settings import get_settings

    return f"{get_settings().worker_id}.{group}"


CONSUMERS: tuple[Consumer, ...] = (
    Consumer("stations", "processor", ("ocpp.frames",), ("stations",),
             "OCPP frames -> station booted/heartbeat/connector status/online (streams/station_events.py)",
             "processors"),
    Consumer("sessions", "processor", ("ocpp.frames",), ("sessions",),
             "OCPP 1.6 transactions and 2.0.1 TransactionEvents -> session started/meter sample/stopped, energy from "
             "register readings (streams/sessions/, state in Postgres via streams/stateful.py)", "processors"),
    Consumer("billing", "processor", ("sessions",), ("billing", "ledger"),
             "stopped own-station sessions -> priced CDR (tariff engine) + ledger postings, or a review entry "
             "(streams/billing/)", "processors"),
    Consumer("roaming_billing", "processor", ("ocpi.inbound",), ("billing", "ledger"),
             "partner CDRs -> priced CDR (origin ROAMED) + ledger postings, a discrepancy report when the CDR "
             "disagrees with the partner's tariff, or a review entry (streams/roaming_billing/)", "processors"),
    Consumer("payments", "processor", ("sessions", "billing"), ("billing", "ledger"),
             "session start -> card hold; priced CDR -> capture (rest released) / excess charge / release; refused "
             "payments -> review (streams/payments/, state in Postgres keyed by session id)", "processors"),
    Consumer("pg.billing", "projection", ("billing",), (),
             "Postgres priced CDRs and the billing review queue (projections/postgres/billing.py)", "projections"),
    Consumer("pg.ledger", "projection", ("ledger",), (),
             "Postgres double-entry ledger: hash-chained postings, balances, holds, seals (ledger/store.py)",
             "projections"),
    Consumer("pg.sessions", "projection", ("sessions",), (),
             "Postgres sessions, live energy/power/SoC while they run (projections/postgres/sessions.py)",
             "projections"),
    Consumer("pg.stations", "projection", ("stations",), (),
             "Postgres stations, connectors (PostGIS), charger credentials (projections/postgres/stations.py)",
             "projections"),
    Consumer("pg.station_tariffs", "projection", ("stations",), (),
             "Postgres tariffs of our stations over time, for billing and the API "
             "(projections/postgres/station_tariffs.py)", "projections"),
    Consumer("redis.live_status", "projection", ("stations",), (),
             "Redis live station and connector status (projections/redis_status.py)", "projections"),
    Consumer("pg.identity", "projection", ("identity",), (),
             "Postgres accounts, vehicles, favourites, payment-method refs, id tokens (+ id_tokens for the OCPP "
             "edge) (projections/postgres/identity.py)", "projections"),
    Consumer("pg.fleets", "projection", ("identity",), (),
             "Postgres fleets, members (with history), budgets and allowed stations/networks "
             "(projections/postgres/fleets.py)", "projections"),
    Consumer("pg.ocpp_commands", "projection", ("ocpp.commands",), (),
             "Postgres commands to chargers and their outcomes (projections/postgres/ocpp_commands.py)",
             "projections"),
    Consumer("pg.ocpi_partners", "projection", ("ocpi.inbound",), (),
             "Postgres OCPI partners, roles, credentials-token hashes (projections/postgres/ocpi_partners.py)",
             "projections"),
    Consumer("pg.ocpi_objects", "projection", ("ocpi.inbound",), (),
             "Postgres OCPI Locations (PostGIS), Sessions, CDRs, Tariffs, Tokens, verbatim "
             "(projections/postgres/ocpi_objects.py)", "projections"),
    Consumer("mongo.frame_archive", "projection", ("ocpp.frames",), (),
             "Mongo archive of every OCPP frame (projections/mongo_frames.py)", "archive"),
)

#: consumers that live in an edge process rather than a Faust worker (shown by `cv flow`; no lag from `cv lag`)
EDGE_WORKERS: tuple[Consumer, ...] = (
    Consumer("ocpi.commands", "edge", ("ocpi.outbound", "ocpi.inbound", "ocpp.commands"), ("ocpi.inbound",),
             "OCPI command sends to CPOs, CommandResults to eMSPs, timeouts (edges/ocpi/commands_worker.py)",
             "ocpi"),
    Consumer("ocpp.dispatch", "edge", ("ocpp.commands",), ("ocpp.commands", "ocpp.frames"),
             "commands to the chargers each OCPP edge instance holds, and their results (edges/ocpp/dispatch.py)",
             "ocpp"),
)

#: projection consumer name -> projections.registry name
PROJECTIONS = {"pg.stations": "postgres", "redis.live_status": "redis", "mongo.frame_archive": "mongo",
               "pg.ocpp_commands": "ocpp_commands", "pg.identity": "identity", "pg.fleets": "fleets", "pg.sessions": "sessions",
               "pg.station_tariffs": "station_tariffs",
               "sessions": "sessions_processor", "billing": "billing_processor", "payments": "payments_processor",
               "roaming_billing": "roaming_billing_processor",
               "pg.billing": "billing", "pg.ledger": "ledger", "pg.ocpi_partners": "ocpi_partners", "pg.ocpi_objects": "ocpi_objects"}
