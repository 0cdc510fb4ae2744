"""Accounts, vehicles, favourites, payment-method references and id tokens: the pure part (no I/O).

What lives here: input validation (request bodies as pydantic models), the ids that decide event keys, and the
builders of the `identity` events.  The API edge (accounts.py, me.py) publishes what these build; the Postgres
projection (projections/postgres/identity.py) applies them.

Keys and the single-writer rule (DESIGN.md §2):
- An account's id is *derived from its normalised email* (`account_id_for`), and every event of the account is
  keyed by it.  Two concurrent registrations of one email therefore land on one partition in a definite order and
  the projection keeps the first; the loser's edge sees that after waiting and answers 409.  The price: an email
  cannot change without a new account (email change is not offered), and the id is a pseudonym of the email,
  not a secret (it is only ever shown to its owner and admins).
- An id token (RFID card uid, app token) is its own aggregate with a platform-wide unique uid, so its events are
  keyed by an id derived from the uid (`id_token_key`): two accounts claiming one card are ordered on one
  partition and the first claim wins, deterministically on every replay.

Password hashes are computed at the edge and carried in AccountRegistered/PasswordChanged.  Why that is acceptable
(and why not the alternatives) is in projections/postgres/identity.py's docstring.

Invariants (tests/unit/accounts/): emails are ASCII and compared case-insensitively; no text field accepts control
characters (Postgres refuses NUL, logs must not be forged); a value that looks like a card number (13-19 digits
passing the Luhn check, spaces and dashes ignored) is refused in any payment-method field, without echoing it.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chargeverse.events import derived_id, envelope

# ---- ids -----------------------------------------------------------------------------------------------------------
ACCOUNT_ROLES_SELF_SERVICE = ("driver", "fleet_manager")

_EMAIL = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$")


def normalise_email(raw: str) -> str:
    """The canonical form of an email address: trimmed, lower case.  ValueError with the reason if unusable.

    ASCII only (internationalised domains go in their punycode form): case-insensitivity is then unambiguous and
    identical in Python and in Postgres `lower()`, which the projection's unique index relies on."""
    if not isinstance(raw, str):
        raise ValueError("email must be a string")
    s = raw.strip()
    if len(s) > 254:
        raise ValueError("email is longer than 254 characters")
    m = _EMAIL.match(s)
    if not m:
        raise ValueError("email is not a valid address (ASCII, local@domain.tld)")
    local = m.group("local")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("email local part has a misplaced dot")
    return s.lower()


def account_id_for(email: str) -> str:
    """The account id of a (normalised) email: the key of every event of that account."""
    return derived_id("account-email", normalise_email(email))


def id_token_key(uid: str) -> str:
    """The event key of an id token (its own aggregate: the uid is unique platform-wide)."""
    return derived_id("id-token", uid)


# ---- text ------------------------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(value: str, what: str, max_len: int, min_len: int = 1) -> str:
    """Trimmed text without control characters, within length bounds."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    s = value.strip()
    if _CONTROL.search(s):
        raise ValueError(f"{what} contains control characters")
    if not min_len <= len(s) <= max_len:
        raise ValueError(f"{what} must be {min_len}-{max_len} characters")
    return s


# ---- passwords -----------------------------------------------------------------------------------------------------
PASSWORD_MIN = 12
PASSWORD_MAX = 128
#: what login accepts at most (longer input is refused before hashing: no hashing megabytes on request)
PASSWORD_INPUT_MAX = 1024


def check_new_password(password: str, email: str | None = None) -> None:
    """The policy for a new password (NIST SP 800-63B spirit: length over composition rules).

    12-128 characters, not the email, not one character repeated, no control characters."""
    if not isinstance(password, str):
        raise ValueError("password must be a string")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if _CONTROL.search(password):
        raise ValueError("password contains control characters")
    if len(set(password.strip())) < 4:
        raise ValueError("password is too repetitive (use at least 4 different characters)")
    if email is not None and password.strip().lower() == email.strip().lower():
        raise ValueError("password must not be the email address")


# ---- card numbers ----------------------------------------------------------------------------------------------------
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when `text` contains 13-19 digits (single spaces or dashes between them ignored) passing Luhn."""
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


# ---- vehicles ------------------------------------------------------------------------------------------------------
#: OCPI 2.2.1 ConnectorType: the vocabulary of station connectors (`connectors.standard`) as well
CONNECTOR_TYPES = (
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F",
    "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L", "DOMESTIC_M",
    "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16", "IEC_60309_2_three_16",
    "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2",
    "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30",
    "NEMA_10_50", "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S",
)
DC_CONNECTORS = frozenset({"CHADEMO", "CHAOJI", "GBT_DC", "IEC_62196_T1_COMBO", "IEC_62196_T2_COMBO",
                           "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_S"})

MAX_VEHICLES = 20
MAX_FAVOURITES = 200
MAX_PAYMENT_METHODS = 10
MAX_ID_TOKENS = 20

STATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@*+#-]{0,63}$"
VEHICLE_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
PAYMENT_METHOD_ID = r"^pm_[A-Za-z0-9_]{6,64}$"
RFID_UID = re.compile(r"^[0-9A-F]{8,20}$")
#: OCPP 1.6 idTag is CiString20; app tokens use that space too
TOKEN_UID = r"^[A-Za-z0-9]{8,20}$"


def normalise_rfid_uid(raw: str) -> str:
    """RFID uids as chargers report them: hex, upper case, 4/7/10-byte UIDs (8-20 hex digits); separators
    (':', '-', ' ') are dropped."""
    s = re.sub(r"[:\- ]", "", raw.strip()).upper() if isinstance(raw, str) else ""
    if not RFID_UID.match(s) or len(s) % 2:
        raise ValueError("RFID uid must be 8-20 hexadecimal digits (a 4, 7 or 10 byte card UID)")
    return s


def new_app_token_uid() -> str:
    """A random app token uid: 'APP' + 17 upper-case alphanumerics (20 characters, the OCPP 1.6 idTag limit)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "APP" + "".join(secrets.choice(alphabet) for _ in range(17))


# ---- request bodies ------------------------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, hide_input_in_errors=True)


class RegisterBody(_Body):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=PASSWORD_INPUT_MAX, description=f"{PASSWORD_MIN}-{PASSWORD_MAX} characters")
    display_name: str | None = Field(None, max_length=200)
    role: Literal["driver", "fleet_manager"] = Field("driver", description="self-service roles only")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v)

    @field_validator("display_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else clean_text(v, "display_name", 100)

    @model_validator(mode="after")
    def _password(self) -> "RegisterBody":
        check_new_password(self.password, self.email)
        return self


class LoginBody(_Body):
    email: str = Field(max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_INPUT_MAX)


class RefreshBody(_Body):
    refresh_token: str = Field(min_length=1, max_length=256)


class LogoutBody(_Body):
    refresh_token: str = Field(min_length=1, max_length=256)
    everywhere: bool = Field(False, description="sign out every session of the account, not only this one")


class PasswordBody(_Body):
    current_password: str = Field(min_length=1, max_length=PASSWORD_INPUT_MAX)
    new_password: str = Field(max_length=PASSWORD_INPUT_MAX)

    @model_validator(mode="after")
    def _policy(self) -> "PasswordBody":
        check_new_password(self.new_password)
        if self.new_password == self.current_password:
            raise ValueError("new_password must differ from current_password")
        return self


PROFILE_FIELDS = ("display_name", "phone", "locale")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Z]{2})?$")


class ProfilePatch(_Body):
    """Only the fields present change; null clears a field."""

    display_name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=32, description="E.164, e.g. +31201234567")
    locale: str | None = Field(None, max_length=16, description="e.g. nl-NL")

    @field_validator("display_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else clean_text(v, "display_name", 100)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is not None and not _PHONE.match(v):
            raise ValueError("phone must be in E.164 form: + and 7-15 digits")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        if v is not None and not _LOCALE.match(v):
            raise ValueError("locale must look like 'nl' or 'nl-NL'")
        return v

    @model_validator(mode="after")
    def _something(self) -> "ProfilePatch":
        if not self.model_fields_set:
            raise ValueError(f"nothing to change: send at least one of {', '.join(PROFILE_FIELDS)}")
        return self


class VehicleBody(_Body):
    make: str = Field(max_length=100, examples=["Kia"])
    model: str = Field(max_length=100, examples=["EV6 Long Range"])
    year: int | None = Field(None, ge=1990, le=2100)
    battery_kwh: float = Field(gt=0, le=2000, description="usable battery capacity")
    max_ac_kw: float | None = Field(None, gt=0, le=100, description="on-board charger limit")
    max_dc_kw: float | None = Field(None, gt=0, le=1500)
    connector_types: list[str] = Field(min_length=1, max_length=8, description="OCPI ConnectorType values")
    nickname: str | None = Field(None, max_length=200)

    @field_validator("make", "model")
    @classmethod
    def _text(cls, v: str, info: Any) -> str:
        return clean_text(v, info.field_name, 60)

    @field_validator("nickname")
    @classmethod
    def _nick(cls, v: str | None) -> str | None:
        return None if v is None else clean_text(v, "nickname", 60)

    @field_validator("connector_types")
    @classmethod
    def _connectors(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in CONNECTOR_TYPES]
        if unknown:
            raise ValueError(f"unknown connector types (use OCPI ConnectorType, e.g. IEC_62196_T2_COMBO): "
                             f"{', '.join(repr(u[:40]) for u in unknown[:3])}")
        if len(set(v)) != len(v):
            raise ValueError("connector_types has duplicates")
        return v


class FavouriteBody(_Body):
    station_id: str = Field(pattern=STATION_ID, max_length=64)


class PaymentMethodBody(_Body):
    """A reference to a payment method held by the payment provider; never card data."""

    payment_method_id: str = Field(max_length=80, description="the provider's tokenised id, e.g. pm_1Nv0...")
    provider: str = Field("stripe", pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    label: str | None = Field(None, max_length=200, description="e.g. 'company card'")

    @model_validator(mode="before")
    @classmethod
    def _no_card_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(v, str) and looks_like_card_number(v):
                    raise ValueError(f"{str(k)[:40]} looks like a card number: never send card data; send the "
                                     "payment provider's tokenised id (pm_...)")
        return data

    @field_validator("payment_method_id")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not re.match(PAYMENT_METHOD_ID, v):
            raise ValueError("payment_method_id must be a tokenised reference: 'pm_' + 6-64 letters, digits or _")
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        return None if v is None else clean_text(v, "label", 60)


class IdTokenBody(_Body):
    type: Literal["RFID", "APP_USER"] = "RFID"
    uid: str | None = Field(None, max_length=64, description="RFID: the card UID in hex; APP_USER: generated")
    label: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _uid(self) -> "IdTokenBody":
        if self.type == "RFID":
            if self.uid is None:
                raise ValueError("an RFID token needs its card uid")
            self.uid = normalise_rfid_uid(self.uid)
        elif self.uid is not None:
            raise ValueError("APP_USER token uids are generated; do not send one")
        if self.label is not None:
            self.label = clean_text(self.label, "label", 60)
        return self


# ---- charge-time estimate ------------------------------------------------------------------------------------------
def estimate_charge_minutes(battery_kwh: float, from_soc: int, to_soc: int, power_kw: float, dc: bool) -> int:
    """Minutes to charge from `from_soc` % to `to_soc` % at a connector delivering `power_kw` at most.

    A deliberately simple, documented model: 90 % charging efficiency; AC at constant power; DC at full power up
    to 80 % and at a third of it above (the taper every DC curve shows).  Good enough to rank stations, not to
    promise a time."""
    if not (0 <= from_soc < to_soc <= 100) or power_kw <= 0 or battery_kwh <= 0:
        raise ValueError("need 0 <= from_soc < to_soc <= 100 and positive power and capacity")
    b, p = Decimal(str(battery_kwh)), Decimal(str(power_kw))
    eff = Decimal("0.9")

    def energy(lo: int, hi: int) -> Decimal:
        return b * Decimal(max(hi - lo, 0)) / Decimal(100) / eff

    if dc:
        hours = energy(from_soc, min(to_soc, 80)) / p + energy(max(from_soc, 80), to_soc) / (p / 3)
    else:
        hours = energy(from_soc, to_soc) / p
    return int((hours * 60).to_integral_value(rounding=ROUND_HALF_UP))


def charge_power_kw(vehicle_ac_kw: float | None, vehicle_dc_kw: float | None, connector_kw: float | None,
                    dc: bool) -> float | None:
    """The power a vehicle draws from a connector: the smaller of the two limits that are known."""
    limits = [x for x in ((vehicle_dc_kw if dc else vehicle_ac_kw), connector_kw) if x]
    return min(limits) if limits else None


# ---- events ----------------------------------------------------------------------------------------------------------
def _event(source: str, correlation_id: str, **payload: Any) -> dict[str, Any]:
    rec = envelope(source=source, correlation_id=correlation_id)
    rec.update(payload)
    return rec


def account_registered(*, account_id: str, email: str, password_hash: str, display_name: str | None,
                       roles: list[str], contract_id: str, source: str, correlation_id: str) -> dict[str, Any]:
    if not password_hash.startswith("$argon2id$"):
        raise ValueError("only argon2id hashes go on the log")
    return _event(source, correlation_id, account_id=account_id, email=email, password_hash=password_hash,
                  display_name=display_name, roles=list(roles), contract_id=contract_id)


def password_changed(*, account_id: str, password_hash: str, source: str, correlation_id: str) -> dict[str, Any]:
    if not password_hash.startswith("$argon2id$"):
        raise ValueError("only argon2id hashes go on the log")
    return _event(source, correlation_id, account_id=account_id, password_hash=password_hash)


def profile_updated(*, account_id: str, changes: dict[str, str | None], source: str,
                    correlation_id: str) -> dict[str, Any]:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown or not changes:
        raise ValueError(f"profile changes must be some of {PROFILE_FIELDS}")
    values = {f: changes.get(f) for f in PROFILE_FIELDS}
    return _event(source, correlation_id, account_id=account_id, fields_set=sorted(changes), **values)


def vehicle_added(*, account_id: str, vehicle_id: str, body: VehicleBody, source: str,
                  correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, vehicle_id=vehicle_id, make=body.make,
                  model=body.model, year=body.year, battery_kwh=float(body.battery_kwh),
                  max_ac_kw=body.max_ac_kw, max_dc_kw=body.max_dc_kw, connector_types=list(body.connector_types),
                  nickname=body.nickname)


def vehicle_removed(*, account_id: str, vehicle_id: str, source: str, correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, vehicle_id=vehicle_id)


def favourite(*, account_id: str, station_id: str, source: str, correlation_id: str) -> dict[str, Any]:
    """FavouriteAdded and FavouriteRemoved share this payload."""
    return _event(source, correlation_id, account_id=account_id, station_id=station_id)


def payment_method_added(*, account_id: str, body: PaymentMethodBody, source: str,
                         correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, payment_method_id=body.payment_method_id,
                  provider=body.provider, label=body.label)


def payment_method_removed(*, account_id: str, payment_method_id: str, source: str,
                           correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, payment_method_id=payment_method_id)


def id_token_issued(*, account_id: str, uid: str, token_type: str, contract_id: str, label: str | None,
                    valid_until: datetime | None, source: str, correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, uid=uid, token_type=token_type,
                  contract_id=contract_id, label=label, valid_until=valid_until, group_id=None)


def id_token_blocked(*, account_id: str, uid: str, reason: str, source: str, correlation_id: str) -> dict[str, Any]:
    return _event(source, correlation_id, account_id=account_id, uid=uid, reason=reason)
