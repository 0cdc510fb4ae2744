"""What an idle platform costs: `cv up` (embedded stack + every service, no traffic), then CPU per service.

    .venv/bin/python bench/idle_platform.py [--seconds 20] [--before TREE]

Starts a whole platform with `cv up` in a temporary stack directory on free ports, waits `--settle` seconds, then
samples each service's process tree (from /proc: the pid files `cv up` writes, plus the broker) over `--seconds`
and prints ONE line: the share of one core each service used, and the total.  With `--before TREE` (another
source tree, e.g. `git worktree add /tmp/old REV`) the same is measured for that tree in the same run, as the
baseline: `total/before` is the ratio.

Why it matters: an idle consumer that re-fetches continuously against the embedded broker (which answers empty
fetches at once) costs a core between itself and the broker, on the 2 cores that run the demo and the tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chargeverse.stack import free_port  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out = [pid]
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            f = st.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[1]) == pid:
            out += _tree(int(st.parent.name))
    return out


def _worker_ports(n: int, avoid: set[int]) -> int:
    """n consecutive free ports below the kernel's ephemeral range (the workers' web ports)."""
    import random
    import socket

    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(max(1024, floor - 8000), floor - n)
        ok = not avoid.intersection(range(base, base + n))
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no run of free ports")


def measure(tree: Path, settle: float, seconds: float) -> dict[str, float]:
    """Per service: share of one core over `seconds`, for the platform of source tree `tree`."""
    root = Path(tempfile.mkdtemp(prefix="cv-idle-"))
    root.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CV_")}
    ports = dict(CV_STACK_KAFKA_PORT=free_port(), CV_STACK_POSTGRES_PORT=free_port(),
                 CV_STACK_REDIS_PORT=free_port(), CV_STACK_MONGO_PORT=free_port(), CV_OCPP_PORT=free_port(),
                 CV_API_PORT=free_port(), CV_OCPI_PORT=free_port())
    ports["CV_WORKER_WEB_PORT"] = _worker_ports(3, set(ports.values()))
    env.update(CV_STACK_DIR=str(root), PYTHONPATH=str(tree), **{k: str(v) for k, v in ports.items()})
    env["CV_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{env['CV_STACK_KAFKA_PORT']}"

    def cv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "chargeverse.cli", *args], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=600)

    up = cv("up")
    try:
        if up.returncode != 0:
            raise SystemExit(f"cv up failed in {tree}:\n{up.stdout[-2000:]}{up.stderr[-2000:]}")
        time.sleep(settle)
        pids = {p.stem: int(p.read_text().split()[0]) for p in (root / "run").glob("*.pid")}
        for pid in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (pid / "cmdline").read_bytes()
            except OSError:
                continue
            if b"noida" in cmd and str(root).encode() in cmd:
                pids["broker"] = int(pid.name)
        before = {k: sum(_cpu_seconds(x) for x in _tree(v)) for k, v in pids.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        spent = time.monotonic() - t0
        after = {k: sum(_cpu_seconds(x) for x in _tree(v)) for k, v in pids.items()}
        return {k: 100 * (after[k] - before[k]) / spent for k in pids}
    finally:
        cv("down")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--settle", type=float, default=20, help="wait after `cv up` before sampling")
    ap.add_argument("--before", metavar="TREE", help="also measure this source tree, as the same-run baseline")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    now = measure(ROOT, a.settle, a.seconds)
    old = measure(Path(a.before).resolve(), a.settle, a.seconds) if a.before else None

    def line(name: str, m: dict[str, float]) -> str:
        parts = " ".join(f"{k}={v:.1f}%" for k, v in sorted(m.items(), key=lambda kv: -kv[1]) if v >= 0.5)
        return f"{name}: total={sum(m.values()):.1f}% {parts}"

    out = f"idle cv up, {a.seconds:.0f}s sampled, loadavg {load0:.1f}->{os.getloadavg()[0]:.1f} | {line('now', now)}"
    if old is not None:
        out += f" | {line('before', old)} | total now/before={sum(now.values()) / max(sum(old.values()), 1e-9):.2f}"
    print(out)


if __name__ == "__main__":
    main()
