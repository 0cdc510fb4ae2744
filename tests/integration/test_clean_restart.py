"""Stopping and starting the embedded stack cleanly loses no event: every topic holds the same events in the same
order, and the projections are unchanged.  Runs on its own stack so the rest of the suite is undisturbed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer, ensure_topics
from chargeverse.settings import Settings
from chargeverse.stack import Ports, Stack
from chargeverse.stations_admin import registration
from projections.registry import NAMES, build
from projections.replay import replay
from support import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{k[3:].lower(): v for k, v in env.items() if k.startswith("CV_")})


def test_clean_stop_and_start_of_the_stack_loses_no_event() -> None:
    root = Path(tempfile.mkdtemp(prefix="cv-restart-"))
    root.chmod(0o755)
    st = Stack(root, Ports.free())
    try:
        env = st.up()
        s = _settings(env)
        ensure_topics(bootstrap=s.kafka_bootstrap)
        p = EventProducer(bootstrap=s.kafka_bootstrap)

        async def produce() -> None:
            for i in range(40):
                sid = f"R-{i % 8}"
                if i < 8:
                    rec, _ = registration(sid, name=sid, operator="t", latitude=50 + i, longitude=4)
                    await p.publish("stations", sid, "StationRegistered", rec)
                ev = envelope(source="t", correlation_id=sid)
                ev.update(station_id=sid, connector_id=1, status=("Available", "Charging")[i % 2],
                          error_code="NoError", info=None, vendor_error_code=None)
                await p.publish("stations", sid, "ConnectorStatusChanged", ev)
                fr = envelope(source="t", correlation_id="c")
                fr.update(charge_point_id=sid, direction="IN", ocpp_version="ocpp1.6", connection_id="c",
                          message_type_id=2, message_id=str(i), action="Heartbeat", raw=f'[2,"{i}","Heartbeat",{{}}]',
                          valid=True, error_code=None, error_description=None)
                await p.publish("ocpp.frames", sid, "OcppFrame", fr)
                if i % 10 == 0:
                    cmd = envelope(source="t", correlation_id=f"cmd-{i}")
                    cmd.update(command_id=f"cmd-{i}", charge_point_id=sid, action="Reset",
                               payload='{"type": "Soft"}', ocpp_version="ocpp1.6", requested_by="t",
                               expires_at=cmd["occurred_at"], timeout_ms=1000)
                    await p.publish("ocpp.commands", sid, "OcppCommandRequested", cmd)
                    res = envelope(source="t", correlation_id=f"cmd-{i}")
                    res.update(command_id=f"cmd-{i}", charge_point_id=sid, action="Reset", outcome="OFFLINE",
                               result=None, error_code=None, error_description="not connected", message_id=None,
                               edge_instance="t")
                    await p.publish("ocpp.commands", sid, "OcppCommandResult", res)

        asyncio.run(produce())
        p.close()
        written = ("stations", "ocpp.frames", "ocpp.commands")
        before = {t: read_topic(t, s.kafka_bootstrap) for t in written}
        assert len(before["stations"]) == 48 and len(before["ocpp.frames"]) == 40
        assert len(before["ocpp.commands"]) == 8
        for name in NAMES:
            proj = build(name, settings=s)
            applied = replay(proj, bootstrap=s.kafka_bootstrap).applied
            assert applied > 0 or not set(proj.topics) & set(written), f"{name} applied nothing"
            proj.close()  # type: ignore[attr-defined]
        # processors feed each other (stations -> forecasts -> smart charging): replay until a pass finds nothing
        # new, so the state compared across the restart is the settled one
        for _ in range(5):
            projs = [build(name, settings=s) for name in NAMES]
            progressed = sum(replay(p, from_start=False, bootstrap=s.kafka_bootstrap).applied for p in projs)
            for proj in projs:
                proj.close()  # type: ignore[attr-defined]
            if not progressed:
                break
        assert not progressed, "the processors never settled"
        sums = {}
        for name in NAMES:
            proj = build(name, settings=s)
            sums[name] = proj.checksum()
            proj.close()  # type: ignore[attr-defined]

        st.down()
        assert all(pid is None for pid in st.status().values())
        st.up()

        after = {t: read_topic(t, s.kafka_bootstrap) for t in written}
        assert after == before  # same events, same partitions, same offsets, same bytes
        for name in NAMES:
            proj = build(name, settings=s)
            assert proj.checksum() == sums[name], f"{name} projection changed across a clean restart"
            assert replay(proj, from_start=False, bootstrap=s.kafka_bootstrap).applied == 0  # offsets survived
            proj.close()  # type: ignore[attr-defined]
        # and the log carries on where it stopped
        p = EventProducer(bootstrap=s.kafka_bootstrap)
        ev = envelope(source="t", correlation_id="x")
        ev["station_id"] = "R-0"
        d = p.publish_sync("stations", "R-0", "StationHeartbeat", ev)
        p.close()
        last_before = max(o for part, o, _, _ in before["stations"] if part == d.partition)
        assert d.offset == last_before + 1
    finally:
        st.down()
        shutil.rmtree(root, ignore_errors=True)


def test_the_stack_refuses_to_start_on_a_port_another_program_holds() -> None:
    import socket

    from chargeverse.stack import StackError

    root = Path(tempfile.mkdtemp(prefix="cv-busy-"))
    root.chmod(0o755)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    ports = Ports.free()
    ports.redis = squatter.getsockname()[1]
    st = Stack(root, ports)
    try:
        with pytest.raises(StackError, match="already in use"):
            st.start("redis")
        assert st.pid("redis") is None
    finally:
        squatter.close()
        st.down()
        shutil.rmtree(root, ignore_errors=True)
