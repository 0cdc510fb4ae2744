"""The README's first and third commands, as a user runs them: `cv up --demo N` starts the stack, the services and
simulated chargers whose live status the API then serves; `cv down` stops everything cleanly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from chargeverse import ROOT
from chargeverse.stack import free_port
from support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_run(n: int, avoid: set[int]) -> int:
    """A port p with p..p+n-1 all bindable now, none in `avoid`, all below the kernel's ephemeral range.

    The workers take consecutive web ports.  A run next to a kernel-picked port is inside the ephemeral range, where
    any outgoing connection made while the stack starts can take one of them first: "address already in use" for
    a worker's web server (seen in CI).  Below the range only an explicit bind takes a port."""
    import random

    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(max(1024, floor - 8000), floor - n)
        if not avoid.intersection(range(base, base + n)) and all(_bindable(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("no run of free ports")


def _log_tails(run: Path, lines: int = 40) -> str:
    """The end of every service log, for a failure message (the stack directory is removed afterwards)."""
    out = []
    for log in sorted(run.glob("*.log")):
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if "rdkafka" not in ln][-lines:]
        out.append(f"\n--- {log.name} ---\n" + "\n".join(tail))
    return "".join(out)


def test_cv_up_with_demo_chargers_then_cv_down() -> None:
    root = Path(tempfile.mkdtemp(prefix="cv-up-"))
    root.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CV_")}  # nothing of the test session's stack
    api = free_port()
    ports = dict(CV_STACK_KAFKA_PORT=free_port(), CV_STACK_POSTGRES_PORT=free_port(),
                 CV_STACK_REDIS_PORT=free_port(), CV_STACK_MONGO_PORT=free_port(), CV_OCPP_PORT=free_port(),
                 CV_API_PORT=api)
    ports["CV_WORKER_WEB_PORT"] = _free_run(3, avoid=set(ports.values()))
    env.update(CV_STACK_DIR=str(root), **{k: str(v) for k, v in ports.items()})
    env["CV_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{env['CV_STACK_KAFKA_PORT']}"

    def cv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chargeverse.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    pids: list[int] = []
    try:
        up = cv("up", "--demo", "2", "--demo-duration", "60")
        assert up.returncode == 0, up.stdout + up.stderr + _log_tails(root / "run")
        assert f"http://127.0.0.1:{api}/docs" in up.stdout and "demo token" in up.stdout
        token = up.stdout.split("demo token")[1].split()[0]

        def demo_online() -> list:
            r = httpx.get(f"http://127.0.0.1:{api}/api/stations", params={"near": "52.37,4.89", "radius": 20000},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
            items = [i for i in r.json()["items"] if i["station_id"].startswith("DEMO-") and i["online"]
                     and i["vendor"] and len(i["connectors"]) == 2]
            return items if len(items) == 2 else []

        wait_for("two demo chargers online in the API", demo_online, timeout=90)
        pids = [int(f.read_text()) for f in (root / "run").glob("*.pid")]
        assert len(pids) >= 5  # ocpp, api, three workers (+ demo)
    finally:
        down = cv("down")
        shutil.rmtree(root, ignore_errors=True)
    assert down.returncode == 0 and "stopped cleanly" in down.stdout, down.stdout + down.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
