"""Commands across edge instances (DESIGN.md §7, charge-point affinity), all real: `cv run ocpp` (the platform's
edge) and a second OcppEdge in this process share the test stack; a charger connected to the second one gets the
commands published through the operator API, and exactly one outcome is recorded per command (the Redis claim),
though both edges read every command.  Once the charger is gone its route goes with it and a new command is
OFFLINE."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis

from chargeverse.settings import get_settings
from chargeverse.simulator import boot
from edges.ocpp.dispatch import ROUTE_PREFIX
from support import events
from test_ocpp_commands_v16 import command, results_of
from test_ocpp_support import charger, edge_in_process, register_charger

pytestmark = pytest.mark.integration


async def test_a_command_reaches_the_instance_holding_the_charger_once_and_is_offline_after_it_left(
        platform) -> None:  # noqa: ANN001
    spec = register_charger("ROUTE", uuid.uuid4().hex[:10])
    r = redis.Redis.from_url(get_settings().redis_url.get_secret_value(), decode_responses=True)
    async with edge_in_process() as second:
        async with charger(f"ws://127.0.0.1:{second.port}/ocpp", spec) as cp:
            await boot(cp, spec)
            for _ in range(50):  # routes are written in batches (every 0.2 s): wait without blocking the loop
                if r.get(ROUTE_PREFIX + spec.station_id) == second.instance:
                    break
                await asyncio.sleep(0.1)
            assert r.get(ROUTE_PREFIX + spec.station_id) == second.instance
            got = await command(platform.api, spec.station_id, "Reset", {"type": "Hard"}, timeout_s=2)
            assert got["outcome"] == "RESULT" and got["result"] == {"status": "Accepted"}, got
            assert cp.received == [("Reset", {"type": "Hard"})]
            # the platform's edge, which does not hold the charger, waits the command's timeout (+5 s) before it
            # would record the command OFFLINE for a dead holder; by then the claim is taken, so it records nothing
            await asyncio.sleep(2 + 5 + 2)
            [res] = results_of(got["command_id"])
            assert res["edge_instance"] == second.instance and res["outcome"] == "RESULT"
            calls = [f for _, f in events("ocpp.frames", lambda t, f: t == "OcppFrame"
                                          and f["charge_point_id"] == spec.station_id and f["action"] == "Reset")]
            assert [(f["direction"], f["message_type_id"]) for f in calls] == [("OUT", 2), ("IN", 3)]
            assert json.loads(calls[1]["raw"])[2] == {"status": "Accepted"}
        for _ in range(100):  # the edge runs in this loop: wait without blocking it
            if r.get(ROUTE_PREFIX + spec.station_id) is None:
                break
            await asyncio.sleep(0.1)
        assert r.get(ROUTE_PREFIX + spec.station_id) is None, "the route outlived the connection"
        gone = await command(platform.api, spec.station_id, "Reset", {"type": "Soft"}, timeout_s=2)
        assert gone["outcome"] == "OFFLINE", gone
        assert len(results_of(gone["command_id"])) == 1
        assert [a for a, _ in cp.received] == ["Reset"]  # the second command never reached it
    r.close()


async def test_a_poison_message_at_the_end_of_the_commands_log_does_not_stall_a_starting_edge(platform) -> None:  # noqa: ANN001,E501
    """An edge starts by catching up on recent commands and holds what it reads until it has caught up; an
    undecodable message as the newest of a partition (the bad-input tests write such bytes) must still count as
    read, or every later command waits in the catch-up backlog for ever (seen: CertificateSigned never sent)."""
    from confluent_kafka import Producer

    from chargeverse.kafka import base_config
    from chargeverse.topics import OCPP_COMMANDS

    junk = Producer(base_config())
    for partition in range(OCPP_COMMANDS.partitions):
        junk.produce(OCPP_COMMANDS.name, value=b"NOT AN EVENT", key=b"poison", partition=partition)
    assert junk.flush(30) == 0
    spec = register_charger("POISON", uuid.uuid4().hex[:10])
    r = redis.Redis.from_url(get_settings().redis_url.get_secret_value(), decode_responses=True)
    async with edge_in_process() as edge:
        assert await edge.dispatcher.wait_caught_up(30), "the edge never caught up past the poison messages"
        async with charger(f"ws://127.0.0.1:{edge.port}/ocpp", spec) as cp:
            await boot(cp, spec)
            for _ in range(50):
                if r.get(ROUTE_PREFIX + spec.station_id) == edge.instance:
                    break
                await asyncio.sleep(0.1)
            got = await command(platform.api, spec.station_id, "Reset", {"type": "Soft"}, timeout_s=5)
            assert got["outcome"] == "RESULT" and cp.received == [("Reset", {"type": "Soft"})], got
    r.close()
