"""`cv run api` with several workers: each worker listens on its own SO_REUSEPORT socket, so keep-alive clients
that connect together are spread over the workers (uvicorn's shared socket gave one worker 93% of them); a
crashed worker is replaced; SIGTERM stops them all; a port already taken is a clear error at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chargeverse import ROOT
from chargeverse.readiness import wait_healthy
from chargeverse.stack import free_port
from tests.support import wait_for


def _children(pid: int) -> list[int]:
    """The API worker processes of `pid` (not multiprocessing's resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
            out.append(int(stat.parent.name))
    return out


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of ESTABLISHED TCP connections whose local port is `port` (the server's side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01":
                inodes.add(f[9])
    return inodes


def _held_by(pid: int, inodes: set[str]) -> int:
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            n += 1
    return n


def _get(sock: socket.socket, path: str = "/healthz", *, send: bool = True) -> bytes:
    """One response's status line and headers (the request sent first unless `send` is False)."""
    if send:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _start(port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, CV_API_PORT=str(port), CV_API_HOST="127.0.0.1", CV_API_WORKERS="2",
               CV_ARGON2_TIME_COST="1", CV_ARGON2_MEMORY_KIB="1024", CV_ARGON2_PARALLELISM="1")
    return subprocess.Popen([sys.executable, "-m", "chargeverse.cli", "run", "api"], env=env, cwd=ROOT,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def test_two_workers_share_the_clients_replace_a_crashed_one_and_stop_on_sigterm(stack, tmp_path) -> None:  # noqa: ANN001
    port = free_port()
    log = tmp_path / "api.log"
    proc = _start(port, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", 120, proc, log)
        workers = wait_for("two workers", lambda: (w := _children(proc.pid)) and len(w) >= 2 and w, 60)
        # 40 keep-alive clients connect together, as app users behind one NAT or a load generator do
        # (in one burst: a worker that wakes first takes every queued connection when they share one socket)
        clients = [socket.socket() for _ in range(40)]
        for c in clients:
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
        for c in clients:
            c.settimeout(10)
        try:
            # one request on each (all sent, then all read): every connection is accepted and answered, and
            # counted before uvicorn's keep-alive timeout (5 s) closes any
            for c in clients:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in clients:
                assert _get(c, send=False).startswith(b"HTTP/1.1 200")
            inodes = _established_inodes(port)
            held = {w: _held_by(w, inodes) for w in workers}
            assert sum(held.values()) == 40, held
            # a hash of the addresses spreads them: P(a worker gets < 8 of 40) is ~1e-5
            assert min(held.values()) >= 8, f"connections per worker: {held}"
        finally:
            for c in clients:
                c.close()
        # a worker killed outright is replaced, and the API keeps answering meanwhile
        os.kill(workers[0], signal.SIGKILL)
        wait_for("a replacement worker", lambda: (w := _children(proc.pid)) and len(w) >= 2
                 and workers[0] not in w, 60)
        wait_healthy(f"http://127.0.0.1:{port}/healthz", 120, proc, log)
        everyone = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        for pid in everyone:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_already_taken_is_a_clear_error_at_once(stack, tmp_path) -> None:  # noqa: ANN001
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    log = tmp_path / "api.log"
    try:
        proc = _start(port, log)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the API kept running on a port another program holds")
        assert code != 0
        assert "Address already in use" in log.read_text()
    finally:
        taken.close()
