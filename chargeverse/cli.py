"""`cv`: the operator's and analyst's command line.  `cv --help` lists everything; README.md shows the common
ones."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chargeverse import ROOT

SERVICES = ("ocpp", "api", "ocpi", "worker")


def _processes() -> list[tuple[str, list[str], dict[str, str], str]]:
    """(name, `cv` arguments, extra env, health URL) of every background service `cv up` runs."""
    from streams.registry import GROUPS

    s = _settings()
    out = [("ocpp", ["run", "ocpp"], {}, f"http://{s.ocpp_host}:{s.ocpp_port}/healthz"),
           # the API runs the notifications sender (streams/notifications/worker.py)
           ("api", ["run", "api"], {"CV_NOTIFICATIONS_WORKER": "true"}, f"http://{s.api_host}:{s.api_port}/healthz")]
    # the OCPI edge runs its commands worker in-process (one per platform: it keeps pending commands in memory),
    # and its push worker (CPO role: our objects to eMSPs; one per platform)
    out.append(("ocpi", ["run", "ocpi"], {"CV_OCPI_COMMANDS_WORKER": "true", "CV_OCPI_PUSH_WORKER": "true"},
                f"http://{s.ocpi_host}:{s.ocpi_port}/healthz"))
    for i, g in enumerate(GROUPS):
        port = s.worker_web_port + i
        out.append((f"worker-{g}", ["run", "worker", "--group", g], {"CV_WORKER_WEB_PORT": str(port)},
                    f"http://127.0.0.1:{port}/healthz"))
    return out


def _settings():  # noqa: ANN202 - imported late so `cv stack up` works before the env file exists
    from chargeverse.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _stack():  # noqa: ANN202
    from chargeverse.stack import Ports, Stack

    s = _settings()
    return Stack(Path(s.stack_dir), Ports(s.stack_kafka_port, s.stack_postgres_port, s.stack_redis_port,
                                          s.stack_mongo_port))


# ---- stack, topics, db ---------------------------------------------------------------------------------------
def cmd_stack(a: argparse.Namespace) -> int:
    st = _stack()
    if a.action == "up":
        env = st.up()
        print(f"stack up in {st.root}: kafka {env['CV_KAFKA_BOOTSTRAP']}, postgres :{st.ports.postgres}, "
              f"redis :{st.ports.redis}, mongo :{st.ports.mongo}")
    elif a.action == "down":
        st.down()
        print("stack stopped cleanly")
    elif a.action == "status":
        for name, pid in st.status().items():
            print(f"{name:9} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


def cmd_topics(a: argparse.Namespace) -> int:
    from chargeverse.kafka import ensure_topics
    from chargeverse.topics import CATALOGUE

    if a.action == "create":
        created = ensure_topics()
        print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")
    else:
        for t in CATALOGUE:
            print(f"{t.name:14} key={t.key:22} partitions={t.partitions} cleanup={t.cleanup_policy:7} "
                  f"retention={'forever' if t.retention_ms < 0 else t.retention_ms} events={','.join(t.events)}")
    return 0


def cmd_db(a: argparse.Namespace) -> int:
    from projections.postgres.migrate import connect, migrate

    with connect(_settings().postgres_dsn.get_secret_value()) as conn:
        applied = migrate(conn, a.schema)
    print(f"applied {len(applied)} migrations to {a.schema}: {', '.join(applied) or '(none pending)'}")
    return 0


def cmd_flow(a: argparse.Namespace) -> int:
    from chargeverse.topics import CATALOGUE
    from streams.registry import CONSUMERS, EDGE_WORKERS

    everyone = (*CONSUMERS, *EDGE_WORKERS)
    for t in CATALOGUE:
        readers = [c.name for c in everyone if t.name in c.consumes]
        writers = [c.name for c in everyone if t.name in c.produces]
        writers = (["edges"] if t.source else []) + writers
        print(f"{t.name:14} <- {', '.join(writers) or '-'}   -> {', '.join(readers) or '-'}")
    return 0


# ---- services --------------------------------------------------------------------------------------------------
def cmd_run(a: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.service == "ocpp":
        from edges.ocpp.server import main as ocpp_main

        ocpp_main()  # on uvloop unless CV_OCPP_UVLOOP=false
    elif a.service == "api":
        import uvicorn

        s = _settings()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = s.api_workers or cores
        # uvloop and httptools by name (both are dependencies): uvicorn's "auto" would fall back to asyncio and h11
        # silently, at 1.7x the server CPU per request (0.67 against 0.39 ms for GET /healthz, 2026-11-27)
        opts = dict(host=s.api_host, port=s.api_port, log_level="info", loop="uvloop", http="httptools",
                    access_log=s.api_access_log)
        if workers <= 1:
            from edges.api.app import create_app

            uvicorn.run(create_app(s), **opts)
        else:  # each worker process builds its own app from the same settings (environment, stack env file) and
            from edges.api.workers import serve  # listens on its own SO_REUSEPORT socket (why: edges/api/workers.py)

            return serve(workers, opts)
    elif a.service == "ocpi":
        from edges.ocpi.app import run as run_ocpi

        run_ocpi()
    elif a.service == "worker":
        if a.group:
            os.environ["CV_WORKER_GROUP"] = a.group
            _settings()
        from streams.app import app

        sys.argv = ["cv", "worker", "--loglevel", "INFO"]
        app.main()
    return 0


def _run_dir() -> Path:
    d = Path(_settings().stack_dir) / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    log = open(_run_dir() / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=ROOT, env=dict(os.environ, **(env or {})))
    (_run_dir() / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def cmd_up(a: argparse.Namespace) -> int:
    """Everything, in the background: the stack, topics, migrations, the three services (and demo chargers)."""
    st = _stack()
    st.up()
    s = _settings()
    cmd_topics(argparse.Namespace(action="create"))
    cmd_db(argparse.Namespace(schema="public"))
    exe = [sys.executable, "-m", "chargeverse.cli"]
    procs = _processes()
    for name, args, env, _ in procs:
        pid_file = _run_dir() / f"{name}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            continue
        _spawn(name, [*exe, *args], env)
    from chargeverse.readiness import NotReady, wait_healthy

    for svc, _, _, url in procs:
        try:
            wait_healthy(url, 180)  # a loaded CI host has taken over 90 s to start a worker
        except NotReady:
            log_file = _run_dir() / (svc + ".log")
            tail = log_file.read_text(errors="replace").splitlines()[-20:] if log_file.exists() else []
            print(f"{svc} did not become healthy; see {log_file}; its last lines:", *tail, sep="\n",
                  file=sys.stderr)
            return 1
    if a.demo:
        _spawn("demo", [*exe, "demo", "--chargers", str(a.demo), "--duration", str(a.demo_duration)])
    from chargeverse.tokens import issue

    token = issue("demo-operator", ["operator"], ttl_seconds=12 * 3600, settings=s)
    print(f"""
chargeverse is running (stack data and logs in {s.stack_dir}).
  API            http://{s.api_host}:{s.api_port}/api/stations?near=52.37,4.89&radius=20000
  OpenAPI docs   http://{s.api_host}:{s.api_port}/docs
  OCPP endpoint  ws://{s.ocpp_host}:{s.ocpp_port}/ocpp/{{chargePointId}}   (OCPP 1.6-J and 2.0.1, HTTP Basic)
  worker health  http://127.0.0.1:{s.worker_web_port}/lag
  demo token     {token}
Try:
  curl -H "Authorization: Bearer $(.venv/bin/cv token issue --role operator)" \\
       'http://{s.api_host}:{s.api_port}/api/stations?near=52.37,4.89&radius=20000'
  .venv/bin/cv tail ocpp.frames --limit 5      .venv/bin/cv lag      .venv/bin/cv down
""")
    return 0


def _alive(pid: int) -> bool:
    from chargeverse.stack import _pid_alive

    return _pid_alive(pid)


def cmd_down(a: argparse.Namespace) -> int:
    for name in ("demo", *reversed([p[0] for p in _processes()]), *SERVICES):
        f = _run_dir() / f"{name}.pid"
        if not f.exists():
            continue
        pid = int(f.read_text())
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        f.unlink()
    _stack().down()
    print("chargeverse stopped cleanly (the log and the stores are kept; `cv up` resumes)")
    return 0


# ---- demo ------------------------------------------------------------------------------------------------------
def cmd_demo(a: argparse.Namespace) -> int:
    from chargeverse.kafka import EventProducer
    from chargeverse.simulator import ChargerSpec, run_charger
    from chargeverse.stations_admin import registration
    from chargeverse.topics import STATIONS

    s = _settings()
    producer = EventProducer()
    specs, hashes = [], {}
    for i in range(a.chargers):  # around Amsterdam
        sid = f"DEMO-{i + 1:03d}"
        kw = dict(name=f"Demo station {i + 1}", operator="chargeverse demo", latitude=52.37 + 0.01 * (i % 7),
                  longitude=4.89 + 0.013 * (i // 7), address=f"Demo street {i + 1}, Amsterdam")
        rec, secret = registration(sid, **kw)
        producer.publish_sync(STATIONS.name, sid, "StationRegistered", rec)
        hashes[sid] = rec["password_hash"]
        specs.append(ChargerSpec(sid, secret, kw["latitude"], kw["longitude"], kw["name"]))
    producer.close()
    _wait_credentials(hashes)
    url = f"ws://{s.ocpp_host}:{s.ocpp_port}/ocpp"
    print(f"{len(specs)} demo chargers connecting to {url} for {a.duration}s", flush=True)

    async def main() -> list[Any]:
        return await asyncio.gather(*(run_charger(url, sp, duration=a.duration, heartbeat_every=a.heartbeat,
                                                  seed=i) for i, sp in enumerate(specs)), return_exceptions=True)

    results = asyncio.run(main())
    failed = [r for r in results if isinstance(r, BaseException)]
    print(f"demo done: {sum(r for r in results if isinstance(r, int))} OCPP calls, {len(failed)} chargers failed")
    for f in failed[:3]:
        print(f"  {type(f).__name__}: {f}")
    return 1 if failed else 0


def _wait_credentials(hashes: dict[str, str], timeout: float = 60.0) -> None:
    """Registration is asynchronous (log -> projection): wait until the OCPP edge sees every charger's *new*
    secret (a re-registered charger still has its old hash until the projection applies the new one)."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(_settings().postgres_dsn.get_secret_value()) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT station_id, password_hash FROM charge_point_credentials "
                                "WHERE station_id = ANY(%s)", (list(hashes),)).fetchall()
            conn.commit()
            if dict(rows) == hashes:
                return
            time.sleep(0.2)
    raise SystemExit(f"chargers not projected within {timeout}s: is `cv run worker` running?")


# ---- operators' and analysts' tools ----------------------------------------------------------------------------
def cmd_charger(a: argparse.Namespace) -> int:
    from chargeverse.kafka import EventProducer
    from chargeverse.stations_admin import register

    producer = EventProducer()
    secret = register(producer, a.station_id, name=a.name or a.station_id, operator=a.operator,
                      latitude=a.lat, longitude=a.lon, address=a.address, secret=a.secret,
                      security_profile=a.security_profile, revoked=a.revoke,
                      registration_status="Pending" if a.pending else "Accepted")
    producer.close()
    print(f"registered {a.station_id}")
    if not a.secret:
        print(f"charger secret (shown once, configure it as the charger's AuthorizationKey): {secret}")
    return 0


def cmd_tariff(a: argparse.Namespace) -> int:
    """Set a station's tariff from an OCPI 2.2.1 Tariff JSON file (validated by the tariff engine first)."""
    from datetime import datetime

    from chargeverse.kafka import EventProducer
    from chargeverse.tariffs_admin import TariffRejected, set_tariff

    try:
        tariff = json.loads(Path(a.file).read_text())
        valid_from = datetime.fromisoformat(a.valid_from) if a.valid_from else None
        p = EventProducer()
        try:
            rec = set_tariff(p, a.station_id, tariff, time_zone=a.time_zone, valid_from=valid_from, set_by="cli")
        finally:
            p.close()
    except (OSError, ValueError, TariffRejected) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"tariff {rec['tariff_id']} ({rec['currency']}) set for {a.station_id} from {rec['valid_from']}")
    return 0


def cmd_token(a: argparse.Namespace) -> int:
    from chargeverse.tokens import TokenError, issue

    try:
        print(issue(a.sub, a.role, ttl_seconds=a.ttl))
    except TokenError as exc:
        print(f"cannot issue a token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_jwt_keys(a: argparse.Namespace) -> int:
    """Rotate the JWT signing keys: new tokens get a new key id; the previous key verifies for a grace period."""
    from chargeverse.keyring import rotate_sync
    from chargeverse.tokens import auth_prefix
    from edges.api.auth import AuthConfig

    s = _settings()
    state = rotate_sync(s.redis_url.get_secret_value(), auth_prefix(s), s.jwt_secret.get_secret_value(),
                        AuthConfig.from_settings(s).previous_key_seconds, a.retire_previous)
    print(f"signing keys rotated: {state.to_json()}")
    return 0


def cmd_account(a: argparse.Namespace) -> int:
    """Create an account with any roles (the only way to create admins, operators and auditors)."""
    import getpass

    from chargeverse.kafka import EventProducer
    from edges.api.accounts import create_account_sync

    password = a.password or getpass.getpass("password: ")
    p = EventProducer()
    try:
        account_id, _ = create_account_sync(p, a.email, password, a.role or ["driver"], a.name)
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    finally:
        p.close()
    print(f"account {account_id} registered for {a.email} with roles {', '.join(a.role or ['driver'])}")
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from projections.registry import build
    from projections.replay import replay

    target = build(a.projection, a.into)
    if a.into is None and not a.yes:
        print("refusing to rebuild the live projection in place without --yes; use --into NAMESPACE to build "
              "a copy beside it", file=sys.stderr)
        return 2
    target.reset()
    stats = replay(target)
    print(f"replayed {stats.events} events ({stats.applied} applied, {stats.dead_letters} undecodable) into "
          f"{a.projection}:{a.into or 'live'} in {stats.seconds:.2f}s = {stats.rate:,.0f} events/s")
    if a.check:
        live = build(a.projection)
        same = live.checksum() == target.checksum()
        print(f"checksum {'identical to' if same else 'DIFFERS from'} the live projection")
        return 0 if same else 1
    return 0


def cmd_checksum(a: argparse.Namespace) -> int:
    from projections.registry import build

    print(build(a.projection, a.namespace).checksum())
    return 0


def cmd_lag(a: argparse.Namespace) -> int:
    from chargeverse.lag import projection_lag

    lag = projection_lag()
    if a.json:
        print(json.dumps(lag, indent=2))
        return 0
    for name, entry in lag.items():
        parts = [f"{t}[{p}]={v['lag']}" for t, ps in entry.items() if isinstance(ps, dict)
                 for p, v in ps.items()]
        print(f"{name:22} {entry['kind']:10} total lag {entry['total']:>8}   {' '.join(parts)}")
    return 0


def cmd_tail(a: argparse.Namespace) -> int:
    """Typed records of a topic as JSON lines: for analysts replaying the log."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.avro import DecodeError, default_codec
    from chargeverse.kafka import base_config

    codec = default_codec()
    cfg = base_config()
    cfg.update({"group.id": f"tail-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    c = Consumer(cfg)
    md = c.list_topics(a.topic, timeout=10)
    if a.topic not in md.topics or md.topics[a.topic].error is not None:
        print(f"no topic {a.topic}", file=sys.stderr)
        return 2
    parts = list(md.topics[a.topic].partitions)
    if a.since:
        since_ms = int(datetime.fromisoformat(a.since).replace(tzinfo=timezone.utc).timestamp() * 1000)
        tps = c.offsets_for_times([TopicPartition(a.topic, p, since_ms) for p in parts], timeout=10)
    else:
        tps = [TopicPartition(a.topic, p, 0) for p in parts]
    ends = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1] for p in parts}
    todo = {tp.partition for tp in tps if 0 <= tp.offset < ends[tp.partition]}
    c.assign([tp for tp in tps if tp.partition in todo])
    n = 0
    while todo and (a.limit is None or n < a.limit):
        for m in c.consume(500, timeout=1.0):
            if m.error() or m.partition() not in todo:
                continue
            try:
                etype, rec = codec.decode(m.value())
                line = {"type": etype, **rec}
            except DecodeError as exc:
                line = {"type": None, "undecodable": str(exc)}
            line["_log"] = {"partition": m.partition(), "offset": m.offset()}
            print(json.dumps(line, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else repr(v)))
            n += 1
            if m.offset() + 1 >= ends[m.partition()]:
                todo.discard(m.partition())
            if a.limit is not None and n >= a.limit:
                break
    c.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    from projections.registry import NAMES as PROJECTION_NAMES

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ocpi"]:  # the OCPI partner CLI has its own parser (and its own --help)
        from edges.ocpi.admin import main as ocpi_main

        return int(ocpi_main(args[1:]) or 0)

    p = argparse.ArgumentParser(prog="cv", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("stack", help="the embedded broker and stores")
    sp.add_argument("action", choices=("up", "down", "status"))
    sp.set_defaults(fn=cmd_stack)
    sp = sub.add_parser("topics", help="create or list the catalogue's topics")
    sp.add_argument("action", choices=("create", "list"))
    sp.set_defaults(fn=cmd_topics)
    sp = sub.add_parser("db", help="Postgres migrations")
    sp.add_argument("action", choices=("migrate",))
    sp.add_argument("--schema", default="public")
    sp.set_defaults(fn=cmd_db)
    sp = sub.add_parser("flow", help="every topic with its writers and readers")
    sp.set_defaults(fn=cmd_flow)
    sp = sub.add_parser("run", help="run one service in the foreground")
    sp.add_argument("service", choices=SERVICES)
    sp.add_argument("--group", choices=("processors", "projections", "archive"),
                    help="worker only: which consumer group to run (default: CV_WORKER_GROUP)")
    sp.set_defaults(fn=cmd_run)
    sp = sub.add_parser("up", help="start the stack and every service in the background")
    sp.add_argument("--demo", type=int, default=0, metavar="N", help="also run N simulated chargers")
    sp.add_argument("--demo-duration", type=float, default=3600)
    sp.set_defaults(fn=cmd_up)
    sp = sub.add_parser("down", help="stop every service and the stack cleanly")
    sp.set_defaults(fn=cmd_down)
    sp = sub.add_parser("demo", help="register and run simulated OCPP 1.6 chargers")
    sp.add_argument("--chargers", type=int, default=5)
    sp.add_argument("--duration", type=float, default=60)
    sp.add_argument("--heartbeat", type=float, default=10)
    sp.set_defaults(fn=cmd_demo)
    sp = sub.add_parser("charger", help="register a charging station (publishes StationRegistered)")
    sp.add_argument("station_id")
    sp.add_argument("--lat", type=float, required=True)
    sp.add_argument("--lon", type=float, required=True)
    sp.add_argument("--name")
    sp.add_argument("--operator", default="chargeverse")
    sp.add_argument("--address", default="")
    sp.add_argument("--secret", help="the charger's Basic-auth secret (generated and shown once if omitted)")
    sp.add_argument("--security-profile", type=int, default=1, choices=(0, 1, 2, 3))
    sp.add_argument("--revoke", action="store_true", help="refuse this charger at the handshake (HTTP 401)")
    sp.add_argument("--pending", action="store_true", help="answer its BootNotification Pending until re-registered")
    sp.set_defaults(fn=cmd_charger)
    sp = sub.add_parser("tariff", help="set a station's tariff (OCPI 2.2.1 Tariff JSON; publishes StationTariffSet)")
    sp.add_argument("station_id")
    sp.add_argument("file", help="path of the OCPI Tariff JSON")
    sp.add_argument("--time-zone", default="UTC", help="IANA time zone of the station (restrictions are local)")
    sp.add_argument("--valid-from", help="ISO time with offset; default now")
    sp.set_defaults(fn=cmd_tariff)
    sp = sub.add_parser("token", help="issue an API access token (local/dev)")
    sp.add_argument("action", choices=("issue",))
    sp.add_argument("--sub", default="cli-user")
    sp.add_argument("--role", action="append", default=None, choices=("driver", "fleet_manager", "operator",
                                                                      "admin", "auditor"))
    sp.add_argument("--ttl", type=int, default=900)
    sp.set_defaults(fn=lambda a: cmd_token(argparse.Namespace(sub=a.sub, role=a.role or ["driver"], ttl=a.ttl)))
    sp = sub.add_parser("jwt-keys", help="rotate the JWT signing keys")
    sp.add_argument("action", choices=("rotate",))
    sp.add_argument("--retire-previous", action="store_true", help="stop accepting the previous key at once")
    sp.set_defaults(fn=cmd_jwt_keys)
    sp = sub.add_parser("account", help="create an account with any roles (admins, operators, auditors)")
    sp.add_argument("action", choices=("create",))
    sp.add_argument("--email", required=True)
    sp.add_argument("--role", action="append", choices=("driver", "fleet_manager", "operator", "admin", "auditor"))
    sp.add_argument("--name")
    sp.add_argument("--password", help="default: asked for (never pass real passwords on a command line)")
    sp.set_defaults(fn=cmd_account)
    sp = sub.add_parser("ocpi", help="OCPI partners: onboard|register|rotate|delete|list|show|pull", add_help=False)
    sp.add_argument("args", nargs=argparse.REMAINDER)
    sp.set_defaults(fn=lambda a: __import__("edges.ocpi.admin", fromlist=["main"]).main(a.args))
    sp = sub.add_parser("replay", help="rebuild a projection from offset 0")
    sp.add_argument("projection", choices=PROJECTION_NAMES)
    sp.add_argument("--into", help="namespace to build into (Postgres schema / Redis prefix / Mongo collection prefix)")
    sp.add_argument("--check", action="store_true", help="compare the rebuilt checksum with the live one")
    sp.add_argument("--yes", action="store_true", help="allow rebuilding the live projection in place")
    sp.set_defaults(fn=cmd_replay)
    sp = sub.add_parser("checksum", help="digest of a projection's content")
    sp.add_argument("projection", choices=PROJECTION_NAMES)
    sp.add_argument("--namespace")
    sp.set_defaults(fn=cmd_checksum)
    sp = sub.add_parser("lag", help="consumer lag per partition of every processor and projection")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_lag)
    sp = sub.add_parser("tail", help="print a topic's events as typed JSON lines")
    sp.add_argument("topic")
    sp.add_argument("--since", help="ISO time (UTC) to start from; default: the beginning")
    sp.add_argument("--limit", type=int)
    sp.set_defaults(fn=cmd_tail)
    from ledger.cli import add_parser as add_ledger_parser

    add_ledger_parser(sub)
    from ledger.billing.invoice_job import add_parser as add_billing_parser

    add_billing_parser(sub)
    from edges.pnc.cli import add_parser as add_pnc_parser

    add_pnc_parser(sub)
    a = p.parse_args(argv)
    return int(a.fn(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
