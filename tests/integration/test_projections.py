"""Projection invariants (projections/base.py): offsets with rows, exactly-once application under re-delivery,
and replay from offset 0 into an empty namespace giving an identical result."""

from __future__ import annotations

import asyncio

import pytest

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import registration
from projections.base import SourcedEvent
from projections.registry import build
from projections.replay import replay
from support import wait_for

pytestmark = pytest.mark.integration


def _publish_station_history(unique: str, n: int = 3) -> None:
    p = EventProducer()

    async def go() -> None:
        for i in range(n):
            sid = f"PROJ-{unique}-{i}"
            rec, _ = registration(sid, name=sid, operator="t", latitude=1.0 + i, longitude=2.0)
            await p.publish("stations", sid, "StationRegistered", rec)
            for k, st in enumerate(("Available", "Charging", "Finishing")):
                ev = envelope(source="test", correlation_id=sid)
                ev.update(station_id=sid, connector_id=1 + k % 2, status=st, error_code="NoError", info=None,
                          vendor_error_code=None)
                await p.publish("stations", sid, "ConnectorStatusChanged", ev)
            hb = envelope(source="test", correlation_id=sid)
            hb["station_id"] = sid
            await p.publish("stations", sid, "StationHeartbeat", hb)

    asyncio.run(go())
    p.close()


def _publish_frames(unique: str, n: int = 5) -> None:
    p = EventProducer()

    async def go() -> None:
        for i in range(n):
            rec = envelope(source="test", correlation_id="conn")
            rec.update(charge_point_id=f"FR-{unique}", direction="IN", ocpp_version="ocpp1.6", connection_id="conn",
                       message_type_id=2, message_id=str(i), action="Heartbeat", raw=f'[2,"{i}","Heartbeat",{{}}]',
                       valid=True, error_code=None, error_description=None)
            await p.publish("ocpp.frames", f"FR-{unique}", "OcppFrame", rec)

    asyncio.run(go())
    p.close()


@pytest.mark.parametrize("name", ["postgres", "redis", "mongo"])
def test_replay_into_an_empty_namespace_equals_the_live_projection(platform, unique, name) -> None:  # noqa: ANN001
    if name == "mongo":
        _publish_frames(unique)
    else:
        _publish_station_history(unique)
    live = build(name)
    from chargeverse.lag import projection_lag

    consumer = {"postgres": "pg.stations", "redis": "redis.live_status", "mongo": "mongo.frame_archive"}[name]
    wait_for(f"{consumer} to catch up", lambda: projection_lag()[consumer]["total"] == 0)
    ns = f"rebuild_{unique}" if name != "redis" else f"rb{unique}"
    copy = build(name, ns)
    stats = replay(copy)
    assert stats.applied > 0 and stats.dead_letters >= 0
    assert copy.checksum() == live.checksum(), _diff(name, ns)
    # the same events again change nothing (stored offsets skip them) ...
    again = replay(copy)
    assert again.applied == 0 and copy.checksum() == live.checksum()
    # ... and a different state would be noticed: the checksum is not a constant
    copy.reset()
    assert copy.checksum() != live.checksum()


def _diff(name: str, ns: str) -> str:
    """What differs, for the failure message (Postgres only)."""
    if name != "postgres":
        return ""
    import psycopg

    from chargeverse.settings import get_settings

    out = []
    with psycopg.connect(get_settings().postgres_dsn.get_secret_value()) as conn:
        for table in ("stations", "connectors", "charge_point_credentials"):
            for a, b in (("public", ns), (ns, "public")):
                rows = conn.execute(f"SELECT * FROM {a}.{table} EXCEPT SELECT * FROM {b}.{table}").fetchall()
                out.append(f"{table} only in {a}: {rows[:5]}")
    return "\n".join(out)


def test_feeding_the_same_batch_twice_applies_it_once(stack, topics, unique) -> None:  # noqa: ANN001
    proj = build("postgres", f"twice_{unique}")
    rec, _ = registration(f"TW-{unique}", name="tw", operator="t", latitude=5.0, longitude=5.0)
    hb = envelope(source="t", correlation_id="c")
    hb["station_id"] = f"TW-{unique}"
    batch = [SourcedEvent("stations", 0, 10, "StationRegistered", rec),
             SourcedEvent("stations", 0, 11, "StationHeartbeat", hb)]
    assert proj.apply(batch) == 2
    first = proj.checksum()
    assert proj.apply(batch) == 0
    assert proj.apply(batch[:1]) == 0
    assert proj.checksum() == first
    assert proj.offsets() == {("stations", 0): 12}
    # a later event still applies
    hb2 = dict(hb, event_id="later", occurred_at=hb["occurred_at"].replace(year=2030))
    assert proj.apply([SourcedEvent("stations", 0, 12, "StationHeartbeat", hb2)]) == 1
    assert proj.checksum() != first


def test_offsets_are_written_in_the_same_transaction_as_rows(stack, topics, unique) -> None:  # noqa: ANN001
    """A batch that fails half-way leaves neither rows nor offsets behind."""
    proj = build("postgres", f"atomic_{unique}")
    rec, _ = registration(f"AT-{unique}", name="at", operator="t", latitude=5.0, longitude=5.0)
    bad = SourcedEvent("stations", 0, 1, "NoSuchEvent", dict(rec))
    with pytest.raises(ValueError):
        proj.apply([SourcedEvent("stations", 0, 0, "StationRegistered", rec), bad])
    assert proj.offsets() == {}
    assert proj.conn.execute("SELECT count(*) FROM stations").fetchone()[0] == 0


def test_a_skipped_range_is_filled_from_the_log_exactly(stack, topics, unique) -> None:  # noqa: ANN001
    """What a live agent does when its consumer skipped records: read exactly [stored offset, batch start)."""
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config

    _publish_station_history(unique, n=2)
    c = Consumer({**base_config(), "group.id": f"w-{unique}"})
    ends = {p: c.get_watermark_offsets(TopicPartition("stations", p), timeout=10)[1] for p in range(6)}
    c.close()
    part, end = max(ends.items(), key=lambda kv: kv[1])
    assert end >= 3
    proj = build("postgres", f"gap_{unique}")
    first = replay(proj, ranges={("stations", part): (0, 2)})
    assert (first.events, first.applied) == (2, 2)
    assert proj.offsets() == {("stations", part): 2}
    rest = replay(proj, ranges={("stations", part): (1, end)})  # overlapping start: offset 1 is skipped
    assert rest.applied == end - 2
    assert proj.offsets() == {("stations", part): end}


def test_a_projection_refuses_a_log_that_ends_before_its_offsets(stack, topics, unique) -> None:  # noqa: ANN001
    """If the log is replaced (a new cluster, a wiped broker) the stored offsets lie past its end, and carrying on
    would silently skip every new event below them: refuse, loudly, with the way out."""
    from projections.replay import LogReplaced, check_offsets_within_log

    proj = build("postgres", f"replaced_{unique}")
    check_offsets_within_log(proj)  # empty projection: fine
    hb = envelope(source="t", correlation_id="c")
    hb["station_id"] = f"LR-{unique}"
    proj.apply([SourcedEvent("stations", 3, 10**9, "StationHeartbeat", hb)])
    with pytest.raises(LogReplaced, match=r"stations\[3\] up to offset 1000000001"):
        check_offsets_within_log(proj)
