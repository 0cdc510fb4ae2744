"""The embedded default stack: a Kafka-protocol broker, Postgres+PostGIS, Redis and a Mongo wire-protocol server,
each a local process on 127.0.0.1 with its data under one project-local directory (DESIGN.md §5).

Why these: no Docker engine on our machines, and only PyPI/Debian packages.  `noida-db` (Kafka service only) is
the broker that passed the conformance checks; Postgres 15 + PostGIS 3 and Redis come from Debian; `nx-27017`
speaks the MongoDB wire protocol over SQLite.  Production uses real Apache Kafka, MongoDB etc. (compose/), set
through the same `CV_*` settings; `cv stack` is then simply not used.

Durability: a clean `down` stops each server with its graceful signal (the broker writes its snapshot, Postgres
does a fast shutdown with checkpoint, Redis appends to its AOF) and loses nothing; what a kill -9 of the broker can
lose is measured by bench/broker_crash.py and stated in the README.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode} before listening on {port}")
        time.sleep(0.05)
    raise StackError(f"{what} not listening on 127.0.0.1:{port} after {timeout}s")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class Ports:
    kafka: int = 19092
    postgres: int = 15432
    redis: int = 16379
    mongo: int = 27018

    @classmethod
    def free(cls) -> "Ports":
        return cls(free_port(), free_port(), free_port(), free_port())


class Stack:
    """One embedded stack rooted at `root`.  `up()` is idempotent; `down()` is a clean, lossless stop."""

    SERVICES = ("kafka", "postgres", "redis", "mongo")

    def __init__(self, root: Path, ports: Ports | None = None) -> None:
        self.root = root.resolve()
        self.ports = ports or Ports()
        self.secrets_file = self.root / "secrets"

    # ---- secrets and settings -------------------------------------------------------------------------------
    def _secrets(self) -> dict[str, str]:
        if not self.secrets_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            values = {k: secrets.token_urlsafe(24) for k in ("pg_password", "redis_password", "jwt_secret")}
            self.secrets_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            self.secrets_file.chmod(0o600)
        return dict(line.split("=", 1) for line in self.secrets_file.read_text().split())

    def env(self) -> dict[str, str]:
        """The CV_* settings that point a process at this stack."""
        s = self._secrets()
        return {
            "CV_STACK_DIR": str(self.root),
            "CV_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ports.kafka}",
            "CV_POSTGRES_DSN": f"postgresql://chargeverse:{s['pg_password']}@127.0.0.1:{self.ports.postgres}/chargeverse",
            "CV_REDIS_URL": f"redis://:{s['redis_password']}@127.0.0.1:{self.ports.redis}/0",
            "CV_MONGO_URL": f"mongodb://127.0.0.1:{self.ports.mongo}/",
            "CV_JWT_SECRET": s["jwt_secret"],
            "CV_STACK_KAFKA_PORT": str(self.ports.kafka),
            "CV_STACK_POSTGRES_PORT": str(self.ports.postgres),
            "CV_STACK_REDIS_PORT": str(self.ports.redis),
            "CV_STACK_MONGO_PORT": str(self.ports.mongo),
            # noida-db stalls ~1% of an idempotent producer's sends for up to 500 ms (settings.py says more)
            "CV_KAFKA_IDEMPOTENT_PRODUCER": "false",
        }

    def write_env_file(self) -> Path:
        path = self.root / "env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.env().items()))
        path.chmod(0o600)
        return path

    # ---- processes ---------------------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _pidfile(self, name: str) -> Path:
        return self._dir(name) / "server.pid"

    def pid(self, name: str) -> int | None:
        f = self._pidfile(name)
        if not f.exists():
            return None
        pid = int(f.read_text().strip() or 0)
        return pid if pid and _pid_alive(pid) else None

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logf = open(self._dir(name) / "server.log", "ab")
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self._dir(name))
        self._pidfile(name).write_text(str(proc.pid))
        return proc

    def _start_kafka(self) -> None:
        import noida_db

        binary = Path(noida_db.__file__).parent / "noida-db"
        # run the binary itself: the Python wrapper forks it, and killing the wrapper leaves the broker running
        proc = self._spawn("kafka", [str(binary), "start", "--data-dir", str(self._dir("kafka") / "data"),
                                     "--only", "kafka", "--kafka-port", str(self.ports.kafka)])
        _wait_port(self.ports.kafka, "noida-db kafka", proc=proc)

    def _start_postgres(self) -> None:
        d = self._dir("postgres")
        data = d / "data"
        for p in (self.root, d):
            p.chmod(0o755)
        if not (data / "PG_VERSION").exists():
            pwfile = d / "pwfile"
            pwfile.write_text(self._secrets()["pg_password"] + "\n")
            shutil.chown(d, "postgres")
            shutil.chown(pwfile, "postgres")
            _run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-U", "chargeverse",
                  "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C.UTF-8"])
            pwfile.unlink()
            with open(data / "postgresql.conf", "a") as f:
                f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.ports.postgres}\n"
                        f"unix_socket_directories = '{d}'\nfsync = on\nmax_connections = 200\n"
                        "shared_buffers = 256MB\nsynchronous_commit = on\n")
        else:
            conf = (data / "postgresql.conf").read_text()
            (data / "postgresql.conf").write_text(conf.replace("port = ", "#port = ")
                                                  + f"\nport = {self.ports.postgres}\n")
        shutil.chown(d, "postgres")
        _run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
              str(d / "server.log"), "-w", "-t", "60", "start"])
        pid = int((data / "postmaster.pid").read_text().split()[0])
        self._pidfile("postgres").write_text(str(pid))
        _wait_port(self.ports.postgres, "postgres")
        self._bootstrap_postgres()

    def _bootstrap_postgres(self) -> None:
        import psycopg

        dsn = self.env()["CV_POSTGRES_DSN"].rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname='chargeverse'").fetchone():
                conn.execute("CREATE DATABASE chargeverse")
        with psycopg.connect(self.env()["CV_POSTGRES_DSN"], autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def _start_redis(self) -> None:
        d = self._dir("redis")
        proc = self._spawn("redis", ["redis-server", "--port", str(self.ports.redis), "--bind", "127.0.0.1",
                                     "--dir", str(d), "--appendonly", "yes", "--appendfsync", "everysec",
                                     "--requirepass", self._secrets()["redis_password"], "--save", "",
                                     "--protected-mode", "yes"])
        _wait_port(self.ports.redis, "redis", proc=proc)

    def _start_mongo(self) -> None:
        import sys

        d = self._dir("mongo")
        # nx-27017 behind our transaction gate (chargeverse/mongo_embedded.py says why)
        proc = self._spawn("mongo", [sys.executable, "-m", "chargeverse.mongo_embedded",
                                     "--data-dir", str(d / "data"), "--host", "127.0.0.1", "--port", str(self.ports.mongo), "--log-file", str(d / "nx.log"),
                                     "--pid-file", str(d / "nx.pid")])
        _wait_port(self.ports.mongo, "nx-27017", proc=proc)

    def start(self, name: str) -> None:
        if self.pid(name):
            return
        port = getattr(self.ports, name)
        if _port_open(port):  # never mistake another program (or another stack) on our port for our server
            raise StackError(f"cannot start {name}: 127.0.0.1:{port} is already in use by another process; stop "
                             f"it or set CV_STACK_{name.upper()}_PORT")
        getattr(self, f"_start_{name}")()

    def up(self) -> dict[str, str]:
        """Start every service that is not running; write `<root>/env`; return the settings."""
        for name in self.SERVICES:
            self.start(name)
        self.write_env_file()
        return self.env()

    def stop(self, name: str, timeout: float = 120.0) -> None:
        """Graceful stop: the signal each server treats as a clean shutdown, then wait for it to exit."""
        pid = self.pid(name)
        if not pid:
            return
        if name == "postgres":
            _run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D",
                  str(self.root / "postgres" / "data"), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"])
        else:
            os.kill(pid, signal.SIGINT if name == "kafka" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise StackError(f"{name} (pid {pid}) did not stop within {timeout}s")
            time.sleep(0.05)
        self._pidfile(name).unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """kill -9: for the crash-loss measurement only."""
        pid = self.pid(name)
        if pid:
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.01)
            self._pidfile(name).unlink(missing_ok=True)

    def down(self) -> None:
        for name in reversed(self.SERVICES):
            self.stop(name)

    def status(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in self.SERVICES}


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise StackError(f"{' '.join(argv[:6])}... failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
