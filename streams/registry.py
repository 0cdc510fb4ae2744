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
    Consumer("pg.pnc", "projection", ("pnc",), (),
             "Postgres Plug & Charge: enrolled cars, contract certificates and their status, station certificates, "
             "trusted roots (projections/postgres/pnc.py)", "projections"),
    Consumer("pg.ocpp_commands", "projection", ("ocpp.commands",), (),
             "Postgres commands to chargers and their outcomes (projections/postgres/ocpp_commands.py)",
             "projections"),
    Consumer("pg.ocpi_partners", "projection", ("ocpi.inbound",), (),
             "Postgres OCPI partners, roles, credentials-token hashes (projections/postgres/ocpi_partners.py)",
             "projections"),
    Consumer("pg.ocpi_objects", "projection", ("ocpi.inbound",), (),
             "Postgres OCPI Locations (PostGIS), Sessions, CDRs, Tariffs, Tokens, verbatim "
             "(projections/postgres/ocpi_objects.py)", "projections"),
    Consumer("ocpi_directory", "processor", ("ocpi.inbound",), ("stations", "sessions"),
             "partner Locations -> roamed stations (StationRegistered own=false, connector status, online); partner "
             "Sessions -> OcpiSessionUpdated (streams/ocpi_directory/)", "processors"),
    Consumer("ocpi_push", "processor", ("stations", "sessions", "billing"), ("ocpi.outbound",),
             "our stations, tariffs, sessions and CDRs -> OcpiPushRequested per eMSP partner (streams/ocpi_push/)",
             "processors"),
    Consumer("pg.ocpi_roamed_sessions", "projection", ("sessions",), (),
             "Postgres roamed sessions (OcpiSessionUpdated) beside our own in `sessions` "
             "(projections/postgres/ocpi_roamed_sessions.py)", "projections"),
    Consumer("mongo.ocpi_locations", "projection", ("ocpi.inbound",), (),
             "Mongo raw OCPI Location documents of partners (projections/mongo_ocpi.py)", "archive"),
    Consumer("notifications", "processor", ("sessions", "stations"), ("notifications",),
             "session finished / charger fault during a session -> NotificationRequested for the driver's account "
             "(streams/notifications/, state in Postgres keyed by station)", "processors"),
    Consumer("pg.community", "projection", ("community",), (),
             "Postgres station reviews (ratings) and photos with moderation (projections/postgres/community.py)",
             "projections"),
    Consumer("pg.notifications", "projection", ("notifications",), (),
             "Postgres drivers' notifications and their outcomes (projections/postgres/notifications.py)",
             "projections"),
    Consumer("mongo.frame_archive", "projection", ("ocpp.frames",), (),
             "Mongo archive of every OCPP frame (projections/mongo_frames.py)", "archive"),
    Consumer("smartcharging", "processor", ("sites", "sessions", "stations", "forecasts"),
             ("smartcharging", "ocpp.commands"),
             "site definitions, needs, prices, session start/off-plan meter/stop, connector faults, session "
             "forecasts -> re-planned site schedule + SetChargingProfile per car (streams/smartcharging_service/, "
             "state in Postgres)", "processors"),
    Consumer("pg.smartcharging", "projection", ("sites", "smartcharging"), (),
             "Postgres smart-charging sites, connectors, needs, prices, latest plans "
             "(projections/postgres/smartcharging.py)", "projections"),
    Consumer("forecasts", "processor", ("stations", "sessions"), ("forecasts",),
             "connector status -> 24-hour occupancy forecast per station; session start -> energy/duration forecast; "
             "session stop / disconnects -> learned labels, charger fault suspicions (streams/forecasts_service/, "
             "models checkpointed in Postgres)", "processors"),
    Consumer("pg.forecasts", "projection", ("forecasts",), (),
             "Postgres occupancy forecasts per station, session forecasts, suspected charger faults "
             "(projections/postgres/forecasts.py)", "projections"),
)

#: consumers that live in an edge process rather than a Faust worker (shown by `cv flow`; no lag from `cv lag`)
EDGE_WORKERS: tuple[Consumer, ...] = (
    Consumer("ocpi.commands", "edge", ("ocpi.outbound", "ocpi.inbound", "ocpp.commands"), ("ocpi.inbound",),
             "OCPI command sends to CPOs, CommandResults to eMSPs, timeouts (edges/ocpi/commands_worker.py)",
             "ocpi"),
    Consumer("ocpi.push", "edge", ("ocpi.outbound",), ("ocpi.inbound",),
             "OCPI pushes of our objects to eMSPs, committed only once delivered or parked; an unreachable partner's "
             "pushes re-sent from the log (edges/ocpi/push_worker.py)", "ocpi"),
    Consumer("ocpp.dispatch", "edge", ("ocpp.commands",), ("ocpp.commands", "ocpp.frames"),
             "commands to the chargers each OCPP edge instance holds, and their results (edges/ocpp/dispatch.py)",
             "ocpp"),
    Consumer("notifications.sender", "edge", ("notifications",), ("notifications",),
             "delivers NotificationRequested through the log/email/SMS sender, records NotificationSent/Failed "
             "(streams/notifications/worker.py, in the API process when CV_NOTIFICATIONS_WORKER=true)", "api"),
)

#: projection consumer name -> projections.registry name
PROJECTIONS = {"pg.stations": "postgres", "redis.live_status": "redis", "mongo.frame_archive": "mongo",
               "pg.ocpp_commands": "ocpp_commands", "pg.identity": "identity", "pg.fleets": "fleets", "pg.pnc": "pnc", "pg.sessions": "sessions",
               "pg.station_tariffs": "station_tariffs",
               "sessions": "sessions_processor", "billing": "billing_processor", "payments": "payments_processor",
               "roaming_billing": "roaming_billing_processor",
               "notifications": "notifications_processor", "pg.community": "community",
               "pg.notifications": "notifications",
               "pg.billing": "billing", "pg.ledger": "ledger", "pg.ocpi_partners": "ocpi_partners", "pg.ocpi_objects": "ocpi_objects",
               "ocpi_directory": "ocpi_directory_processor", "ocpi_push": "ocpi_push_processor",
               "pg.ocpi_roamed_sessions": "ocpi_roamed_sessions", "mongo.ocpi_locations": "mongo_ocpi",
               "smartcharging": "smartcharging_processor", "pg.smartcharging": "smartcharging",
               "forecasts": "forecasts_processor", "pg.forecasts": "forecasts"}
