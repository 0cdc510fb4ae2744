"""The one place every setting lives.

Every endpoint of the platform is a setting, read from `CV_*` environment variables (and from the local stack's
`.stack/env`, written by `cv stack up`, so a shell needs no exports).  Point `CV_KAFKA_BOOTSTRAP` at real Apache
Kafka or `CV_MONGO_URL` at real MongoDB and nothing else changes; `compose/docker-compose.yml` sets exactly these
names, and a test keeps the two in step.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeverse import ROOT


def _stack_env_file() -> Path:
    return Path(os.environ.get("CV_STACK_DIR", ROOT / ".stack")) / "env"


class Settings(BaseSettings):
    """Process settings.  Field `x` is read from `CV_X`."""

    model_config = SettingsConfigDict(env_prefix="CV_", env_file=None, extra="ignore")

    # where the embedded stack keeps its data, logs and pid files
    stack_dir: Path = ROOT / ".stack"

    # the log
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_session_timeout_ms: int = 6000
    #: replication of topics the worker creates itself (Faust's internal topics); 3 on a production cluster
    kafka_replication_factor: int = 1
    #: longest pause (ms) a Faust (aiokafka) consumer makes after an empty fetch the broker answered before the
    #: fetch's max wait (noida-db ignores it; chargeverse/fetch_backoff.py); 0 disables.  No wait on Apache Kafka
    kafka_empty_fetch_backoff_ms: int = 20
    #: librdkafka's idempotent producer (no duplicate on a retried send).  The embedded stack turns it off: against
    #: noida-db it holds ~1% of sends back for up to 500 ms (p99 ack 300 ms vs 6 ms without; bench/broker_acks.py).
    #: Off, the producer keeps order with one request in flight per connection, and a duplicate that a retry
    #: might write is dropped by the idempotent sinks (DESIGN.md: every sink is idempotent).  Keep it on with Kafka.
    kafka_idempotent_producer: bool = True

    #: seconds between an edge process's full cyclic-GC sweeps (chargeverse/gc_pacing.py: the OCPP edge and each
    #: API worker collect young objects every second and freeze survivors; cycles among long-lived objects, e.g. a
    #: closed charger's connection, are reclaimed by a sweep, one pause as long as a full collection); 0 = never
    gc_sweep_seconds: float = 3600.0
    #: seconds between the young collections of `gc_pacing` (each pause is proportional to what one tick allocated
    #: and kept: a shorter tick, shorter pauses, the same total work)
    gc_tick_seconds: float = 1.0
    #: when set, events are framed in the Confluent wire format against this registry instead of Avro
    #: single-object encoding
    schema_registry_url: str | None = None

    # the stores
    postgres_dsn: SecretStr = SecretStr("postgresql://chargeverse@127.0.0.1:15432/chargeverse")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:16379/0")
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27018/")
    mongo_db: str = "chargeverse"

    # the edges
    ocpp_host: str = "127.0.0.1"
    ocpp_port: int = 9000
    ocpp_heartbeat_interval: int = 300
    #: frames larger than this are refused with close code 1009 (message too big)
    ocpp_max_frame_bytes: int = 65536
    # OCPP security profiles 2/3 (TLS, mutual TLS), flood control, per-model leniency (edges/ocpp/README.md)
    ocpp_tls_port: int | None = None
    ocpp_tls_cert_file: Path | None = None
    ocpp_tls_key_file: Path | None = None
    ocpp_tls_charger_ca_file: Path | None = None
    ocpp_rate_per_second: float = 10.0
    ocpp_rate_burst: int = 60
    ocpp_leniency: str = ""  # JSON {"vendor/model": "known" | [rules]} or a path to it
    ocpp_data_transfer_vendors: str = ""  # JSON {"vendorId": [messageIds]}; [] = any messageId
    #: run `cv run ocpp` on uvloop (libuv: fewer system calls and less Python per socket event); false = asyncio's
    #: own loop
    ocpp_uvloop: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: worker processes of `cv run api` (uvicorn --workers); 0 = one per CPU core this process may use
    api_workers: int = 0
    #: uvicorn's access log line per request (~15 us of CPU each); off when a proxy in front logs requests
    api_access_log: bool = True
    #: HS256 signing key for app JWTs; the local stack generates one, production injects one
    jwt_secret: SecretStr = SecretStr("")
    jwt_issuer: str = "chargeverse"
    # accounts and auth (edges/api/accounts.py, chargeverse/keyring.py): JWT signing keys are derived from
    # jwt_secret and a key id; the previous key keeps verifying for jwt_previous_key_seconds after a rotation
    jwt_access_ttl_seconds: int = 900
    jwt_previous_key_seconds: int = 43200
    refresh_idle_seconds: int = 1_209_600
    refresh_max_seconds: int = 2_592_000
    # argon2id for people's passwords: above OWASP's minimum (m=19 MiB, t=2, p=1)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    argon2_concurrency: int = 4
    auth_redis_prefix: str = "cv:auth"
    api_write_wait_seconds: float = 5.0
    #: a session the charger has said nothing about for this long is closed "Abandoned" at its next frame
    #: (streams/sessions/fold.py); 0 = never
    session_abandon_after_hours: float = 72.0
    rate_limits: str = ""  # overrides, e.g. "login.ip=20/60;login.account=10/900"
    # how often the projections worker seals the ledger's chain heads in a Merkle root (0: never; `cv ledger seal`)
    ledger_seal_interval_seconds: int = 600
    # who we are in roaming and on our own CDRs (OCPI country code / party id)
    emsp_country_code: str = "NL"
    emsp_party_id: str = "CVE"
    # Plug & Charge (edges/pnc/, README "Plug & Charge"): CA material lives in pnc_ca_dir (default
    # {stack_dir}/pnc), private keys encrypted with pnc_ca_key_encryption_key (empty: derived from jwt_secret, for
    # the local stack only); the OCSP URL goes into every certificate's AIA (default: this API's /pnc/ocsp)
    #: off until the operator has set up the MO CA (`cv pnc init`): the OCPP edge then refuses PnC requests with
    #: NotEnabled and the API's /pnc endpoints answer 404
    pnc_enabled: bool = False
    pnc_ca_dir: Path | None = None
    pnc_ca_key_encryption_key: SecretStr = SecretStr("")
    pnc_ocsp_url: str = ""
    pnc_organization: str = "chargeverse"
    pnc_country: str = "NL"
    #: a wrong eMAID check digit at enrolment: "reject" or "flag" (accept, marked)
    pnc_check_digit_policy: str = "reject"
    pnc_contract_validity_days: int = 730
    # community content (edges/api/community.py): the largest photo accepted, in bytes
    community_photo_max_bytes: int = 5 * 1024 * 1024
    # notifications (streams/notifications/): the API process runs the sender worker when true (`cv up` sets it);
    # channel: log (default: account id and kind only) | email (SMTP) | sms (HTTP webhook)
    notifications_worker: bool = False
    notifications_channel: str = "log"
    notifications_smtp_host: str = "127.0.0.1"
    notifications_smtp_port: int = 25
    notifications_smtp_user: str = ""
    notifications_smtp_password: SecretStr = SecretStr("")
    notifications_smtp_starttls: bool = False
    notifications_email_from: str = "chargeverse@localhost"
    notifications_sms_webhook_url: SecretStr = SecretStr("")

    # the stream processors
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = 6066
    worker_id: str = "chargeverse-worker"
    #: which consumer group this worker process runs: processors, projections or archive (streams/registry.py)
    worker_group: str = "processors"
    #: the forecasts processor checkpoints its models (and the offsets they reflect) this often
    forecasts_checkpoint_seconds: float = 30.0
    #: calendar zone of a station's occupancy model until its tariff names one
    forecasts_time_zone: str = "Europe/Amsterdam"

    # local stack ports (only used by `cv stack`)
    stack_kafka_port: int = 19092
    stack_postgres_port: int = 15432
    stack_redis_port: int = 16379
    stack_mongo_port: int = 27018

    # ---- OCPI 2.2.1 roaming (edges/ocpi; README there) -------------------------------------------------------------
    # Who we are on OCPI: one platform with one party (country code + party id) playing one or more roles.
    # `ocpi_platform_id` names this platform's partner state on the shared log: a platform's projections apply only
    # events with its own platform id, which is also what lets two independent OCPI platforms share one test stack.
    # Derived values (root URL, our parties, "is this us?") are in edges/ocpi/config.py.
    ocpi_host: str = "127.0.0.1"
    ocpi_port: int = 8090
    #: public URL of the `/ocpi` root as partners reach it (behind a proxy: https://ocpi.example.com/ocpi);
    #: empty means http://ocpi_host:ocpi_port/ocpi
    ocpi_base_url: str = ""
    ocpi_platform_id: str = "chargeverse"
    ocpi_country_code: str = "NL"
    ocpi_party_id: str = "CVS"
    #: roles we play under that party, comma separated: CPO (our own OCPP stations), EMSP (our drivers); checked
    #: when the OCPI edge starts (edges/ocpi/config.py `parties`)
    ocpi_roles: str = "CPO,EMSP"
    ocpi_business_name: str = "chargeverse"
    ocpi_website: str | None = None
    #: what our stations' registration does not record yet (StationRegistered has no country or time zone):
    #: used for every own Location we serve as a CPO
    ocpi_location_country: str = "NLD"
    ocpi_location_time_zone: str = "Europe/Amsterdam"
    #: Postgres schema of the OCPI projections the edge reads (and waits on)
    ocpi_schema_name: str = "public"
    #: after a credentials exchange (registration or re-roll) the token a partner used before stays valid this
    #: long, so an answer lost on the way can be retried; 0 revokes it at once
    ocpi_token_grace_seconds: int = 300
    #: the most objects one page of a list answers (X-Limit); larger `limit`s are capped to it
    ocpi_page_limit: int = 1000
    #: key material sealing the partner tokens we must send back (their token A, B or C); derived from
    #: jwt_secret when empty (then rotating that secret makes the sealed tokens unreadable: set this)
    ocpi_secret_key: SecretStr = SecretStr("")
    #: how long an answer waits for the projection to apply what the request published (read-your-writes)
    ocpi_apply_timeout: float = 10.0
    #: timeout of one HTTP call to a partner
    ocpi_http_timeout: float = 15.0
    #: run the OCPI projections inside the edge process (development without `cv run worker`; see
    #: projections/postgres/ocpi_follow.py).  Production runs them in the projections worker group.
    ocpi_follow: bool = False
    #: Commands, CPO role: how long the OCPP edge waits for the charger, and the CommandResponse timeout we give
    #: eMSPs (the charger's wait plus the way back)
    ocpi_command_ocpp_timeout_s: int = 30
    ocpi_command_timeout_s: int = 60
    #: Commands, eMSP role: extra wait beyond the CPO's timeout before we record TIMEOUT
    ocpi_command_result_grace_s: float = 5.0
    #: the commands worker rebuilds its pending commands from this much log at start (commands live minutes)
    ocpi_commands_lookback_seconds: int = 900
    #: outbound calls (edges/ocpi/outbound.py): retries with exponential backoff (base seconds, cap seconds) and
    #: a per-partner circuit breaker (consecutive failures to open, seconds before a trial call)
    ocpi_outbound_retries: int = 4
    ocpi_outbound_backoff: float = 0.5
    ocpi_outbound_backoff_cap: float = 30.0
    ocpi_breaker_failures: int = 5
    ocpi_breaker_reset_seconds: float = 30.0
    #: run the OCPI commands worker inside the edge process (`cv run ocpi-commands` is the standalone form)
    ocpi_commands_worker: bool = False
    #: run the OCPI push worker (CPO role: our Locations, Sessions, CDRs, Tariffs to eMSPs) inside the edge
    #: process - in exactly one edge instance per platform (edges/ocpi/push_worker.py; `cv up` turns it on)
    ocpi_push_worker: bool = False

    @field_validator("ocpi_country_code", "ocpi_party_id")
    @classmethod
    def _ocpi_upper(cls, v: str) -> str:
        return v.upper()
    # ---- end of OCPI ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process: the environment wins over the stack's env file."""
    env_file = _stack_env_file()
    return Settings(_env_file=env_file if env_file.exists() else None)  # type: ignore[call-arg]
