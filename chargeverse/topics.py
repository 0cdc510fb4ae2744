"""The topic catalogue: every topic, its key, its partitions and its retention, in one place.

Keys decide order: all events of one aggregate share a key, so they land on one partition in order and have one
writer.  Source topics are kept forever (the log is the record); derived topics may be compacted.  Topics are
always created explicitly from this catalogue (`cv topics create`), never by broker auto-creation, which would
pick its own partition count and break co-partitioning.

Which processor consumes which topic is in `streams/registry.py`; together the two files list the whole flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FOREVER = -1


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    what: str
    partitions: int
    #: event types (Avro record names) that may appear on this topic
    events: tuple[str, ...]
    cleanup_policy: str = "delete"
    retention_ms: int = FOREVER
    source: bool = True
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        cfg.update(self.extra_config)
        return cfg


OCPP_FRAMES = Topic(
    "ocpp.frames", "charge point id", "every OCPP frame in and out, verbatim + parsed action; connection changes",
    partitions=6, events=("OcppFrame", "OcppConnection", "OcppDeviation"),
)
OCPP_COMMANDS = Topic(
    "ocpp.commands", "charge point id", "commands for chargers (remote start/stop, profiles, reset, ...)",
    partitions=6, events=("OcppCommandRequested", "OcppCommandResult"),
)
OCPI_INBOUND = Topic("ocpi.inbound", "partner + object id",
                     "every partner push/pull result, verbatim; partner onboarding, credentials exchanges, deletions "
                     "(keyed by partner id)", 6,
                     ("OcpiPartnerOnboarded", "OcpiTokenIssued", "OcpiPartnerRegistered", "OcpiCredentialsRotated",
                      "OcpiPartnerDeleted", "OcpiObjectReceived", "OcpiTokenAuthorized", "OcpiCommandReceived",
                      "OcpiCommandOutcome", "OcpiPushParked"))
OCPI_OUTBOUND = Topic("ocpi.outbound", "partner", "commands and pushes to partners", 6,
                      ("OcpiCommandSend", "OcpiCommandRequested", "OcpiPushRequested"))
STATIONS = Topic(
    "stations", "station id", "station/EVSE/connector state (own and roamed)",
    partitions=6,
    events=("StationRegistered", "StationBooted", "ConnectorStatusChanged", "StationHeartbeat",
            "StationConnectionChanged", "StationTariffSet"),
)
SESSIONS = Topic("sessions", "session id", "session lifecycle: requested, started, meter samples, stopped, CDR", 6,
                 ("SessionStarted", "SessionMeterSample", "SessionStopped", "OcpiSessionUpdated"))
IDENTITY = Topic("identity", "account id (id-token events: the token's id, derived from its uid)",
                 "accounts, profiles, vehicles, favourites, payment-method refs, id tokens, fleets", 6,
                 ("AccountRegistered", "PasswordChanged", "ProfileUpdated", "VehicleAdded", "VehicleRemoved",
                  "FavouriteAdded", "FavouriteRemoved", "PaymentMethodAdded", "PaymentMethodRemoved",
                  "IdTokenIssued", "IdTokenBlocked", "FleetCreated", "FleetMemberAdded", "FleetMemberRemoved",
                  "FleetPolicySet"))
BILLING = Topic("billing", "account id", "priced sessions, payments, invoices", 6,
                ("CdrPriced", "BillingReview", "BillingDiscrepancy", "PaymentEvent", "InvoiceIssued",
                 "EnergyBillExported", "RefundRequested"))
LEDGER = Topic("ledger", "ledger key: owner of the limited account, e.g. driver:u-42 (seals: ledger:seal)",
               "posting sets and seals of the double-entry ledger (never add partitions: chains are per partition)",
               6, ("LedgerPostingSet", "LedgerSealed"), source=False)
PNC = Topic("pnc", "eMAID (station certificates: station id; trusted roots: their fingerprint)",
            "contract certificates issued, revoked, statuses", 6,
            ("PncContractEnrolled", "ContractCertificateIssued", "ContractCertificateRevoked",
             "StationCertificateSigned", "PncRequestRejected", "PncStatusAnswered", "PncTrustedRootAdded"))
FORECASTS = Topic("forecasts", "station id (SessionForecast: session id; ChargerFaultSuspected: station id/kind)",
                  "model outputs: occupancy forecasts, session forecasts, charger fault suspicions", 6,
                  ("StationOccupancyForecast", "SessionForecast", "ChargerFaultSuspected"),
                  cleanup_policy="compact", source=False)
SMARTCHARGING = Topic("smartcharging", "site", "charging schedules (the latest per site)", 6,
                      ("ChargingScheduleComputed",), cleanup_policy="compact", source=False)
SITES = Topic("sites", "site id", "smart-charging sites (limit trees, connectors), charging needs of their sessions, "
              "price signals: the inputs of the smartcharging processor", 6,
              ("SiteDefined", "ChargingNeedsSet", "ChargingPriceSignalSet"))
COMMUNITY = Topic("community", "station id", "ratings, reviews and photos of stations, and their moderation", 6,
                  ("StationReviewPosted", "StationReviewRemoved", "StationPhotoAdded", "StationPhotoRemoved"))
NOTIFICATIONS = Topic("notifications", "account id", "notifications requested for drivers and their outcomes", 6,
                      ("NotificationRequested", "NotificationSent", "NotificationFailed"))
DEADLETTER = Topic(
    "deadletter", "consumer name", "poison messages with the error and the original bytes",
    partitions=1, events=("DeadLetter",),
)

CATALOGUE: tuple[Topic, ...] = (
    OCPP_FRAMES, OCPP_COMMANDS, OCPI_INBOUND, OCPI_OUTBOUND, STATIONS, SESSIONS, IDENTITY, BILLING, LEDGER, PNC,
    FORECASTS, SMARTCHARGING, DEADLETTER, COMMUNITY, NOTIFICATIONS, SITES,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOGUE}


def topic(name: str) -> Topic:
    """The catalogue entry of `name`; a KeyError names the unknown topic."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(BY_NAME)}") from None
