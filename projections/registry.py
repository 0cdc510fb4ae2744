"""Every projection by name, built from settings, optionally into another namespace (for rebuilds)."""

from __future__ import annotations


from chargeverse.settings import Settings, get_settings
from projections.base import Projection


def build(name: str, namespace: str | None = None, settings: Settings | None = None) -> Projection:
    """The projection `name` writing into `namespace` (Postgres schema, Redis key prefix or Mongo
    collection prefix)."""
    s = settings or get_settings()
    if name == "postgres":
        from projections.postgres.stations import StationsProjection

        return StationsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "redis":
        from projections.redis_status import LiveStatusProjection

        return LiveStatusProjection(s.redis_url.get_secret_value(), namespace or "cv")
    if name == "mongo":
        from projections.mongo_frames import FrameArchiveProjection

        return FrameArchiveProjection(s.mongo_url.get_secret_value(), s.mongo_db,
                                      f"{namespace}_" if namespace else "")
    if name == "ocpp_commands":
        from projections.postgres.ocpp_commands import OcppCommandsProjection

        return OcppCommandsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "identity":
        from projections.postgres.identity import IdentityProjection

        return IdentityProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "fleets":
        from projections.postgres.fleets import FleetsProjection

        return FleetsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "station_tariffs":
        from projections.postgres.station_tariffs import StationTariffsProjection

        return StationTariffsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "sessions":
        from projections.postgres.sessions import SessionsProjection

        return SessionsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    # stateful processors run on the same machinery as projections (streams/stateful.py)
    if name == "sessions_processor":
        from streams.sessions.processor import build as build_sessions

        return build_sessions(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "ledger":
        from ledger.store import LedgerStore

        return LedgerStore(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "payments_processor":
        from streams.payments.processor import build as build_payments

        return build_payments(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "roaming_billing_processor":
        from edges.ocpi.config import get_ocpi_settings
        from streams.roaming_billing.fold import Policy
        from streams.roaming_billing.processor import build as build_roaming

        o = get_ocpi_settings()
        return build_roaming(s.postgres_dsn.get_secret_value(), namespace or "public", ocpi_schema=o.schema_name,
                             policy=Policy(platform_id=o.platform_id))
    if name == "billing":
        from projections.postgres.billing import BillingProjection

        return BillingProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "billing_processor":
        from streams.billing.processor import build as build_billing

        return build_billing(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name in ("ocpi_partners", "ocpi_objects"):
        from edges.ocpi.config import get_ocpi_settings
        from projections.postgres.ocpi_objects import OcpiObjectsProjection
        from projections.postgres.ocpi_partners import OcpiPartnersProjection

        o = get_ocpi_settings()
        cls = OcpiPartnersProjection if name == "ocpi_partners" else OcpiObjectsProjection
        return cls(s.postgres_dsn.get_secret_value(), namespace or o.schema_name, o.platform_id)
    raise KeyError(f"unknown projection {name!r}; known: {', '.join(NAMES)}")


NAMES: tuple[str, ...] = ("postgres", "redis", "mongo", "ocpp_commands", "identity", "fleets", "station_tariffs", "sessions",
                          "sessions_processor", "billing", "billing_processor", "payments_processor", "roaming_billing_processor", "ledger",
                          "ocpi_partners", "ocpi_objects")
