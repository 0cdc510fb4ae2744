"""What the OCPI edge derives from its settings.

The settings themselves are fields of the project's one settings object, `chargeverse.settings.Settings`, in its
OCPI section: field `ocpi_x` is read from `CV_OCPI_X` (`get_settings()`).  This module only derives from them:
our root URL, our parties (validating the role list), whether a routing header names us - and `with_ocpi`, the
settings of another OCPI platform in the same process (tests and benches run two parties on one stack).

Who we are on OCPI: one platform with one or more parties (country code + party id), each with the roles it plays.
`ocpi_platform_id` names this platform's partner state on the shared log: a platform's projections apply only
events with its own platform id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chargeverse.settings import Settings

ROLES = ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")


@dataclass(frozen=True)
class Party:
    """One of our own OCPI parties, in one role."""

    role: str
    country_code: str
    party_id: str
    name: str

    def credentials_role(self, website: str | None = None) -> dict[str, object]:
        details: dict[str, object] = {"name": self.name}
        if website:
            details["website"] = website
        return {"role": self.role, "country_code": self.country_code, "party_id": self.party_id,
                "business_details": details}


def root_url(s: Settings) -> str:
    """Our `/ocpi` root as partners reach it: CV_OCPI_BASE_URL, else http://host:port/ocpi; no trailing slash."""
    return (s.ocpi_base_url or f"http://{s.ocpi_host}:{s.ocpi_port}/ocpi").rstrip("/")


def versions_url(s: Settings) -> str:
    return f"{root_url(s)}/versions"


def parties(s: Settings) -> list[Party]:
    """Our parties, one per role in CV_OCPI_ROLES; an unknown role is a ValueError naming it."""
    out = []
    for r in (x.strip().upper() for x in s.ocpi_roles.split(",") if x.strip()):
        if r not in ROLES:
            raise ValueError(f"CV_OCPI_ROLES: unknown role {r!r}; known: {', '.join(ROLES)}")
        out.append(Party(r, s.ocpi_country_code, s.ocpi_party_id, s.ocpi_business_name))
    return out


def plays(s: Settings, role: str) -> bool:
    return any(p.role == role for p in parties(s))


def is_us(s: Settings, country_code: str | None, party_id: str | None) -> bool:
    return (country_code or "").upper() == s.ocpi_country_code and (party_id or "").upper() == s.ocpi_party_id


def with_ocpi(s: Settings, **ocpi: Any) -> Settings:
    """A copy of `s` with OCPI settings replaced (`platform_id=...` sets `ocpi_platform_id`), validated like the
    environment's values; the environment is not read again.  For a second OCPI platform in one process."""
    unknown = [k for k in ocpi if f"ocpi_{k}" not in Settings.model_fields]
    if unknown:
        raise TypeError(f"not OCPI settings: {', '.join(sorted(unknown))}")
    values = dict(s.model_dump(), **{f"ocpi_{k}": v for k, v in ocpi.items()})
    return Settings.model_validate(values)
