"""Settings of the OCPI edge, read from `CV_OCPI_*` (and the local stack's env file, like chargeverse.settings).

Kept beside the edge until chargeverse/settings.py absorbs them (the fields below, prefixed `ocpi_`, are the
proposed additions there); everything else (Kafka, Postgres, the JWT secret) comes from chargeverse.settings.

Who we are on OCPI: one platform with one or more parties (country code + party id), each with the roles it plays.
`platform_id` names this platform's partner state on the shared log: a platform's projections apply only events
with its own platform id, which is also what lets two independent OCPI platforms share one test stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeverse.settings import _stack_env_file

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


class OcpiSettings(BaseSettings):
    """Field `x` is read from `CV_OCPI_X`."""

    model_config = SettingsConfigDict(env_prefix="CV_OCPI_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8090
    #: public URL of the `/ocpi` root as partners reach it (behind a proxy: https://ocpi.example.com/ocpi);
    #: empty means http://host:port/ocpi
    base_url: str = ""
    #: the name of this platform's partner state on the log (see the module docstring)
    platform_id: str = "chargeverse"
    country_code: str = "NL"
    party_id: str = "CVS"
    #: roles we play under that party, comma separated: CPO (our own OCPP stations), EMSP (our drivers)
    roles: str = "CPO,EMSP"
    business_name: str = "chargeverse"
    website: str | None = None
    #: what our stations' registration does not record yet (StationRegistered has no country or time zone):
    #: used for every own Location we serve as a CPO
    location_country: str = "NLD"
    location_time_zone: str = "Europe/Amsterdam"
    #: Postgres schema of the OCPI projections this edge reads (and waits on)
    schema_name: str = "public"
    #: after a credentials exchange (registration or re-roll) the token a partner used before stays valid this
    #: long, so an answer lost on the way can be retried; 0 revokes it at once
    token_grace_seconds: int = 300
    #: the most objects one page of a list answers (X-Limit); larger `limit`s are capped to it
    page_limit: int = 1000
    #: key material sealing the partner tokens we must send back (their token A, B or C); derived from
    #: CV_JWT_SECRET when empty (then rotating that secret makes the sealed tokens unreadable: set this)
    secret_key: SecretStr = SecretStr("")
    #: how long an answer waits for the projection to apply what the request published (read-your-writes)
    apply_timeout: float = 10.0
    #: timeout of one HTTP call to a partner
    http_timeout: float = 15.0
    #: run the OCPI projections inside the edge process (development without `cv run worker`; see
    #: projections/postgres/ocpi_follow.py).  Production runs them in the projections worker group.
    follow: bool = False
    #: Commands, CPO role: how long the OCPP edge waits for the charger, and the CommandResponse timeout we give
    #: eMSPs (the charger's wait plus the way back)
    command_ocpp_timeout_s: int = 30
    command_timeout_s: int = 60
    #: Commands, eMSP role: extra wait beyond the CPO's timeout before we record TIMEOUT
    command_result_grace_s: float = 5.0
    #: the commands worker rebuilds its pending commands from this much log at start (commands live minutes)
    commands_lookback_seconds: int = 900
    #: outbound calls (edges/ocpi/outbound.py): retries with exponential backoff (base seconds, cap seconds) and
    #: a per-partner circuit breaker (consecutive failures to open, seconds before a trial call)
    outbound_retries: int = 4
    outbound_backoff: float = 0.5
    outbound_backoff_cap: float = 30.0
    breaker_failures: int = 5
    breaker_reset_seconds: float = 30.0
    #: run the OCPI commands worker inside the edge process (`cv run ocpi-commands` is the standalone form)
    commands_worker: bool = False
    #: run the OCPI push worker (CPO role: our Locations, Sessions, CDRs, Tariffs to eMSPs) inside the edge
    #: process - in exactly one edge instance per platform (edges/ocpi/push_worker.py; `cv up` turns it on)
    push_worker: bool = False

    @field_validator("country_code", "party_id")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def root_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}/ocpi").rstrip("/")

    @property
    def versions_url(self) -> str:
        return f"{self.root_url}/versions"

    def parties(self) -> list[Party]:
        out = []
        for r in (x.strip().upper() for x in self.roles.split(",") if x.strip()):
            if r not in ROLES:
                raise ValueError(f"CV_OCPI_ROLES: unknown role {r!r}; known: {', '.join(ROLES)}")
            out.append(Party(r, self.country_code, self.party_id, self.business_name))
        return out

    def plays(self, role: str) -> bool:
        return any(p.role == role for p in self.parties())

    def is_us(self, country_code: str | None, party_id: str | None) -> bool:
        return (country_code or "").upper() == self.country_code and (party_id or "").upper() == self.party_id


@lru_cache(maxsize=1)
def get_ocpi_settings() -> OcpiSettings:
    env_file = _stack_env_file()
    return OcpiSettings(_env_file=env_file if env_file.exists() else None)  # type: ignore[call-arg]
