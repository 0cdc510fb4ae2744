"""Helpers shared by the OCPP CSMS tests (test_ocpp_v16_csms.py, test_ocpp_v201_csms.py, test_ocpp_security.py);
no tests here.

Chargers are registered the real way (StationRegistered on the log, projected by the running worker); the only
rows written directly are the ones whose writer is another component not wired yet, each restored afterwards:
`id_tokens` (the identity projection's table) and the proposed `revoked` / `registration_status` columns of
`charge_point_credentials` (to be filled by the stations projection from StationRegistered) — restored so the
replay-equals-live checks of tests/integration/test_projections.py still hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterator

import psycopg
import websockets

from chargeverse.kafka import EventProducer
from chargeverse.settings import Settings, get_settings
from chargeverse.simulator import ChargerSpec, connect
from chargeverse.stack import free_port
from chargeverse.stations_admin import register
from edges.ocpp.server import EdgeLimits, OcppEdge
from edges.ocpp.versions import VERSIONS
from support import events, wait_for


def dsn() -> str:
    return get_settings().postgres_dsn.get_secret_value()


def register_charger(prefix: str, unique: str, *, version: str = "ocpp1.6", profile: int = 1,
                     model: str = "SIM-22") -> ChargerSpec:
    """Register a charger through the log and wait until the credentials projection has it."""
    sid = f"{prefix}-{unique}"
    p = EventProducer()
    secret = register(p, sid, name=f"{prefix} {unique}", operator="TestNet", latitude=51.0, longitude=4.0,
                      security_profile=profile)
    p.close()
    with psycopg.connect(dsn(), autocommit=True) as conn:
        wait_for(f"{sid} projected", lambda: conn.execute(
            "SELECT 1 FROM charge_point_credentials WHERE station_id = %s", (sid,)).fetchone())
    return ChargerSpec(sid, secret if profile in (1, 2) else "", 51.0, 4.0, sid, model=model, ocpp_version=version)


@contextlib.contextmanager
def registration_override(sid: str, **cols: Any) -> Iterator[None]:
    """Stand-in for the proposed StationRegistered fields (revoked, registration_status); restored after."""
    sets = ", ".join(f"{c} = %s" for c in cols)
    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute(f"UPDATE charge_point_credentials SET {sets} WHERE station_id = %s", (*cols.values(), sid))
    try:
        yield
    finally:
        with psycopg.connect(dsn(), autocommit=True) as conn:
            conn.execute("UPDATE charge_point_credentials SET revoked = false, registration_status = 'Accepted' "
                         "WHERE station_id = %s", (sid,))


@contextlib.contextmanager
def id_tokens(*rows: tuple[str, str | None, str, datetime | None, str | None]) -> Iterator[None]:
    """Rows of the id_tokens projection (uid, type, status, valid_until, group_id), as the identity projection
    would write them; removed after."""
    now = datetime.now(timezone.utc)
    with psycopg.connect(dsn(), autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO id_tokens (uid, type, status, valid_until, group_id, account_id, updated_at) "
                            "VALUES (%s, %s, %s, %s, %s, 'ACC-test', %s)", [(*r, now) for r in rows])
    try:
        yield
    finally:
        with psycopg.connect(dsn(), autocommit=True) as conn:
            conn.execute("DELETE FROM id_tokens WHERE uid = ANY(%s)", ([r[0] for r in rows],))


def uid(tag: str) -> str:
    """A unique id token (≤ 20 characters: 1.6 idTag is CiString20)."""
    return f"{tag[:7]}-{uuid.uuid4().hex[:12]}"


def frames(sid: str) -> list[dict[str, Any]]:
    return [r for t, r in events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == sid)]


def frames_of(sid: str, etype: str) -> list[dict[str, Any]]:
    return [r for t, r in events("ocpp.frames", lambda t, r: t == etype and r["charge_point_id"] == sid)]


def wait_frames(sid: str, n_out: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(IN frames, OUT frames) of a charger once at least `n_out` answers are on the log."""
    def got() -> Any:
        fr = frames(sid)
        outs = [r for r in fr if r["direction"] == "OUT"]
        return (([r for r in fr if r["direction"] == "IN"], outs)) if len(outs) >= n_out else None
    return wait_for(f"{n_out} answers to {sid} on the log", got)


def schema_errors(version: str, action: str, answer: dict[str, Any]) -> list[str]:
    return VERSIONS[version].schemas.response_errors(action, answer)


async def raw_socket(url: str, spec: ChargerSpec, **kw: Any) -> Any:
    """A plain WebSocket as the charger (for frames the `ocpp` ChargePoint would refuse to send)."""
    import base64

    headers = {}
    if spec.secret:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()
    return await websockets.connect(f"{url}/{spec.station_id}", subprotocols=[spec.ocpp_version],
                                    additional_headers=headers, **kw)


async def exchange(ws: Any, frame: list[Any] | str) -> list[Any]:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


@contextlib.asynccontextmanager
async def charger(url: str, spec: ChargerSpec, **kw: Any) -> AsyncIterator[Any]:
    ws, cp, task = await connect(url, spec, **kw)
    try:
        yield cp
    finally:
        task.cancel()
        await ws.close()


@contextlib.asynccontextmanager
async def edge_in_process(**kw: Any) -> AsyncIterator[OcppEdge]:
    """A second OCPP edge in this process on free ports, against the test stack (for TLS, limits, leniency)."""
    overrides = {"ocpp_port": free_port(), **kw.pop("settings", {})}
    settings: Settings = get_settings().model_copy(update=overrides)
    edge = OcppEdge(settings, **kw)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop()
        edge.producer.close()


def limits(rate: float, burst: int) -> EdgeLimits:
    return EdgeLimits(rate=rate, burst=burst)
