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

from chargeverse.settings import get_settings
from chargeverse.stack import Ports, Stack

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
