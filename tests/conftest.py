"""Test harness: real broker and stores, started here.

By default a fresh embedded stack (chargeverse.stack) runs for the whole test session on free ports in a throwaway
directory, so tests never touch the demo stack.  To run the same suite against real services, set
`CV_TEST_EXTERNAL=1` and the `CV_*` endpoints (e.g. a real Apache Kafka in `CV_KAFKA_BOOTSTRAP`, a real MongoDB in
`CV_MONGO_URL`).  testcontainers is used only where a Docker engine answers; here there is none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from chargeverse.settings import get_settings
from chargeverse.stack import Ports, Stack

# Property tests must judge the code, not the machine: CI machines are shared, so generation speed and per-example
# deadlines are not checked (benchmarks measure speed, bench/).
hypothesis_settings.register_profile("shared-machine", deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.load_profile("shared-machine")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _apply_env(env: dict[str, str]) -> None:
    os.environ.update(env)
    get_settings.cache_clear()
    import chargeverse.avro as avro

    avro._default = None


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack | None]:
    """The running stack (None when CV_TEST_EXTERNAL=1 points the suite at external services)."""
    if os.environ.get("CV_TEST_EXTERNAL") == "1":
        get_settings.cache_clear()
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="cv-test-stack-"))
    root.chmod(0o755)  # postgres runs as its own user and must traverse it
    st = Stack(root, Ports.free())
    try:
        _apply_env(st.up())
        yield st
    finally:
        st.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack):  # noqa: ANN001 - fixture
    return get_settings()


@pytest.fixture(scope="session")
def topics(stack) -> None:  # noqa: ANN001
    """Every catalogue topic exists with its partitions and config."""
    from chargeverse.kafka import ensure_topics

    ensure_topics()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests sharing the session stack never see each other's data."""
    return uuid.uuid4().hex[:10]


# ---- the running platform: the three services as real processes ------------------------------------------------
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402


from chargeverse import ROOT  # noqa: E402
from chargeverse.readiness import wait_healthy  # noqa: E402
from chargeverse.stack import free_port  # noqa: E402


@dataclass
class Platform:
    api: str
    ocpp: str
    worker: str
    logs: Path
    procs: dict
    urls: dict

    def restart(self, svc: str) -> None:
        """Stop a service cleanly (SIGTERM) and start it again; wait until it is ready."""
        proc, log, args, env = self.procs[svc]
        proc.terminate()
        proc.wait(60)
        with open(log, "ab") as out:
            new = subprocess.Popen([sys.executable, "-m", "chargeverse.cli", *args], env=env, cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
        self.procs[svc] = (new, log, args, env)
        wait_healthy(self.urls[svc] + ("/readyz" if svc.startswith("worker-") else "/healthz"), 90, new, log)


@pytest.fixture(scope="session")
def platform(stack, topics, tmp_path_factory) -> Iterator[Platform]:  # noqa: ANN001
    """`cv run ocpp`, `cv run api` and `cv run worker` against the test stack, on free ports."""
    from projections.postgres.migrate import connect, migrate

    with connect(get_settings().postgres_dsn.get_secret_value()) as conn:
        migrate(conn)
    from streams.registry import GROUPS

    logs = tmp_path_factory.mktemp("platform-logs")
    ports = {"ocpp": free_port(), "api": free_port(), **{f"worker-{g}": free_port() for g in GROUPS}}
    env = dict(os.environ, CV_OCPP_PORT=str(ports["ocpp"]), CV_API_PORT=str(ports["api"]),
               CV_WORKER_ID=f"cv-test-{uuid.uuid4().hex[:6]}", CV_OCPP_HEARTBEAT_INTERVAL="60",
               # card payments are tested with a processor of the test's own (test_payments.py), whose provider the
               # test can inspect; the platform's worker is invoice-only so the two never both charge a card
               CV_PAYMENTS_PROVIDER="none",
               # Plug & Charge on (tests/integration/test_pnc_flow.py); CA material is created in the test stack
               CV_PNC_ENABLED="true",
               # the forecasts processor checkpoints its models every second, so a restart test sees a checkpoint
               CV_FORECASTS_CHECKPOINT_SECONDS="1",
               # the API process runs the notifications sender, as `cv up` has it (only the API reads this)
               CV_NOTIFICATIONS_WORKER="true",
               # one API process (its default is one per core): tests read one process's caches and logs, and
               # start fast on a loaded CI host; bench/station_search.py measures several workers
               CV_API_WORKERS="1",
               # many tests register drivers from 127.0.0.1: the per-IP registration budget (10 an hour) is the
               # rate-limit test's subject (test_accounts_api.py, on its own app), not every test's obstacle
               CV_RATE_LIMITS="register.ip=100000/3600",
               # argon2id at test cost in the platform's API: registrations are setup here, not what is measured
               # (bench/login.py measures the real cost; test_accounts_api.py checks the parameters' use)
               CV_ARGON2_TIME_COST="1", CV_ARGON2_MEMORY_KIB="1024", CV_ARGON2_PARALLELISM="1")
    procs = {}
    for svc, port in ports.items():
        log = logs / f"{svc}.log"
        args = ["run", "worker", "--group", svc[7:]] if svc.startswith("worker-") else ["run", svc]
        penv = dict(env, CV_WORKER_WEB_PORT=str(port)) if svc.startswith("worker-") else env
        procs[svc] = (subprocess.Popen([sys.executable, "-m", "chargeverse.cli", *args], env=penv, cwd=ROOT,
                                       stdout=open(log, "wb"), stderr=subprocess.STDOUT), log, args, penv)
    urls = {svc: f"http://127.0.0.1:{port}" for svc, port in ports.items()}
    try:
        for svc, (proc, log, _, _) in procs.items():
            wait_healthy(urls[svc] + ("/readyz" if svc.startswith("worker-") else "/healthz"), 90, proc, log)
        plat = Platform(urls["api"], f"ws://127.0.0.1:{ports['ocpp']}/ocpp", urls["worker-processors"], logs,
                        procs, urls)
        yield plat
    finally:
        for proc, *_ in procs.values():
            proc.terminate()
        for proc, *_ in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
