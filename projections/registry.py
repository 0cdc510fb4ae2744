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
    if name == "pnc":
        from projections.postgres.pnc import PncProjection

        return PncProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
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
        from streams.roaming_billing.fold import Policy
        from streams.roaming_billing.processor import build as build_roaming

        return build_roaming(s.postgres_dsn.get_secret_value(), namespace or "public", ocpi_schema=s.ocpi_schema_name,
                             policy=Policy(platform_id=s.ocpi_platform_id))
    if name == "notifications_processor":
        from streams.notifications.processor import build as build_notifications

        return build_notifications(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "community":
        from projections.postgres.community import CommunityProjection

        return CommunityProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "notifications":
        from projections.postgres.notifications import NotificationsProjection

        return NotificationsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "billing":
        from projections.postgres.billing import BillingProjection

        return BillingProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "billing_processor":
        from streams.billing.fold import Operator
        from streams.billing.processor import build as build_billing

        # we are the CPO on our CDRs; a partner's token is looked up in the OCPI schema (streams/billing/partner.py)
        return build_billing(s.postgres_dsn.get_secret_value(), namespace or "public", operator=Operator(
            country_code=s.ocpi_country_code, party_id=s.ocpi_party_id, location_country=s.ocpi_location_country),
            ocpi_schema=s.ocpi_schema_name)
    if name in OCPI_NAMES:
        return _build_ocpi(name, namespace, s)
    if name in ("ocpi_partners", "ocpi_objects"):
        from projections.postgres.ocpi_objects import OcpiObjectsProjection
        from projections.postgres.ocpi_partners import OcpiPartnersProjection

        cls = OcpiPartnersProjection if name == "ocpi_partners" else OcpiObjectsProjection
        return cls(s.postgres_dsn.get_secret_value(), namespace or s.ocpi_schema_name, s.ocpi_platform_id)
    if name == "smartcharging_processor":
        from streams.smartcharging_service.processor import build as build_smartcharging

        return build_smartcharging(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "smartcharging":
        from projections.postgres.smartcharging import SmartChargingProjection

        return SmartChargingProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    if name == "forecasts_processor":
        from streams.forecasts_service.processor import build as build_forecasts

        return build_forecasts(s.postgres_dsn.get_secret_value(), namespace or "public", settings=s)
    if name == "forecasts":
        from projections.postgres.forecasts import ForecastsProjection

        return ForecastsProjection(s.postgres_dsn.get_secret_value(), namespace or "public")
    raise KeyError(f"unknown projection {name!r}; known: {', '.join(NAMES)}")


NAMES: tuple[str, ...] = ("postgres", "redis", "mongo", "ocpp_commands", "identity", "fleets", "pnc", "station_tariffs", "sessions",
                          "sessions_processor", "billing", "billing_processor", "payments_processor", "roaming_billing_processor", "ledger",
                          "ocpi_partners", "ocpi_objects", "notifications_processor", "community", "notifications",
                          "smartcharging_processor", "smartcharging", "forecasts_processor", "forecasts")

#: the OCPI directory and push processors and their projections (edges/ocpi, streams/ocpi_*)
OCPI_NAMES: tuple[str, ...] = ("ocpi_directory_processor", "ocpi_push_processor", "ocpi_roamed_sessions", "mongo_ocpi")
NAMES += OCPI_NAMES


def _build_ocpi(name: str, namespace: str | None, s: Settings) -> Projection:
    dsn = s.postgres_dsn.get_secret_value()
    if name == "ocpi_directory_processor":
        from streams.ocpi_directory.fold import Policy as DirectoryPolicy
        from streams.ocpi_directory.processor import build as build_directory

        return build_directory(dsn, namespace or "public", policy=DirectoryPolicy(platform_id=s.ocpi_platform_id))
    if name == "ocpi_push_processor":
        from streams.ocpi_push.fold import Policy as PushPolicy
        from streams.ocpi_push.processor import build as build_push

        return build_push(dsn, namespace or "public", ocpi_schema=s.ocpi_schema_name, policy=PushPolicy(
            platform_id=s.ocpi_platform_id, country_code=s.ocpi_country_code, party_id=s.ocpi_party_id,
            location_country=s.ocpi_location_country, time_zone=s.ocpi_location_time_zone))
    if name == "ocpi_roamed_sessions":
        from projections.postgres.ocpi_roamed_sessions import RoamedSessionsProjection

        return RoamedSessionsProjection(dsn, namespace or "public", s.ocpi_platform_id)
    from projections.mongo_ocpi import OcpiLocationsMongoProjection

    return OcpiLocationsMongoProjection(s.mongo_url.get_secret_value(), s.mongo_db,
                                        f"{namespace}_" if namespace else "", platform_id=s.ocpi_platform_id)
