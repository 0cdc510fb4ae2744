"""Empty-fetch pacing (chargeverse/fetch_backoff.py) against the real embedded broker, which answers an empty Fetch
at once instead of holding it for the max wait.

Invariants named here:
- an idle paced consumer sends a few dozen fetches a second, not thousands;
- a record produced after a long idle period is still consumed (pacing delays, never drops);
- stopping a consumer does not wait out a back-off (the failure of the first shim: a worker ignored SIGTERM);
- the platform's Faust workers, idle, stop cleanly on SIGTERM and, restarted, still project new events.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from typing import Any, Iterator

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from chargeverse import fetch_backoff
from chargeverse.kafka import EventProducer, base_config
from chargeverse.settings import get_settings
from chargeverse.stations_admin import registration
from streams.registry import GROUPS
from support import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
def paced() -> Iterator[None]:
    """The pacing as the workers install it, removed afterwards so other tests' consumers are untouched."""
    was = fetch_backoff.installed()
    assert fetch_backoff.install(fetch_backoff.DEFAULT_CAP_MS)
    try:
        yield
    finally:
        if not was:
            fetch_backoff.uninstall()


@pytest.fixture
def topic(stack) -> str:  # noqa: ANN001
    name = f"fetch-backoff-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(base_config())
    for fut in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=-1)]).values():
        fut.result(30)
    return name


async def _idle_consumer(topic: str, **kw: Any) -> tuple[AIOKafkaConsumer, list[int]]:
    """A consumer assigned to every (empty) partition of `topic`; the list counts the Fetch requests it sends."""
    c = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest", **kw)
    await c.start()
    fetches = [0]
    send = c._client.send

    async def counting(node_id: int, request: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("FetchRequest"):
            fetches[0] += 1
        return await send(node_id, request, **kwargs)

    c._client.send = counting  # type: ignore[method-assign]
    c.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    return c, fetches


async def test_an_idle_paced_consumer_does_not_spin_and_still_gets_a_late_record(paced, topic) -> None:  # noqa: ANN001
    c, fetches = await _idle_consumer(topic)
    try:
        assert await c.getmany(timeout_ms=500) == {}
        before = fetches[0]
        await asyncio.sleep(3.0)  # idle long enough for the pause to have grown to its cap
        idle = fetches[0] - before
        # at the cap a node is fetched at most 1000/cap_ms times a second; unpaced, noida-db answers thousands
        assert 0 < idle <= 3.0 * 1000 / fetch_backoff.DEFAULT_CAP_MS + 20, f"{idle} fetches in 3 s of idling"

        p = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap, acks="all")
        await p.start()
        try:
            meta = await p.send_and_wait(topic, b"late", key=b"k")
        finally:
            await p.stop()
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=200)).values():
                got += [m.value for m in msgs]
        assert got == [b"late"], f"the record produced after idling (partition {meta.partition}) was not consumed"
    finally:
        await c.stop()


async def test_stopping_a_consumer_does_not_wait_out_a_back_off(topic, monkeypatch) -> None:  # noqa: ANN001
    """A 20 s pause after the first empty answer: stop() must cancel it, not sit it out, and must not fail."""
    monkeypatch.setattr(fetch_backoff, "FIRST_WAIT_S", 20.0)
    was = fetch_backoff.installed()
    assert fetch_backoff.install(30_000)
    try:
        c, fetches = await _idle_consumer(topic, fetch_max_wait_ms=60_000)
        await c.getmany(timeout_ms=500)
        await asyncio.sleep(0.5)
        assert fetches[0] >= 1
        in_pause = fetches[0]
        await asyncio.sleep(0.5)
        assert fetches[0] == in_pause, "the fetch task is not pausing: this test would prove nothing"
        await asyncio.wait_for(c.stop(), timeout=10)  # raises TimeoutError if stop() waits for the 20 s pause
    finally:
        if not was:
            fetch_backoff.uninstall()


def test_idle_workers_stop_cleanly_on_sigterm_and_carry_on_after_a_restart(platform, unique) -> None:  # noqa: ANN001
    time.sleep(2.0)  # every worker idle, its fetch pause grown to the cap
    workers = [f"worker-{g}" for g in GROUPS]
    procs = {svc: platform.procs[svc][0] for svc in workers}
    for proc in procs.values():
        proc.terminate()
    codes = {}
    for svc, proc in procs.items():
        try:
            codes[svc] = proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[svc] = "still running 45 s after SIGTERM"
    for svc in workers:
        platform.restart(svc)  # the process is gone: this starts it again and waits until it is ready
    assert codes == {svc: 0 for svc in workers}

    time.sleep(2.0)  # idle again, then one new event: the paced projection worker must still apply it
    sid = f"FB-{unique}"
    rec, _ = registration(sid, name=sid, operator="t", latitude=51.0, longitude=4.0)
    p = EventProducer()
    try:
        p.publish_sync("stations", sid, "StationRegistered", rec)
    finally:
        p.close()
    dsn = get_settings().postgres_dsn.get_secret_value()

    def projected() -> bool:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT 1 FROM stations WHERE station_id = %s", (sid,)).fetchone() is not None

    wait_for("the station registered after the restart", projected, timeout=60)
