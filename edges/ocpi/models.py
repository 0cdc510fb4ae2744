"""OCPI 2.2.1 objects as pydantic models, and the acceptance rule for what partners send.  Pure: no I/O.

Models follow the 2.2.1 object descriptions (Location, EVSE, Connector, Session, CDR, Tariff, Token, Credentials,
Version, VersionDetails and their classes); unknown fields are allowed (they are kept verbatim anyway).

**Acceptance rule.**  Roaming data is imperfect, and dropping a whole Location because a connector lacks its
`max_voltage` would hide a working charger from drivers; yet a consumer of the projections must be able to rely
on what it reads.  So every deviation from the specification is reported, and split in two:
- *errors* (the object is refused with 2001, nothing is applied, the partner's previous good data stays):
  a problem at a **core path** - the identity of the object and of its children, and the fields this platform
  acts on (coordinates, EVSE status, token validity, credentials) - or a **structural** problem anywhere (an
  object or a list where something else was sent), or an unreadable `last_updated`, or a PATCH without one;
- *warnings* (accepted and stored verbatim; the warnings ride along on the event): anything else - a missing
  descriptive field, a number sent as a string, a value outside an enum this version knows, a string too long.
All example payloads of the 2.2.1 specification are accepted under this rule (several are not strictly valid:
the EVSE PUT example has a connector without power_type/voltage/amperage and a numeric physical_reference; the
Tariff PUT example has no last_updated); tests/unit/ocpi/test_models.py names each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, StrictBool, StrictInt,
                      StrictStr, ValidationError, model_validator)

from projections.postgres.ocpi_fold import parse_datetime

# ---- types -----------------------------------------------------------------------------------------------------


def _dt(v: str) -> str:
    if parse_datetime(v) is None:
        raise ValueError("not an RFC 3339 DateTime")
    return v


def _number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        raise ValueError("not a number")
    return v


DateTime = Annotated[StrictStr, AfterValidator(_dt)]
Number = Annotated[Any, PlainValidator(_number)]


def S(n: int) -> Any:  # noqa: N802 - reads like the spec's string(n)
    return Annotated[StrictStr, Field(max_length=n)]


CiS = S  # CiString(n): case-insensitive, same shape
Opt = Optional


class _M(BaseModel):
    model_config = ConfigDict(extra="allow")


Role = Literal["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]
TokenType = Literal["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
Status = Literal["AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED", "RESERVED",
                 "UNKNOWN"]
ConnectorType = Literal[
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F",
    "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L", "DOMESTIC_M",
    "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16", "IEC_60309_2_three_16",
    "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2",
    "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30",
    "NEMA_10_50", "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S"]
PowerType = Literal["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"]
AuthMethod = Literal["AUTH_REQUEST", "COMMAND", "WHITELIST"]

# ---- common classes --------------------------------------------------------------------------------------------


class DisplayText(_M):
    language: S(2)
    text: S(512)


_LAT = re.compile(r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
_LON = re.compile(r"^-?[0-9]{1,3}\.[0-9]{5,7}$")


class GeoLocation(_M):
    latitude: S(10)
    longitude: S(11)

    @model_validator(mode="after")
    def _in_range(self) -> "GeoLocation":
        try:
            lat, lon = float(self.latitude), float(self.longitude)
        except ValueError:
            raise ValueError("latitude and longitude must be decimal degrees") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")
        return self


class AdditionalGeoLocation(GeoLocation):
    name: Opt[DisplayText] = None


class Image(_M):
    url: StrictStr
    thumbnail: Opt[StrictStr] = None
    category: Literal["CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"]
    type: CiS(4)
    width: Opt[StrictInt] = None
    height: Opt[StrictInt] = None


class BusinessDetails(_M):
    name: S(100)
    website: Opt[StrictStr] = None
    logo: Opt[Image] = None


class Price(_M):
    excl_vat: Number
    incl_vat: Opt[Number] = None


class EnergySource(_M):
    source: Literal["NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"]
    percentage: Number


class EnvironmentalImpact(_M):
    category: Literal["NUCLEAR_WASTE", "CARBON_DIOXIDE"]
    amount: Number


class EnergyMix(_M):
    is_green_energy: StrictBool
    energy_sources: Opt[list[EnergySource]] = None
    environ_impact: Opt[list[EnvironmentalImpact]] = None
    supplier_name: Opt[S(64)] = None
    energy_product_name: Opt[S(64)] = None


# ---- locations -------------------------------------------------------------------------------------------------

_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class RegularHours(_M):
    weekday: Annotated[StrictInt, Field(ge=1, le=7)]
    period_begin: Annotated[StrictStr, Field(pattern=_HHMM)]
    period_end: Annotated[StrictStr, Field(pattern=_HHMM)]


class ExceptionalPeriod(_M):
    period_begin: DateTime
    period_end: DateTime


class Hours(_M):
    twentyfourseven: StrictBool
    regular_hours: Opt[list[RegularHours]] = None
    exceptional_openings: Opt[list[ExceptionalPeriod]] = None
    exceptional_closings: Opt[list[ExceptionalPeriod]] = None


class StatusSchedule(_M):
    period_begin: DateTime
    period_end: Opt[DateTime] = None
    status: Status


class PublishTokenType(_M):
    uid: Opt[CiS(36)] = None
    type: Opt[TokenType] = None
    visual_number: Opt[S(64)] = None
    issuer: Opt[S(64)] = None
    group_id: Opt[CiS(36)] = None


class Connector(_M):
    id: CiS(36)
    standard: ConnectorType
    format: Literal["SOCKET", "CABLE"]
    power_type: PowerType
    max_voltage: StrictInt
    max_amperage: StrictInt
    max_electric_power: Opt[StrictInt] = None
    tariff_ids: Opt[list[CiS(36)]] = None
    terms_and_conditions: Opt[StrictStr] = None
    last_updated: DateTime


Capability = Literal["CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT",
                     "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL",
                     "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED",
                     "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE"]
ParkingRestriction = Literal["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"]


class EVSE(_M):
    uid: CiS(36)
    evse_id: Opt[CiS(48)] = None
    status: Status
    status_schedule: Opt[list[StatusSchedule]] = None
    capabilities: Opt[list[Capability]] = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: Opt[S(4)] = None
    coordinates: Opt[GeoLocation] = None
    physical_reference: Opt[S(16)] = None
    directions: Opt[list[DisplayText]] = None
    parking_restrictions: Opt[list[ParkingRestriction]] = None
    images: Opt[list[Image]] = None
    last_updated: DateTime


Facility = Literal["HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE",
                   "MUSEUM", "BIKE_SHARING", "BUS_STOP", "TAXI_STAND", "TRAM_STOP", "METRO_STATION",
                   "TRAIN_STATION", "AIRPORT", "PARKING_LOT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI"]


class Location(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    id: CiS(36)
    publish: StrictBool
    publish_allowed_to: Opt[list[PublishTokenType]] = None
    name: Opt[S(255)] = None
    address: S(255)
    city: S(45)
    postal_code: Opt[S(10)] = None
    state: Opt[S(45)] = None
    country: S(3)
    coordinates: GeoLocation
    related_locations: Opt[list[AdditionalGeoLocation]] = None
    parking_type: Opt[Literal["ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET",
                              "UNDERGROUND_GARAGE"]] = None
    evses: Opt[list[EVSE]] = None
    directions: Opt[list[DisplayText]] = None
    operator: Opt[BusinessDetails] = None
    suboperator: Opt[BusinessDetails] = None
    owner: Opt[BusinessDetails] = None
    facilities: Opt[list[Facility]] = None
    time_zone: S(255)
    opening_times: Opt[Hours] = None
    charging_when_closed: Opt[StrictBool] = None
    images: Opt[list[Image]] = None
    energy_mix: Opt[EnergyMix] = None
    last_updated: DateTime


# ---- sessions and CDRs -----------------------------------------------------------------------------------------


class CdrToken(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    uid: CiS(36)
    type: TokenType
    contract_id: CiS(36)


CdrDimensionType = Literal["CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT",
                           "MAX_POWER", "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME",
                           "STATE_OF_CHARGE", "TIME"]


class CdrDimension(_M):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(_M):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: Opt[CiS(36)] = None


class Session(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    id: CiS(36)
    start_date_time: DateTime
    end_date_time: Opt[DateTime] = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: Opt[CiS(36)] = None
    location_id: CiS(36)
    evse_uid: CiS(36)
    connector_id: CiS(36)
    meter_id: Opt[S(255)] = None
    currency: S(3)
    charging_periods: Opt[list[ChargingPeriod]] = None
    total_cost: Opt[Price] = None
    status: Literal["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"]
    last_updated: DateTime


class CdrLocation(_M):
    id: CiS(36)
    name: Opt[S(255)] = None
    address: S(45)
    city: S(45)
    postal_code: Opt[S(10)] = None
    state: Opt[S(20)] = None
    country: S(3)
    coordinates: GeoLocation
    evse_uid: CiS(36)
    evse_id: CiS(48)
    connector_id: CiS(36)
    connector_standard: ConnectorType
    connector_format: Literal["SOCKET", "CABLE"]
    connector_power_type: PowerType


class SignedValue(_M):
    nature: CiS(32)
    plain_data: S(5000)
    signed_data: S(5000)


class SignedData(_M):
    encoding_method: CiS(36)
    encoding_method_version: Opt[StrictInt] = None
    public_key: Opt[S(512)] = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: Opt[S(512)] = None


# ---- tariffs ---------------------------------------------------------------------------------------------------


class PriceComponent(_M):
    type: Literal["ENERGY", "FLAT", "PARKING_TIME", "TIME"]
    price: Number
    vat: Opt[Number] = None
    step_size: StrictInt


DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


class TariffRestrictions(_M):
    start_time: Opt[Annotated[StrictStr, Field(pattern=_HHMM)]] = None
    end_time: Opt[Annotated[StrictStr, Field(pattern=_HHMM)]] = None
    start_date: Opt[Annotated[StrictStr, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]] = None
    end_date: Opt[Annotated[StrictStr, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]] = None
    min_kwh: Opt[Number] = None
    max_kwh: Opt[Number] = None
    min_current: Opt[Number] = None
    max_current: Opt[Number] = None
    min_power: Opt[Number] = None
    max_power: Opt[Number] = None
    min_duration: Opt[StrictInt] = None
    max_duration: Opt[StrictInt] = None
    day_of_week: Opt[list[DayOfWeek]] = None
    reservation: Opt[Literal["RESERVATION", "RESERVATION_EXPIRES"]] = None


class TariffElement(_M):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: Opt[TariffRestrictions] = None


class Tariff(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    id: CiS(36)
    currency: S(3)
    type: Opt[Literal["AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"]] = None
    tariff_alt_text: Opt[list[DisplayText]] = None
    tariff_alt_url: Opt[StrictStr] = None
    min_price: Opt[Price] = None
    max_price: Opt[Price] = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: Opt[DateTime] = None
    end_date_time: Opt[DateTime] = None
    energy_mix: Opt[EnergyMix] = None
    last_updated: DateTime


class CDR(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    id: CiS(39)
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: Opt[CiS(36)] = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: Opt[CiS(36)] = None
    cdr_location: CdrLocation
    meter_id: Opt[S(255)] = None
    currency: S(3)
    tariffs: Opt[list[Tariff]] = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: Opt[SignedData] = None
    total_cost: Price
    total_fixed_cost: Opt[Price] = None
    total_energy: Number
    total_energy_cost: Opt[Price] = None
    total_time: Number
    total_time_cost: Opt[Price] = None
    total_parking_time: Opt[Number] = None
    total_parking_cost: Opt[Price] = None
    total_reservation_cost: Opt[Price] = None
    remark: Opt[S(255)] = None
    invoice_reference_id: Opt[CiS(39)] = None
    credit: Opt[StrictBool] = None
    credit_reference_id: Opt[CiS(39)] = None
    home_charging_compensation: Opt[StrictBool] = None
    last_updated: DateTime


# ---- tokens ----------------------------------------------------------------------------------------------------


class EnergyContract(_M):
    supplier_name: S(64)
    contract_id: Opt[S(64)] = None


class ClientInfo(_M):
    """HubClientInfo (OCPI 2.2.1 §19): a party connected to a hub, and whether it can be reached."""

    party_id: CiS(3)
    country_code: CiS(2)
    role: Role
    status: Literal["CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED"]
    last_updated: DateTime


class Token(_M):
    country_code: CiS(2)
    party_id: CiS(3)
    uid: CiS(36)
    type: TokenType
    contract_id: CiS(36)
    visual_number: Opt[S(64)] = None
    issuer: S(64)
    group_id: Opt[CiS(36)] = None
    valid: StrictBool
    whitelist: Literal["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]
    language: Opt[S(2)] = None
    default_profile_type: Opt[Literal["CHEAP", "FAST", "GREEN", "REGULAR"]] = None
    energy_contract: Opt[EnergyContract] = None
    last_updated: DateTime


class LocationReferences(_M):
    location_id: CiS(36)
    evse_uids: Opt[list[CiS(36)]] = None


# ---- configuration modules -------------------------------------------------------------------------------------


class CredentialsRole(_M):
    role: Role
    business_details: BusinessDetails
    party_id: CiS(3)
    country_code: CiS(2)


class Credentials(_M):
    token: S(64)
    url: StrictStr
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]


VersionNumber = Literal["2.0", "2.1", "2.1.1", "2.2", "2.2.1"]


class Version(_M):
    version: StrictStr  # newer versions than we know must not make the list unreadable
    url: StrictStr


class Endpoint(_M):
    identifier: StrictStr
    role: Literal["SENDER", "RECEIVER"]
    url: StrictStr


class VersionDetails(_M):
    version: StrictStr
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]


class VersionList(_M):
    versions: Annotated[list[Version], Field(min_length=1)]


# ---- the acceptance rule ---------------------------------------------------------------------------------------

MODELS: dict[str, type[BaseModel]] = {
    "location": Location, "evse": EVSE, "connector": Connector, "session": Session, "cdr": CDR, "tariff": Tariff,
    "token": Token, "credentials": Credentials, "version_details": VersionDetails, "versions": VersionList,
    "hours": Hours, "energy_mix": EnergyMix, "display_text": DisplayText, "clientinfo": ClientInfo,
}

#: the paths that make an object usable: any problem there is an error ("*" matches one list index)
CORE: dict[str, tuple[tuple[str, ...], ...]] = {
    "location": (("country_code",), ("party_id",), ("id",), ("coordinates",), ("evses", "*", "uid"),
                 ("evses", "*", "status"), ("evses", "*", "connectors", "*", "id")),
    "evse": (("uid",), ("status",), ("connectors", "*", "id")),
    "connector": (("id",),),
    "session": (("country_code",), ("party_id",), ("id",), ("status",)),
    "cdr": (("country_code",), ("party_id",), ("id",)),
    "tariff": (("country_code",), ("party_id",), ("id",)),
    "token": (("country_code",), ("party_id",), ("uid",), ("type",), ("valid",), ("whitelist",)),
    "credentials": (("token",), ("url",), ("roles",), ("roles", "*", "role"), ("roles", "*", "country_code"),
                    ("roles", "*", "party_id")),
    "version_details": (("version",), ("endpoints", "*", "identifier"), ("endpoints", "*", "role"),
                        ("endpoints", "*", "url")),
    "versions": (("versions", "*", "version"), ("versions", "*", "url")),
    "hours": (), "energy_mix": (), "display_text": (),
    "clientinfo": (("party_id",), ("country_code",), ("role",), ("status",)),
}

#: the kinds that carry a top-level last_updated (required in a PATCH; must be readable when present)
STAMPED = frozenset({"location", "evse", "connector", "session", "cdr", "tariff", "token", "clientinfo"})

_STRUCTURAL = frozenset({"model_type", "model_attributes_type", "dict_type", "list_type", "tuple_type"})


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def message(self) -> str:
        return "; ".join(self.errors)


def _matches(pattern: tuple[str, ...], loc: tuple[Any, ...]) -> bool:
    if len(loc) < len(pattern):
        return False
    return all(p == "*" and isinstance(v, int) or p == v for p, v in zip(pattern, loc))


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "(object)"


def check(kind: str, obj: Any, *, partial: bool = False) -> Verdict:
    """Validate `obj` (parsed JSON) as an OCPI `kind`; `partial` for a PATCH body (fields may be left out, but
    `last_updated` is required)."""
    model = MODELS[kind]
    core = CORE[kind]
    v = Verdict()
    if not isinstance(obj, dict):
        v.errors.append(f"(object): a {kind} must be a JSON object")
        return v
    try:
        model.model_validate(obj)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = tuple(e["loc"])
            if partial and e["type"] == "missing" and len(loc) == 1:
                continue  # a PATCH leaves fields out
            text = f"{_where(loc)}: {e['msg']}"
            if e["type"] in _STRUCTURAL or any(_matches(p, loc) for p in core):
                v.errors.append(text)
            elif loc == ("last_updated",) and e["type"] != "missing":
                v.errors.append(text)
            else:
                v.warnings.append(text)
    if kind in STAMPED and partial and "last_updated" not in obj:
        v.errors.append("last_updated: a PATCH must carry last_updated")
    return v
