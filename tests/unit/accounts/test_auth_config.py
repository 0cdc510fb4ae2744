"""Auth settings: the defaults meet OWASP's argon2id guidance; every knob can come from settings (CV_*), and the
ones settings.py does not have yet keep their defaults."""

from __future__ import annotations

from types import SimpleNamespace

from pydantic import SecretStr

from chargeverse.ratelimit import Limit
from chargeverse.settings import Settings
from edges.api.auth import DEFAULT_LIMITS, Argon2Params, AuthConfig


def test_default_argon2_parameters_meet_owasp_and_test_parameters_do_not() -> None:
    d = Argon2Params()
    assert (d.time_cost, d.memory_kib, d.parallelism) == (3, 65536, 4)  # RFC 9106 low-memory profile
    assert d.meets_owasp()
    assert Argon2Params(2, 19456, 1).meets_owasp()  # OWASP's stated minimum
    assert Argon2Params(1, 47104, 1).meets_owasp()
    assert not Argon2Params(2, 19455, 1).meets_owasp()
    assert not Argon2Params(1, 1024, 1).meets_owasp()


def test_plain_settings_give_the_defaults() -> None:
    cfg = AuthConfig.from_settings(Settings(jwt_secret=SecretStr("x" * 32)))  # type: ignore[call-arg]
    assert cfg == AuthConfig()
    assert cfg.access_ttl_seconds == 900 and cfg.redis_prefix == "cv:auth"
    assert cfg.previous_key_seconds >= cfg.access_ttl_seconds
    assert cfg.limits == {k: Limit.parse(v) for k, v in DEFAULT_LIMITS.items()}


def test_settings_fields_override_each_knob() -> None:
    s = SimpleNamespace(jwt_access_ttl_seconds=300, jwt_previous_key_seconds=600, refresh_idle_seconds=60,
                        refresh_max_seconds=120, argon2_time_cost=2, argon2_memory_kib=19456, argon2_parallelism=1,
                        argon2_concurrency=2, auth_redis_prefix="other:auth", api_write_wait_seconds=1.5,
                        rate_limits="login.ip=5/60; refresh.account=1/1", emsp_country_code="DE",
                        emsp_party_id="ABC")
    cfg = AuthConfig.from_settings(s)  # type: ignore[arg-type]
    assert (cfg.access_ttl_seconds, cfg.previous_key_seconds, cfg.refresh_idle_seconds, cfg.refresh_max_seconds) == \
        (300, 600, 60, 120)
    assert cfg.argon2 == Argon2Params(2, 19456, 1) and cfg.hash_concurrency == 2
    assert cfg.redis_prefix == "other:auth" and cfg.write_wait_seconds == 1.5
    assert cfg.limits["login.ip"] == Limit(5, 60) and cfg.limits["refresh.account"] == Limit(1, 1)
    assert cfg.limits["login.account"] == Limit.parse(DEFAULT_LIMITS["login.account"])
    assert (cfg.contract_country, cfg.contract_provider) == ("DE", "ABC")
