"""Run the API as N worker processes, each with its own SO_REUSEPORT listening socket, and keep them running.

Why not uvicorn's `--workers`: it shares ONE listening socket between its workers, and a worker whose event loop
wakes first accepts every pending connection in one go (asyncio and libuv both accept in a loop).  Keep-alive
clients that connect together then stick to that worker: during `bench/station_search.py` (100 clients, 2
workers) `ss` showed the clients split 93/7, 80/20 and 64/36 between the two workers, and the busy worker's
clients set the p99 while the other core idled.  With SO_REUSEPORT each worker listens on its own socket and the
kernel spreads new connections over them by a hash of their addresses, independently of which loop is awake.

The supervisor (this process) holds the port bound but not listening, so it fails fast when the port is taken and
no other program can take it between worker restarts (SO_REUSEPORT binds are limited to the same user).  A worker
that exits while the API is not stopping is started again, at most `MAX_RESTARTS` times a minute; SIGTERM or
SIGINT is passed on to the workers (unless they got it too, from a signal to the process group), which finish
their requests (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from typing import Any

log = logging.getLogger("chargeverse.api.workers")

#: how long the supervisor waits, after SIGTERM/SIGINT, for workers that got the signal too before passing it on
FORWARD_AFTER_S = 2.0

#: restarts of crashed workers allowed per minute before the whole API gives up (a crash loop is a bug, not load)
MAX_RESTARTS = 10


def reuseport_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT; listening when `listen`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def _worker(opts: dict[str, Any]) -> None:
    """One worker: its own listening socket, its own app (built from the same settings by the factory)."""
    import uvicorn

    sock = reuseport_socket(opts["host"], opts["port"], listen=True)
    config = uvicorn.Config("edges.api.app:create_app", factory=True, **opts)
    uvicorn.Server(config).run(sockets=[sock])


def serve(workers: int, opts: dict[str, Any]) -> int:
    """Run `workers` API processes on opts['host']:opts['port'] until SIGTERM/SIGINT; the exit status."""
    if not opts.get("port"):
        raise ValueError("several API workers need a fixed port (CV_API_PORT)")
    holder = reuseport_socket(opts["host"], opts["port"], listen=False)  # fails now if the port is taken
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    stopping = False
    restarts: list[float] = []

    def start() -> multiprocessing.process.BaseProcess:
        p = ctx.Process(target=_worker, args=(opts,), name="api-worker", daemon=False)
        p.start()
        return p

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        procs.extend(start() for _ in range(workers))
        log.info("API on %s:%s with %d workers (one SO_REUSEPORT socket each)", opts["host"], opts["port"], workers)
        while not stopping:
            time.sleep(0.5)
            for i, p in enumerate(procs):
                if p.is_alive() or stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > MAX_RESTARTS:
                    log.error("API workers keep exiting (%d restarts in a minute; last exit code %s): stopping",
                              len(restarts) - 1, p.exitcode)
                    stop(signal.SIGTERM, None)
                    break
                log.warning("API worker %s exited with %s: starting another", p.pid, p.exitcode)
                procs[i] = start()
        # `cv down` signals the whole process group, workers included, and a second SIGTERM would cut uvicorn's
        # graceful shutdown short: give them a moment to go on their own, then pass the signal on
        grace = time.monotonic() + FORWARD_AFTER_S
        while time.monotonic() < grace and any(p.is_alive() for p in procs):
            time.sleep(0.05)
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn's graceful shutdown
        deadline = time.monotonic() + 30
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        return 1 if len(restarts) > MAX_RESTARTS else 0
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        holder.close()
