"""The OCPP edge under load: connections held, messages answered, reconnect storms — against a bare floor.

    .venv/bin/python bench/ocpp_edge.py [--chargers 10000] [--period 10] [--seconds 60] [--quick]

Starts its own embedded stack (Kafka + Postgres on free ports), creates the topics, and writes N charger
credentials (one shared secret, its argon2id hash COPYed into the credentials projection: a fixture, not a figure).
The edge under test is `cv run ocpp` in its own process; the load generators run in other processes (this file
with --loadgen), each holding a share of the connections, so neither side steals the other's event loop.

Phases, each also run against a bare `websockets` + `json` server (this file with --bare: no validation, no
log, no auth) as the same-run floor.  All servers are up from the start; every phase starts on an emptied log
(`_truncate_log`: the embedded broker's own CPU grows with the records it holds) and once its server is idle.
1. throughput, first: 200 chargers each keep one CALL outstanding (closed loop) for 10 s: validated messages per
   second answered -- and, for the edge, published to the log before the answer -- as a ratio of the floor.  Run
   in `--rounds` rounds (3) that alternate the servers' order; the ratio printed is the median of the rounds'
   ratios (each edge round against the floor's round of the same pass), with every round's ratio after it.  Each
   server first gets one unmeasured round (`--warmup` s).
2. hold: N chargers connect, boot, then each sends a Heartbeat / StatusNotification / MeterValues mix
   (40/30/30) once every `period` seconds (random phase). Reports p50/p99 CALL->CALLRESULT latency, the server's
   CPU (share of one core) and memory per connection (RSS growth / N) over the steady part.
3. storm: N chargers connect and complete BootNotification as fast as 500 in flight allow: connections/s.
Prints ONE line. Targets (issue 8): p99 < 100 ms at 10,000 chargers (< 250 ms at 19,900); throughput >= 50% of
the floor (>= 5,000 msgs/s here).  BENCH_THREADS=1 also prints, per phase, where the CPU went: each server thread,
the broker, the load generators and the whole machine, in us per message (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789"

BOOT = {"chargePointVendor": "Bench", "chargePointModel": "Load-1"}
#: the simulated chargers offer permessage-deflate (RFC 7692) when the bench runs with --deflate
DEFLATE = os.environ.get("BENCH_OCPP_DEFLATE") == "1"


#: for diagnosis: BENCH_LATENCY_DUMP=prefix writes each load generator's (wall time, latency ms) to prefix.<first>
DUMP: list[tuple[float, float]] | None = [] if os.environ.get("BENCH_LATENCY_DUMP") else None


def _mix(rnd: random.Random, n: int) -> tuple[str, dict]:
    x = rnd.random()
    if x < 0.4:
        return "Heartbeat", {}
    if x < 0.7:
        return "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": rnd.choice(["Available", "Charging", "Preparing"])}
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": ts, "sampledValue": [
        {"value": str(1000 + n), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"}]}]}


def _raise_nofile() -> None:
    """Open-file limit up to the hard limit (20,000 here: the per-process connection ceiling of DESIGN.md §5)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- load generator (child process) ---------------------------------------------------------------------------
async def _charger(url: str, cp: str, mode: str, period: float, until: list[float], lat: list[float],
                   counts: list[int], rnd: random.Random, go: asyncio.Event) -> None:
    import websockets

    auth = base64.b64encode(f"{cp}:{SECRET}".encode()).decode()
    try:
        async with websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers={"Authorization": f"Basic {auth}"},
                                      open_timeout=60, ping_interval=None, max_queue=4,
                                      compression="deflate" if DEFLATE else None) as ws:
            await ws.send(json.dumps([2, "b", "BootNotification", BOOT]))
            await ws.recv()
            counts[0] += 1
            if mode == "storm":
                return
            n = 0
            # hold: each charger keeps its own phase on a fixed grid (next = previous slot + period, a missed slot
            # skipped), so a stall of this process sends late once but never merges the chargers' phases into
            # bursts (relative sleeps did: every charger delayed by one stall kept the same phase from then on)
            next_at = time.monotonic() + rnd.uniform(0, period)
            if mode == "hold":
                await asyncio.sleep(next_at - time.monotonic())
            else:  # throughput: everyone connected and booted first, so handshakes are not in the figure
                await go.wait()
            while time.monotonic() < until[0]:
                action, payload = _mix(rnd, n)
                n += 1
                mid = uuid.uuid4().hex[:12]
                t0 = time.perf_counter()
                await ws.send(json.dumps([2, mid, action, payload]))
                await ws.recv()
                if mode == "hold" or counts[1]:
                    lat.append((time.perf_counter() - t0) * 1000)
                    if DUMP is not None:
                        DUMP.append((time.time(), lat[-1]))
                counts[2] += 1
                if mode == "hold":
                    now = time.monotonic()
                    next_at += period
                    while next_at < now:
                        next_at += period
                    await asyncio.sleep(next_at - now)
    except Exception:  # noqa: BLE001 - counted, not fatal
        counts[3] += 1


class _GcClock:
    """The load generator's own cyclic-GC pauses (gc.callbacks): a pause here delays every answer this process is
    waiting for, and would be counted as the server's latency."""

    def __init__(self) -> None:
        import gc

        self.longest_ms = 0.0
        self.total_ms = 0.0
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._t0) * 1000
            self.longest_ms = max(self.longest_ms, ms)
            self.total_ms += ms

    def reset(self) -> None:
        self.longest_ms = self.total_ms = 0.0


async def _loadgen(url: str, ids: list[str], mode: str, period: float, seconds: float, ramp: float,
                   inflight: int) -> dict:
    import gc

    # no automatic collections in a load generator: with ~10,000 sockets one full collection pauses every charger
    # of this process for hundreds of ms (measured with _GcClock: up to 2.9 s on a busy machine), which the
    # latencies would charge to the server, and its stalls bunch the chargers' sends.  The process lives minutes.
    gc.disable()
    clock = _GcClock()
    rnd = random.Random(ids[0])
    lat: list[float] = []
    counts = [0, 0, 0, 0, len(ids)]  # connected, measuring, messages, failures, chargers
    sem = asyncio.Semaphore(inflight)
    go = asyncio.Event()
    t_start = time.monotonic()
    until = [t_start + ramp + seconds if mode == "hold" else float("inf")]

    async def one(i: int, cp: str) -> None:
        if mode == "hold":
            await asyncio.sleep(ramp * i / len(ids))
        async with sem if mode == "storm" else _Null():
            await _charger(url, cp, mode, period, until, lat, counts, rnd, go)

    tasks = [asyncio.create_task(one(i, cp)) for i, cp in enumerate(ids)]
    if mode == "hold":
        await asyncio.sleep(ramp + min(period, seconds / 3))
    elif mode == "throughput":
        while counts[0] + counts[3] < len(ids) and time.monotonic() - t_start < 120:
            await asyncio.sleep(0.05)
        until[0] = time.monotonic() + seconds
        go.set()
    if mode != "storm":
        lat.clear()  # steady state only
        counts[1] = 1
        counts[2] = 0
        clock.reset()
    t_measure = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - (t_start if mode == "storm" else t_measure)
    return {"lat": lat, "connected": counts[0], "messages": counts[2], "failures": counts[3],
            "seconds": elapsed, "gc_ms": clock.longest_ms}


class _Null:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *a: object) -> None:
        return None


def loadgen_main(a: argparse.Namespace) -> None:
    _raise_nofile()
    ids = [f"BENCH{i:06d}" for i in range(a.first, a.first + a.count)]
    out = asyncio.run(_loadgen(a.url, ids, a.mode, a.period, a.seconds, a.ramp, 500))
    if DUMP and a.mode == "hold":
        Path(f"{os.environ['BENCH_LATENCY_DUMP']}.{a.first}").write_text("".join(f"{w:.3f} {ms:.1f}\n" for w, ms in DUMP))
    print(json.dumps(out))


# ---- bare floor server (child process) -------------------------------------------------------------------------
def bare_main(a: argparse.Namespace) -> None:
    import gc

    import websockets
    from websockets.asyncio.server import serve

    _raise_nofile()

    async def handler(ws) -> None:  # noqa: ANN001
        try:
            async for msg in ws:
                f = json.loads(msg)
                action = f[2]
                body = {"currentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ")} if action in (
                    "Heartbeat",) else {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z",
                                        "interval": 300} if action == "BootNotification" else {}
                await ws.send(json.dumps([3, f[1], body]))
        except websockets.ConnectionClosed:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", a.port, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                         ping_interval=None, compression=None, max_size=65536):
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            await asyncio.Future()

    asyncio.run(main())


# ---- orchestration ---------------------------------------------------------------------------------------------
def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _thread_cpu(pid: int) -> dict[str, tuple[str, float, float]]:
    """user and system CPU seconds of each thread of a process, by thread id"""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = Path(f"/proc/{pid}/task/{t}/stat").read_text()
        except FileNotFoundError:
            continue
        f = s.rsplit(")", 1)[1].split()
        out[t] = (s[s.index("(") + 1:s.rindex(")")], int(f[11]) / tick, int(f[12]) / tick)
    return out


def _system_cpu() -> tuple[float, float]:
    """busy and idle CPU seconds of the whole machine (/proc/stat)"""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / tick, idle / tick


def _lg_us(before: object, messages: int) -> float:
    """CPU of the load generator processes (children waited for since `before`) per message"""
    import resource

    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    was = before.ru_utime + before.ru_stime  # type: ignore[attr-defined]
    return (now.ru_utime + now.ru_stime - was) / max(messages, 1) * 1e6


def _thread_report(pid: int, before: dict, messages: int) -> str:
    """Per-thread CPU of the server over a phase, in us per message: which thread the cost is in"""
    rows: dict[str, list[float]] = {}
    for t, (name, u, s) in _thread_cpu(pid).items():
        if t in before:
            r = rows.setdefault("main" if t == str(pid) else name if name.startswith("rdk") else f"{name}:{t}",
                                [0.0, 0.0])
            r[0] += u - before[t][1]
            r[1] += s - before[t][2]
    per = 1e6 / max(messages, 1)
    return " ".join(f"{n}={u * per:.0f}+{s * per:.0f}sys"
                    for n, (u, s) in sorted(rows.items(), key=lambda kv: -sum(kv[1])) if u + s > 0.01)


def _run_loadgens(url: str, n: int, mode: str, period: float, seconds: float, ramp: float, procs: int,
                  server_pid: int) -> dict:
    per = (n + procs - 1) // procs
    children = []
    for k in range(procs):
        first, count = k * per, min(per, n - k * per)
        if count <= 0:
            break
        children.append(subprocess.Popen(
            [sys.executable, __file__, "--loadgen", "--url", url, "--first", str(first), "--count", str(count),
             "--mode", mode, "--period", str(period), "--seconds", str(seconds), "--ramp", str(ramp)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    cpu0, t0 = None, None
    cpu_start = _proc_cpu(server_pid)
    # BENCH_THREADS=1: where the CPU of a phase goes (server threads, broker, load generators, whole machine)
    threads0 = _thread_cpu(server_pid) if os.environ.get("BENCH_THREADS") else None
    sys0 = _system_cpu()
    brokers = subprocess.run(["pgrep", "-x", "noida-db"], capture_output=True, text=True).stdout.split() \
        if threads0 is not None else []
    broker0 = sum(_proc_cpu(int(p)) for p in brokers)
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if mode == "hold":
        time.sleep(ramp + min(period, seconds / 3))
        cpu0, t0 = _proc_cpu(server_pid), time.monotonic()
    outs = [json.loads(c.communicate()[0] or b"{}") for c in children]
    res = {"lat": [x for o in outs for x in o.get("lat", [])],
           "connected": sum(o.get("connected", 0) for o in outs),
           "messages": sum(o.get("messages", 0) for o in outs),
           "failures": sum(o.get("failures", 0) for o in outs),
           "seconds": max((o.get("seconds", 0) for o in outs), default=0),
           "gc_ms": max((o.get("gc_ms", 0) for o in outs), default=0)}
    res["cpu_s"] = _proc_cpu(server_pid) - cpu_start  # server CPU seconds over the whole phase
    if threads0 is not None:
        busy, idle = (b - a for a, b in zip(sys0, _system_cpu()))
        # per message answered; for the storm, per connection (its only message is the BootNotification)
        n = res["messages"] if mode != "storm" else res["connected"]
        per, unit = 1e6 / max(n, 1), "us/msg" if mode != "storm" else "us/conn"
        print(f"{mode}: server threads ({unit} user+sys) {_thread_report(server_pid, threads0, n)}"
              f" | broker {(sum(_proc_cpu(int(p)) for p in brokers) - broker0) * per:.0f}{unit}"
              f" | load generators {_lg_us(ru0, n):.0f}{unit}"
              f" | machine {busy * per:.0f}{unit} busy, idle {idle / max(busy + idle, 1e-9):.0%}",
              file=sys.stderr, flush=True)
    if cpu0 is not None:
        res["cpu"] = (_proc_cpu(server_pid) - cpu0) / (time.monotonic() - t0)
        res["rss"] = _proc_rss(server_pid)
    return res


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _settle(pid: int, limit: float = 30.0) -> None:
    """Wait until the server has finished with the previous phase (closing thousands of sockets, publishing their
    disconnections) -- its CPU over one second below 15 % of a core, at most `limit` s -- so a phase's figure is
    not charged with the previous phase's clean-up."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        c0 = _proc_cpu(pid)
        time.sleep(1.0)
        if _proc_cpu(pid) - c0 < 0.15:
            return


def _truncate_log(bootstrap: str) -> None:
    """Delete every record on the broker (DeleteRecords up to each partition's end) before a measured phase.

    Why: the embedded broker's own CPU grows with the data it holds, busy or idle (it re-writes a snapshot of its
    log; measured: 8% of a core idle at 50,000 records, 46% at 200,000, 8% again once the records are deleted).
    Without this a phase is charged with the records of the phases -- and the servers -- measured before it: that
    was the "second server in one run is 15-20% slower" and "slower after the hold phase" of earlier sessions."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-truncate", "enable.auto.commit": False})
    try:
        tps = []
        for name, meta in admin.list_topics(timeout=10).topics.items():
            if name.startswith("__"):
                continue
            for part in meta.partitions:
                hi = c.get_watermark_offsets(TopicPartition(name, part), timeout=10)[1]
                if hi > 0:
                    tps.append(TopicPartition(name, part, hi))
        if tps:
            for f in admin.delete_records(tps).values():
                f.result()
    finally:
        c.close()


def _measure(url: str, pid: int, a: argparse.Namespace, phase: str, bootstrap: str) -> dict:
    """One phase against one server, on an emptied log, once the server is idle."""
    if phase not in a.phases:
        return {"lat": [], "connected": 0, "messages": 0, "failures": 0, "seconds": 0}
    _truncate_log(bootstrap)
    _settle(pid)
    if phase == "hold":
        return _run_loadgens(url, a.chargers, "hold", a.period, a.seconds, a.ramp, a.procs, pid)
    if phase == "throughput":
        return _run_loadgens(url, a.closed_loop, "throughput", 0, a.thr_seconds, 0, 2, pid)
    return _run_loadgens(url, a.chargers, "storm", 0, 0, 0, a.procs, pid)


def _figures(hold: dict, thr: list[dict], storm: dict, rss_idle: int) -> dict:
    rates = [t["messages"] / t["seconds"] if t["seconds"] else 0 for t in thr]
    msgs = sum(t["messages"] for t in thr)
    return {
        "p50": pct(hold["lat"], 0.5), "p99": pct(hold["lat"], 0.99), "held": hold["connected"],
        "lg_gc": hold.get("gc_ms", 0),
        "fail": hold["failures"] + storm["failures"] + sum(t["failures"] for t in thr), "cpu": hold.get("cpu", 0),
        "kb_per_conn": max(0, hold.get("rss", 0) - rss_idle) / 1024 / max(1, hold["connected"]),
        "rates": rates,
        "msgs_s": sorted(rates)[len(rates) // 2] if rates else 0,  # the median round
        "storm_s": storm["connected"] / storm["seconds"] if storm["seconds"] else 0,
        # server CPU per closed-loop message (the rounds' handshakes included) and per storm connection:
        # less sensitive than the rates to other processes on a shared machine
        "us_msg": sum(t.get("cpu_s", 0) for t in thr) / msgs * 1e6 if msgs else 0,
        "us_conn": storm.get("cpu_s", 0) / storm["connected"] * 1e6 if storm["connected"] else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=10_000)
    ap.add_argument("--period", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ramp", type=float, default=20, help="seconds over which the chargers connect")
    ap.add_argument("--procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--quick", action="store_true", help="1,000 chargers, 20 s")
    ap.add_argument("--closed-loop", type=int, default=200, help="chargers in the throughput phase")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per server (alternating order)")
    ap.add_argument("--thr-seconds", type=float, default=10, help="length of one throughput round")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of the unmeasured throughput round per server")
    ap.add_argument("--phases", default="hold,throughput,storm", help="for profiling: a subset of the phases")
    ap.add_argument("--profile", help="for profiling: write py-spy raw samples of the edge to this file")
    ap.add_argument("--before", metavar="TREE",
                    help="also measure the edge of another source tree (e.g. `git archive HEAD | tar -x -C TREE`) "
                         "in the same run, printed as `before:`")
    ap.add_argument("--deflate", action="store_true",
                    help="chargers offer permessage-deflate (the edge accepts it; the bare floor does not)")
    ap.add_argument("--loadgen", action="store_true")
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--port", type=int)
    ap.add_argument("--first", type=int)
    ap.add_argument("--count", type=int)
    ap.add_argument("--mode")
    a = ap.parse_args()
    if a.loadgen:
        return loadgen_main(a)
    if a.bare:
        return bare_main(a)
    if a.quick:
        a.chargers, a.seconds, a.ramp = 1000, 20, 5
    if a.deflate:
        os.environ["BENCH_OCPP_DEFLATE"] = "1"  # read by the load generator processes
    from broker_ceiling import temp_stack, use_env

    _raise_nofile()
    with temp_stack(("kafka", "postgres", "redis")) as st:
        env = st.env()
        use_env(env)
        import psycopg

        from chargeverse.kafka import ensure_topics
        from chargeverse.passwords import hash_machine_secret
        from chargeverse.settings import get_settings
        from projections.postgres.migrate import migrate

        s = get_settings()
        ensure_topics(bootstrap=s.kafka_bootstrap)
        h = hash_machine_secret(SECRET, generated=True)  # as for the secrets `cv charger` generates
        with psycopg.connect(s.postgres_dsn.get_secret_value(), autocommit=True) as conn:
            migrate(conn)
            with conn.cursor().copy("COPY charge_point_credentials (station_id, password_hash, security_profile) "
                                    "FROM STDIN") as cp:
                for i in range(max(a.chargers, a.closed_loop)):
                    cp.write_row((f"BENCH{i:06d}", h, 1))
        import redis

        kinds = ("bare", *(("before",) if a.before else ()), "edge")
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        spy = None
        try:
            for kind in kinds:
                port = _free_port()
                extra = {}
                if kind == "bare":
                    cmd = [sys.executable, __file__, "--bare", "--port", str(port)]
                elif kind == "before":  # `cv run ocpp` of the other tree (its own chargeverse, edges, schemas)
                    cmd = [sys.executable, "-c", "import sys; from chargeverse.cli import main; "
                                                 "sys.exit(main(['run', 'ocpp']))"]
                    extra = {"PYTHONPATH": str(Path(a.before).resolve())}
                else:
                    cmd = [str(ROOT / ".venv/bin/cv"), "run", "ocpp"]
                # the other tree's edge runs from that tree (`python -c` puts the working directory first on
                # sys.path)
                proc = subprocess.Popen(cmd, env={**os.environ, **env, **extra, "CV_OCPP_PORT": str(port)},
                                        cwd=a.before if kind == "before" else None,
                                        stdout=subprocess.DEVNULL, stderr=open(f"/tmp/bench-ocpp-{kind}.log", "w"),
                                        preexec_fn=_raise_nofile)
                servers[kind] = (proc, f"ws://127.0.0.1:{port}/ocpp")
                _wait_port(port)
            time.sleep(1)
            rss_idle = {k: _proc_rss(p.pid) for k, (p, _) in servers.items()}
            if a.profile:
                spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-r", "200", "-f", "raw",
                                        *(["--idle"] if os.environ.get("SPY_IDLE") else []), "-o", a.profile,
                                        "--nonblocking", "--pid", str(servers["edge"][0].pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def measure(kind: str, phase: str) -> dict:
                if phase == "storm":
                    # every server's storm starts cold: no verified-secret tags left in Redis by another server
                    r = redis.Redis.from_url(s.redis_url.get_secret_value())
                    stale = list(r.scan_iter("cv:ocpp:authok:*", count=5000))
                    for i in range(0, len(stale), 5000):
                        r.delete(*stale[i:i + 5000])
                    r.close()
                proc, url = servers[kind]
                others = {k: _proc_cpu(p.pid) for k, (p, _) in servers.items() if k != kind}
                t0 = time.monotonic()
                res = _measure(url, proc.pid, a, phase, s.kafka_bootstrap)
                if os.environ.get("BENCH_THREADS"):  # what the servers not measured cost meanwhile
                    dt = time.monotonic() - t0
                    print(f"{phase} on {kind}: idle servers " + " ".join(
                        f"{k}={(_proc_cpu(servers[k][0].pid) - c) / dt:.1%}" for k, c in others.items()),
                        file=sys.stderr, flush=True)
                return res

            # throughput first, in rounds that alternate the servers' order, so neither a server's place in the
            # run nor a slow moment of the shared machine favours one of them; each round's ratio pairs an edge
            # round with the floor's round of the same pass
            thr: dict[str, list[dict]] = {k: [] for k in kinds}
            if "throughput" in a.phases:
                for kind in kinds:  # one unmeasured round each: first connections, caches, the loop's first ticks
                    proc, url = servers[kind]
                    _truncate_log(s.kafka_bootstrap)
                    _settle(proc.pid)
                    _run_loadgens(url, a.closed_loop, "throughput", 0, a.warmup, 0, 2, proc.pid)
            for r_ in range(a.rounds):
                for kind in (kinds if r_ % 2 == 0 else tuple(reversed(kinds))):
                    thr[kind].append(measure(kind, "throughput"))
            results = {}
            for kind in kinds:
                hold = measure(kind, "hold")
                storm = measure(kind, "storm")
                results[kind] = _figures(hold, thr[kind], storm, rss_idle[kind])
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(20)
    b, e = results["bare"], results["edge"]

    def edge_figures(name: str, e: dict) -> str:
        return (f"{name}: held={e['held']} p50={e['p50']:.1f}ms p99={e['p99']:.1f}ms loadgen_gc={e['lg_gc']:.0f}ms "
                f"cpu={e['cpu']:.0%} "
                f"{e['kb_per_conn']:.1f}KB/conn {e['msgs_s']:.0f}msg/s {e['us_msg']:.0f}us/msg "
                f"storm={e['storm_s']:.0f}conn/s {e['us_conn']:.0f}us/conn fail={e['fail']}")

    def ratios(name: str, e: dict) -> str:
        per_round = sorted(x / max(y, 1) for x, y in zip(e["rates"], b["rates"]))
        return (f"{name}/bare throughput={per_round[len(per_round) // 2] if per_round else 0:.2f} "
                f"(rounds {'/'.join(f'{x:.2f}' for x in per_round)}) "
                f"storm={e['storm_s'] / max(b['storm_s'], 1):.2f}")

    before = results.get("before")
    print(f"chargers={a.chargers} period={a.period}s | {edge_figures('edge', e)} | "
          + (f"{edge_figures('before', before)} | " if before else "")
          + f"bare: held={b['held']} p50={b['p50']:.1f}ms "
          f"p99={b['p99']:.1f}ms loadgen_gc={b['lg_gc']:.0f}ms cpu={b['cpu']:.0%} {b['kb_per_conn']:.1f}KB/conn {b['msgs_s']:.0f}msg/s "
          f"{b['us_msg']:.0f}us/msg storm={b['storm_s']:.0f}conn/s {b['us_conn']:.0f}us/conn | {ratios('edge', e)}"
          + (f" | {ratios('before', before)}" if before else ""), flush=True)


if __name__ == "__main__":
    main()
