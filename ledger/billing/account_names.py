"""The ledger account names billing posts to, spelled once.

The scheme is the ledger's (ledger/accounts.py): `<owner type>:<owner id>:<purpose>`.  This module does not
import the ledger (billing stays usable and testable on its own); instead tests/unit/billing checks that every
name built here parses with `ledger.accounts.parse` to the kind stated below, so the two cannot drift silently.

| name                                  | kind      | meaning                                                   |
|---------------------------------------|-----------|-----------------------------------------------------------|
| `driver:{account_id}:receivable`      | asset     | what a driver owes us (charged sessions - payments)       |
| `fleet:{fleet_id}:receivable`         | asset     | what a fleet owes us (invoiced monthly)                   |
| `supplier:{supplier_id}:receivable`   | asset     | charges forwarded to an energy supplier's customer bill   |
| `psp:{provider}:clearing`             | asset     | money a payment provider collected for us, not paid out   |
| `driver:{account_id}:wallet`          | liability | prepaid balance; never below zero (a ledger flag)         |
| `cpo:{CC}-{PARTY}:payable`            | liability | what we owe a partner CPO for roamed sessions             |
| `tax:{CC}:vat_payable`                | liability | output VAT due in country CC (ISO 3166-1 alpha-2)         |
| `platform:charging:revenue`           | revenue   | own-station charging, excl. VAT                           |
| `platform:roaming:revenue`            | revenue   | our fee on roamed sessions, excl. VAT                     |

A card pre-authorisation is not an account: it is a ledger HOLD (pending entries Dr psp clearing / Cr driver
receivable), resolved by POST_HOLD at capture or VOID_HOLD at release (see postings_plan.py).

Rules: an owner id matches the ledger's `[A-Za-z0-9][A-Za-z0-9._@+*-]{0,99}` (ValueError otherwise); OCPI party
and country codes are upper-cased (CiStrings are case-insensitive).  `supplier` is an owner type this module
needs and the ledger scheme must list (reported to the lead).
"""

from __future__ import annotations

import re
from enum import StrEnum

_OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+*\-]{0,99}$")

REVENUE_CHARGING = "platform:charging:revenue"
REVENUE_ROAMING = "platform:roaming:revenue"


class AccountKind(StrEnum):
    """Same spelling as ledger.accounts.Kind values."""

    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"


#: purpose -> (kind, the ledger keeps its normal-side balance >= 0)
PURPOSES: dict[str, tuple[AccountKind, bool]] = {
    "receivable": (AccountKind.ASSET, False),
    "clearing": (AccountKind.ASSET, False),
    "wallet": (AccountKind.LIABILITY, True),
    "payable": (AccountKind.LIABILITY, False),
    "vat_payable": (AccountKind.LIABILITY, False),
    "revenue": (AccountKind.REVENUE, False),
}


def _owner(value: str, what: str) -> str:
    if not isinstance(value, str) or not _OWNER_ID.match(value):
        raise ValueError(f"{what} {value!r} cannot be an account owner id "
                         "(1-100 of A-Z a-z 0-9 . _ @ + * -, starting with a letter or digit)")
    return value


def driver_receivable(account_id: str) -> str:
    return f"driver:{_owner(account_id, 'account id')}:receivable"


def driver_wallet(account_id: str) -> str:
    return f"driver:{_owner(account_id, 'account id')}:wallet"


def fleet_receivable(fleet_id: str) -> str:
    return f"fleet:{_owner(fleet_id, 'fleet id')}:receivable"


def supplier_receivable(supplier_id: str) -> str:
    return f"supplier:{_owner(supplier_id, 'supplier id')}:receivable"


def psp_clearing(provider: str) -> str:
    return f"psp:{_owner(provider, 'provider')}:clearing"


def cpo_party(country_code: str, party_id: str) -> str:
    """OCPI party (country_code, party_id) -> 'NL-ABC'."""
    cc = country_code.upper() if isinstance(country_code, str) else country_code
    party = party_id.upper() if isinstance(party_id, str) else party_id
    if not (isinstance(cc, str) and re.fullmatch(r"[A-Z]{2}", cc)
            and isinstance(party, str) and re.fullmatch(r"[A-Z0-9]{3}", party)):
        raise ValueError(f"not an OCPI party: {country_code!r}/{party_id!r}")
    return f"{cc}-{party}"


def cpo_payable(country_code: str, party_id: str) -> str:
    return f"cpo:{cpo_party(country_code, party_id)}:payable"


def vat_payable(country: str) -> str:
    """Output VAT account of a country (ISO 3166-1 alpha-2, or an alpha-3 as OCPI locations carry)."""
    return f"tax:{vat_country(country)}:vat_payable"


def owner_key(account: str) -> str:
    """'<owner type>:<owner id>' of an account: the ledger's writer key for it."""
    owner_type, owner_id, _ = account.split(":")
    return f"{owner_type}:{owner_id}"


def purpose_of(account: str) -> str:
    parts = account.split(":") if isinstance(account, str) else []
    if len(parts) != 3 or parts[2] not in PURPOSES:
        raise ValueError(f"{account!r} is not a billing account name")
    return parts[2]


def kind_of(account: str) -> AccountKind:
    return PURPOSES[purpose_of(account)][0]


def is_limited(account: str) -> bool:
    """The ledger keeps this account's balance >= 0 (so postings to it go under its owner key)."""
    return PURPOSES[purpose_of(account)][1]


#: ISO 3166-1 alpha-3 -> alpha-2 for the countries we expect to operate or roam in (public facts).
ALPHA3_TO_ALPHA2: dict[str, str] = {
    "AUT": "AT", "BEL": "BE", "BGR": "BG", "HRV": "HR", "CYP": "CY", "CZE": "CZ", "DNK": "DK", "EST": "EE",
    "FIN": "FI", "FRA": "FR", "DEU": "DE", "GRC": "GR", "HUN": "HU", "IRL": "IE", "ITA": "IT", "LVA": "LV",
    "LTU": "LT", "LUX": "LU", "MLT": "MT", "NLD": "NL", "POL": "PL", "PRT": "PT", "ROU": "RO", "SVK": "SK",
    "SVN": "SI", "ESP": "ES", "SWE": "SE", "NOR": "NO", "ISL": "IS", "LIE": "LI", "CHE": "CH", "GBR": "GB",
    "USA": "US", "CAN": "CA", "AUS": "AU", "NZL": "NZ", "JPN": "JP", "KOR": "KR", "CHN": "CN", "SGP": "SG",
    "TUR": "TR", "SRB": "RS", "UKR": "UA", "ISR": "IL", "ARE": "AE", "IND": "IN", "BRA": "BR", "MEX": "MX",
    "ZAF": "ZA", "AND": "AD", "MCO": "MC", "SMR": "SM", "ALB": "AL", "MKD": "MK", "MNE": "ME", "BIH": "BA",
    "MDA": "MD", "GEO": "GE",
}


def vat_country(country: str) -> str:
    """Normalise a country code to ISO 3166-1 alpha-2 upper case (alpha-3 through `ALPHA3_TO_ALPHA2`)."""
    c = country.upper() if isinstance(country, str) else ""
    if re.fullmatch(r"[A-Z]{2}", c):
        return c
    if c in ALPHA3_TO_ALPHA2:
        return ALPHA3_TO_ALPHA2[c]
    raise ValueError(f"unknown country code {country!r} (want ISO 3166-1 alpha-2, or a known alpha-3)")
