"""The OCPI settings live in the project's one settings object (chargeverse/settings.py, fields `ocpi_*`) and keep
the environment names operators already use (`CV_OCPI_*`); edges/ocpi/config.py only derives from them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from chargeverse.settings import Settings
from edges.ocpi.config import Party, is_us, parties, plays, root_url, versions_url, with_ocpi

#: every CV_OCPI_* name the edge, `cv up`, the bench and the README used before the fold, with a value to set
OLD_NAMES = {
    "CV_OCPI_HOST": "0.0.0.0", "CV_OCPI_PORT": "18090", "CV_OCPI_BASE_URL": "https://ocpi.example.com/ocpi/",
    "CV_OCPI_PLATFORM_ID": "p1", "CV_OCPI_COUNTRY_CODE": "be", "CV_OCPI_PARTY_ID": "xyz", "CV_OCPI_ROLES": "CPO",
    "CV_OCPI_BUSINESS_NAME": "Acme", "CV_OCPI_WEBSITE": "https://acme.example", "CV_OCPI_LOCATION_COUNTRY": "BEL",
    "CV_OCPI_LOCATION_TIME_ZONE": "Europe/Brussels", "CV_OCPI_SCHEMA_NAME": "ocpi_p1",
    "CV_OCPI_TOKEN_GRACE_SECONDS": "7", "CV_OCPI_PAGE_LIMIT": "50", "CV_OCPI_SECRET_KEY": "s3cret-s3cret-s3cret",
    "CV_OCPI_APPLY_TIMEOUT": "2.5", "CV_OCPI_HTTP_TIMEOUT": "3.5", "CV_OCPI_FOLLOW": "1",
    "CV_OCPI_COMMAND_OCPP_TIMEOUT_S": "11", "CV_OCPI_COMMAND_TIMEOUT_S": "22", "CV_OCPI_COMMAND_RESULT_GRACE_S": "1.5",
    "CV_OCPI_COMMANDS_LOOKBACK_SECONDS": "33", "CV_OCPI_OUTBOUND_RETRIES": "2", "CV_OCPI_OUTBOUND_BACKOFF": "0.25",
    "CV_OCPI_OUTBOUND_BACKOFF_CAP": "4", "CV_OCPI_BREAKER_FAILURES": "3", "CV_OCPI_BREAKER_RESET_SECONDS": "9",
    "CV_OCPI_COMMANDS_WORKER": "true", "CV_OCPI_PUSH_WORKER": "true",
}


def test_every_old_environment_name_is_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in OLD_NAMES.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert {f"CV_{f.upper()}" for f in Settings.model_fields if f.startswith("ocpi_")} == set(OLD_NAMES)
    assert (s.ocpi_host, s.ocpi_port, s.ocpi_platform_id, s.ocpi_schema_name) == ("0.0.0.0", 18090, "p1", "ocpi_p1")
    assert (s.ocpi_country_code, s.ocpi_party_id) == ("BE", "XYZ")  # upper-cased, as partners compare them
    assert (s.ocpi_page_limit, s.ocpi_http_timeout, s.ocpi_follow, s.ocpi_push_worker) == (50, 3.5, True, True)
    assert s.ocpi_secret_key.get_secret_value() == "s3cret-s3cret-s3cret"
    assert root_url(s) == "https://ocpi.example.com/ocpi" and versions_url(s).endswith("/ocpi/versions")


def test_the_token_key_is_secret_in_every_printout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CV_OCPI_SECRET_KEY", "do-not-print-me-0123")
    s = Settings()
    assert isinstance(s.ocpi_secret_key, SecretStr)
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "do-not-print-me-0123" not in shown


def test_derived_values() -> None:
    s = Settings(ocpi_host="10.0.0.2", ocpi_port=8091, ocpi_base_url="", ocpi_country_code="nl",
                 ocpi_party_id="cvs", ocpi_roles="cpo, emsp", ocpi_business_name="CV")
    assert root_url(s) == "http://10.0.0.2:8091/ocpi"
    assert parties(s) == [Party("CPO", "NL", "CVS", "CV"), Party("EMSP", "NL", "CVS", "CV")]
    assert plays(s, "EMSP") and not plays(s, "HUB")
    assert is_us(s, "nl", "Cvs") and not is_us(s, "NL", "CVE") and not is_us(s, None, None)


def test_an_unknown_role_is_named() -> None:
    with pytest.raises(ValueError, match="CV_OCPI_ROLES: unknown role 'CPOO'"):
        parties(Settings(ocpi_roles="CPOO,EMSP"))


def test_with_ocpi_makes_another_platform_and_leaves_the_original() -> None:
    base = Settings(ocpi_platform_id="a", ocpi_party_id="AAA", postgres_dsn=SecretStr("postgresql://x@h/db"))
    other = with_ocpi(base, platform_id="b", party_id="bbb", port=9999)
    assert (other.ocpi_platform_id, other.ocpi_party_id, other.ocpi_port) == ("b", "BBB", 9999)
    assert other.postgres_dsn.get_secret_value() == "postgresql://x@h/db"  # the rest is the same stack
    assert (base.ocpi_platform_id, base.ocpi_party_id) == ("a", "AAA")
    with pytest.raises(TypeError, match="not OCPI settings: kafka_bootstrap"):
        with_ocpi(base, kafka_bootstrap="elsewhere:9092")
    with pytest.raises(ValueError):
        with_ocpi(base, port="not a port")
