"""Pipeline rate: OCPP frames/s from charger sockets to the Postgres projection, as a ratio of the broker ceiling.

    .venv/bin/python bench/pipeline.py [--chargers 200] [--seconds 30] [--ceiling-messages 300000]

All in one run, on its own embedded stack (temp dir, free ports, torn down at the end):
1. broker ceiling (bench/broker_ceiling.measure: raw produce/consume of 200-byte messages) before any service runs;
2. catalogue topics, Postgres migrations, C chargers registered (StationRegistered via EventProducer; the worker
   projects their credentials);
3. `cv run worker --group G` (one per group) and `cv run ocpp` as subprocesses with the stack's CV_* settings on free ports;
4. a load generator in a separate process (multiprocessing, spawn): C plain websockets clients (HTTP Basic,
   subprotocol ocpp1.6) connect and send BootNotification, then -- once the projection has caught up -- each sends
   StatusNotification / Heartbeat CALLs (3:1) back to back, the next as soon as the previous is answered, for
   --seconds (and at most --max-calls per client);
5. each accepted CALL yields exactly one `stations` event (ConnectorStatusChanged / StationHeartbeat), so the run
   ends when the Postgres projection's stored offsets (projection_offsets, projection 'pg.stations') cover
   baseline + accepted CALLs (lag 0).
Figures: edge accept rate (CALLs answered/s during the load), pipeline rate (stations events projected per second
from the first CALL to lag 0), the pipeline rate as a ratio of the raw consume rate, and where the time goes (lag of
the processor and of the projection when the load stopped, and how long each took to drain).  Prints ONE line.
Target (issue 2): pipeline >= 30% of raw broker consume rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import measure, temp_stack, use_env  # noqa: E402

from chargeverse.readiness import wait_healthy  # noqa: E402

CV = str(Path(sys.executable).parent / "cv")
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "Finishing")


# ---- load generator (runs in its own process) --------------------------------------------------------------------
def load_generator(url: str, creds: list[tuple[str, str]], seconds: float, max_calls: int, conn: Any) -> None:
    """Connect + boot every charger, report 'ready', wait for 'go', hammer for `seconds`, report, wait 'close'."""
    import gc

    gc.freeze()
    asyncio.run(_load(url, creds, seconds, max_calls, conn))


async def _load(url: str, creds: list[tuple[str, str]], seconds: float, max_calls: int, conn: Any) -> None:
    import base64

    import websockets

    loop = asyncio.get_running_loop()

    async def open_one(cp: str, secret: str) -> Any:
        auth = base64.b64encode(f"{cp}:{secret}".encode()).decode()
        ws = await websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"],
                                      additional_headers={"Authorization": f"Basic {auth}"},
                                      open_timeout=60, ping_interval=None, compression=None, max_queue=None)
        await ws.send(json.dumps([2, "boot", "BootNotification", {
            "chargePointVendor": "chargeverse-bench", "chargePointModel": "LOAD-1",
            "chargePointSerialNumber": f"SN-{cp}", "firmwareVersion": "1.0.0"}]))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if reply[0] != 3:
            raise RuntimeError(f"{cp}: BootNotification answered {reply}")
        return ws

    sem = asyncio.Semaphore(50)  # bounded connect concurrency

    async def guarded(cp: str, secret: str) -> Any:
        async with sem:
            return await open_one(cp, secret)

    socks = await asyncio.gather(*(guarded(cp, s) for cp, s in creds))
    conn.send(("ready", len(socks)))
    await loop.run_in_executor(None, conn.recv)  # "go"

    accepted = errors = 0
    lat: list[float] = []
    t_go = time.time()
    end = loop.time() + seconds

    async def hammer(i: int, ws: Any) -> None:
        nonlocal accepted, errors
        for k in range(max_calls):
            if loop.time() >= end:
                return
            if k % 4 == 3:
                frame = [2, f"m{k}", "Heartbeat", {}]
            else:
                frame = [2, f"m{k}", "StatusNotification", {
                    "connectorId": k % 3, "errorCode": "NoError", "status": STATUSES[(i + k) % len(STATUSES)],
                    "timestamp": "2025-01-06T06:00:00Z"}]
            t = loop.time()
            await ws.send(json.dumps(frame))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
            lat.append(loop.time() - t)
            if reply[0] == 3:
                accepted += 1
            else:
                errors += 1

    await asyncio.gather(*(hammer(i, ws) for i, ws in enumerate(socks)))
    t_end = time.time()
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: 0.0)
    conn.send(("done", {"accepted": accepted, "errors": errors, "t_go": t_go, "t_end": t_end,
                        "p50_ms": pct(0.5), "p99_ms": pct(0.99)}))
    await loop.run_in_executor(None, conn.recv)  # "close"
    await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)


# ---- the measuring side ------------------------------------------------------------------------------------------
class Probe:
    """Reads high watermarks and the Postgres projection's stored offsets."""

    def __init__(self, bootstrap: str, dsn: str) -> None:
        from confluent_kafka import Consumer

        from projections.postgres.migrate import connect

        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-probe-{uuid.uuid4().hex[:6]}",
                           "enable.auto.commit": False, "log.connection.close": False})
        self.pg = connect(dsn, autocommit=True)

    def hw(self, topic: str) -> int:
        from confluent_kafka import TopicPartition

        md = self.c.list_topics(topic, timeout=10)
        return sum(self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                   for p in md.topics[topic].partitions)

    def projected(self) -> int:
        row = self.pg.execute("SELECT coalesce(sum(next_offset), 0) FROM projection_offsets "
                              "WHERE projection = 'pg.stations' AND topic = 'stations'").fetchone()
        return int(row[0])

    def wait(self, what: str, fn: Any, timeout: float, every: float = 0.05) -> float:
        """Poll until fn() is truthy; return the wall-clock time it became so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fn():
                return time.time()
            time.sleep(every)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    def close(self) -> None:
        self.c.close()
        self.pg.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chargers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-calls", type=int, default=100_000, help="per charger, bounds the load")
    ap.add_argument("--ceiling-messages", type=int, default=300_000)
    ap.add_argument("--drain-timeout", type=float, default=150.0)
    a = ap.parse_args()

    procs: list[subprocess.Popen] = []
    loadgen = None
    with temp_stack() as st:
        env = st.env()
        use_env(env)
        from chargeverse.kafka import EventProducer, ensure_topics
        from chargeverse.stack import free_port
        from chargeverse.stations_admin import registration
        from projections.postgres.migrate import connect, migrate

        bootstrap, dsn = env["CV_KAFKA_BOOTSTRAP"], env["CV_POSTGRES_DSN"]
        ceiling = measure(bootstrap, a.ceiling_messages)  # before any service competes for the CPU
        ensure_topics(bootstrap=bootstrap)
        with connect(dsn) as c:
            migrate(c)

        # chargers: StationRegistered on the log (the worker projects their credentials)
        producer = EventProducer(bootstrap)
        creds = []
        for i in range(a.chargers):
            cp = f"LOAD-{i:05d}"
            rec, secret = registration(cp, name=f"Load {i}", operator="bench", latitude=48.8 + i * 1e-4,
                                       longitude=2.3, source="bench")
            producer.publish_sync("stations", cp, "StationRegistered", rec)
            creds.append((cp, secret))
        producer.close()
        del producer

        from streams.registry import GROUPS

        ports = {"ocpp": free_port(), **{f"worker-{g}": free_port() for g in GROUPS}}
        penv = dict(os.environ, **env, CV_OCPP_PORT=str(ports["ocpp"]),
                    CV_WORKER_ID=f"bench-worker-{uuid.uuid4().hex[:6]}", CV_OCPP_HEARTBEAT_INTERVAL="300")
        logs = st.root / "bench-logs"
        logs.mkdir()
        probe = Probe(bootstrap, dsn)
        try:
            # one process per worker group, as `cv up` runs them
            for svc, port in ports.items():
                log = logs / f"{svc}.log"
                args = ["run", "worker", "--group", svc[7:]] if svc.startswith("worker-") else ["run", svc]
                procs.append(subprocess.Popen([CV, *args], env=dict(penv, CV_WORKER_WEB_PORT=str(port)),
                                              cwd=st.root, stdin=subprocess.DEVNULL,
                                              stdout=open(log, "wb"), stderr=subprocess.STDOUT))
            for proc, (svc, port) in zip(procs, ports.items()):
                path = "/readyz" if svc.startswith("worker-") else "/healthz"
                wait_healthy(f"http://127.0.0.1:{port}{path}", 120, proc, logs / f"{svc}.log")
            probe.wait("charger credentials projected", lambda: probe.projected() >= a.chargers, 120)

            # load generator: connect + boot, then wait until everything so far is projected (the baseline)
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            loadgen = ctx.Process(target=load_generator, daemon=True,
                                  args=(f"ws://127.0.0.1:{ports['ocpp']}/ocpp", creds, a.seconds, a.max_calls, child))
            loadgen.start()
            if not parent.poll(180):
                raise RuntimeError("load generator did not connect its chargers within 180 s")
            tag, n_conn = parent.recv()
            # CONNECTED + StationBooted per charger must be projected before the timed phase
            probe.wait("boot events projected", lambda: probe.projected() >= a.chargers * 3
                       and probe.projected() == probe.hw("stations"), 120)
            base_proj, base_frames = probe.projected(), probe.hw("ocpp.frames")

            parent.send("go")
            samples = []  # (t, frames hw, stations hw, projected) once a second during the load
            deadline = time.monotonic() + a.seconds + 120
            while not parent.poll(1.0):
                samples.append((time.time(), probe.hw("ocpp.frames"), probe.hw("stations"), probe.projected()))
                if time.monotonic() > deadline:
                    raise RuntimeError("load generator did not finish in time")
            tag, res = parent.recv()
            # at the moment the load stopped: what the edge had written, the processor emitted, Postgres applied
            t_stop = time.time()
            stop_frames, stop_st, stop_proj = probe.hw("ocpp.frames"), probe.hw("stations"), probe.projected()
            target_st = base_proj + res["accepted"]
            t_proc = probe.wait("processor output", lambda: probe.hw("stations") >= target_st, a.drain_timeout, 0.05)
            t_done = probe.wait("projection lag 0", lambda: probe.projected() >= target_st, a.drain_timeout, 0.02)
            parent.send("close")
            loadgen.join(30)
        finally:
            probe.close()
            if loadgen is not None and loadgen.is_alive():
                loadgen.terminate()
                loadgen.join(10)
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)

    acc, load_s = res["accepted"], res["t_end"] - res["t_go"]
    edge_rate = acc / load_s
    pipe_s = t_done - res["t_go"]
    pipe_rate = acc / pipe_s
    frames_rate = (stop_frames - base_frames) / load_s
    # steady-state projection rate while the load ran: over the sampled window (first to last sample)
    if len(samples) >= 3:
        (t0, _, _, p0), (t1, _, _, p1) = samples[0], samples[-1]
        proj_live = (p1 - p0) / (t1 - t0)
    else:
        proj_live = float("nan")
    raw = ceiling["consume_msgs_s"]
    ratio = pipe_rate / raw
    verdict = "MET" if ratio >= 0.30 else "NOT MET"
    print(f"pipeline {a.chargers} chargers x {a.seconds:.0f} s: edge accepted {acc:,} CALLs ({res['errors']} errors) "
          f"= {edge_rate:,.0f} CALL/s (p50 {res['p50_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms; {frames_rate:,.0f} "
          f"frames/s on ocpp.frames) | lag when load stopped: processor {max(0, target_st - stop_st):,} ev, "
          f"projection {max(0, target_st - stop_proj):,} ev; drained in {max(0.0, t_proc - t_stop):.1f} s / "
          f"{max(0.0, t_done - t_stop):.1f} s | projection live {proj_live:,.0f} ev/s | pipeline {pipe_rate:,.0f} "
          f"stations ev/s to Postgres lag 0 | broker ceiling: produce {ceiling['produce_msgs_s']:,.0f} msg/s, consume "
          f"{raw:,.0f} msg/s | pipeline/raw consume = {ratio:.2%} (target >= 30%: {verdict})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
