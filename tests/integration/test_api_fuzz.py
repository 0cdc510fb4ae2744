"""A schema-based fuzzer (schemathesis) over the app API's OpenAPI document, against the running API: no request
may cause a 5xx, and every response must match its documented schema.  Staff tokens are used so that the
requests reach the handlers (not only the 401/403 gates, which tests/integration/test_accounts_api.py covers)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from chargeverse.tokens import issue

pytestmark = pytest.mark.integration

#: commands and session starts wait (bounded) for chargers that do not exist here: they are covered with real
#: chargers in test_ocpp_commands.py / test_money_path.py; key rotation would race the other tests' tokens
SKIP = r"^/api/(operator/chargers/.*/commands|sessions/start|admin/jwt-keys/rotate)"


def test_no_request_causes_a_server_error_or_breaks_its_schema(platform) -> None:  # noqa: ANN001
    schema = schemathesis.openapi.from_url(f"{platform.api}/openapi.json").exclude(path_regex=SKIP)
    token = issue("fuzzer", ["admin", "operator", "auditor"], ttl_seconds=900)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # valid-by-schema and invalid requests

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case) -> None:  # noqa: ANN001
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                       checks=[not_a_server_error, response_schema_conformance])

            try:
                run()
            except Unsatisfiable:
                pass  # no invalid request exists for this operation (e.g. no parameters at all)
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(exc)[:700]}")
    assert operations > 30
    assert failures == [], "\n\n".join(failures)


def test_a_nul_character_is_a_4xx_not_a_server_error(platform) -> None:  # noqa: ANN001
    """Found by the fuzzer: Postgres cannot store or compare text with NUL; the API answers 422, not 500."""
    import httpx

    token = issue("fuzzer", ["operator"], ttl_seconds=60)
    r = httpx.get(f"{platform.api}/api/sessions/history", params={"charge_point_id": "\x00m"},
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    r = httpx.post(f"{platform.api}/api/fleets", json={"name": "ok", "company": "\x00x"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (403, 422)
    assert httpx.get(f"{platform.api}/healthz").status_code == 200
