"""Login throughput: POST /api/auth/login with argon2id parameters that meet OWASP guidance, against the raw ceiling.

    .venv/bin/python bench/login.py [--accounts 2000] [--clients 8,32] [--seconds 15] [--wrong 0.1] [--quick]

Why this shape: a login is deliberately expensive (argon2id is memory-hard so that a stolen hash is slow to guess),
so its throughput is bounded by the hashing, and the honest question is how much of that bound the API reaches,
not a number of logins per second on one shared machine.  So in the same run:
- baseline (the ceiling): raw argon2id verifications/s of the stored hash, same parameters, in a plain thread pool
  of `argon2_concurrency` threads (the API's bound on simultaneous hashings), measured before AND after the API
  phases (the machine is shared and noisy; both are printed, the ratio uses their mean);
- the API (`cv run api`, uvicorn, its own process) with `--clients` concurrent clients (httpx, this process)
  logging in (round-robin over the accounts) for `--seconds` each, in-flight logins then awaited and counted:
  a share `--wrong` with a wrong password (401, same hashing cost), the rest correct (200: access JWT + a
  refresh token stored in Redis).  Figures: logins/s, p50/p99 latency, CPU of the
  API process (all its threads, argon2's included) and its CPU per login against the raw CPU per verification.

Fixture, not a figure: N accounts are COPYed straight into the identity projection's `accounts` table (created
by the platform's own migrations), all with the SAME real argon2id hash of one password, hashed once with the
configured parameters (hashing 2,000 passwords at 64 MiB/t=3 would take minutes and measures nothing new:
verification reads the parameters from the hash, so the cost per login is identical).

Rate limits: the load phase runs with `CV_RATE_LIMITS` raised for login (per IP and per account) so the hashing
path is measured, not the limiter (the limiter's Redis check still runs on every login).  Separately, a second
API process with the shipped defaults (edges/api/auth.py DEFAULT_LIMITS: login 20/60 s per IP, 10/900 s per
account) and its own Redis database is probed from one IP: 15 simultaneous logins to one account (expect 10
admitted, 5 x 429), then 15 to fresh accounts (the IP's remaining 10 admitted, 5 x 429); the line gives the
counts and the Retry-After the refusals carried.

OWASP guidance compared against (Password Storage Cheat Sheet, argon2id, "equal defense, different CPU/RAM
trade-off"): m=47104 KiB (46 MiB) t=1 p=1; m=19456 (19 MiB) t=2 p=1; m=12288 (12 MiB) t=3 p=1; m=9216 (9 MiB)
t=4 p=1; m=7168 (7 MiB) t=5 p=1.  Parameters meet it when m is at least the floor for their t (t >= 5: 7 MiB)
and p >= 1.  Memory held by simultaneous verifications: m x argon2_concurrency per API process.

Prints ONE line (progress on stderr).  The load generator shares the cores with the server; at a few logins/s
its cost is negligible.  CPU per login / CPU per verification is the figure least moved by a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import temp_stack, use_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple 42"
WRONG = "Tr0ub4dor&3 wrong"

#: OWASP Password Storage Cheat Sheet, argon2id: minimum memory (KiB) per time cost, parallelism 1
OWASP_ARGON2ID = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}


def owasp_ok(m_kib: int, t: int, p: int) -> bool:
    return p >= 1 and t >= 1 and m_kib >= OWASP_ARGON2ID[min(t, 5)]


def email(i: int) -> str:
    return f"bench{i:05d}@example.com"


# ---- fixture -----------------------------------------------------------------------------------------------------
def seed(dsn: str, n: int, password_hash: str) -> None:
    """N accounts (plus 40 for the limiter probe) in the identity projection, all with the same hash."""
    import psycopg

    from edges.api.identity import account_id_for
    from projections.postgres.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        with conn.cursor().copy("COPY accounts (account_id, email, password_hash, display_name, roles, contract_id, "
                                "registered_at, registered_event_id, updated_at) FROM STDIN") as cp:
            for i in range(n + 40):
                e = email(i)
                cp.write_row((account_id_for(e), e, password_hash, f"Bench {i}", ["driver"],
                              f"NL-CVE-C{i:08d}-X", "2026-01-01T00:00:00Z", f"bench-{i}", "2026-01-01T00:00:00Z"))
        conn.execute("VACUUM ANALYZE accounts")


# ---- baseline: raw argon2id verifications ------------------------------------------------------------------------
def raw_verify(password_hash: str, threads: int, seconds: float, wrong: float) -> dict[str, float]:
    """Verifications/s and CPU s per verification with `threads` threads (argon2-cffi releases the GIL)."""
    from chargeverse.passwords import verify_secret

    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        rnd = random.Random(k)
        while time.perf_counter() < stop:
            ok = verify_secret(password_hash, WRONG if rnd.random() < wrong else PASSWORD)
            assert ok in (True, False)
            counts[k] += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = sum(counts)
    return {"rate": n / wall, "cpu_per": cpu / max(1, n), "n": n}


# ---- the API -----------------------------------------------------------------------------------------------------
def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


async def load(url: str, n_accounts: int, clients: int, seconds: float, wrong: float, pid: int,
               start: int) -> dict[str, Any]:
    """`clients` closed loops logging in round-robin over the accounts (from `start`) for `seconds`.

    No new login starts after `seconds`; the ones in flight are awaited (the server cannot cancel a hashing) and
    counted, and the rate and the API's CPU are taken over the whole phase, first request to last answer.  The
    server is saturated whenever `argon2_concurrency` logins are in flight, i.e. all but the last moments of the
    drain, so this slightly understates the rate; counting only a fixed window instead is dominated by
    quantisation when the server completes one or two logins a second, as it does on a loaded 2-core machine."""
    import httpx

    lat: list[float] = []
    codes: dict[str, int] = {}
    nxt = [start]
    rnd = random.Random(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        cpu0, t0 = _proc_cpu(pid), time.perf_counter()
        stop = t0 + seconds

        async def loop() -> None:
            while time.perf_counter() < stop:
                i = nxt[0] % n_accounts
                nxt[0] += 1
                bad = rnd.random() < wrong
                s0 = time.perf_counter()
                r = await client.post("/api/auth/login",
                                      json={"email": email(i), "password": WRONG if bad else PASSWORD})
                s1 = time.perf_counter()
                if r.status_code == 200 and not bad:
                    body = r.json()
                    if not body.get("access_token") or not body.get("refresh_token"):
                        raise RuntimeError(f"200 without tokens: {r.text[:200]}")
                lat.append((s1 - s0) * 1000)
                key = "ok" if r.status_code == (401 if bad else 200) else str(r.status_code)
                codes[key] = codes.get(key, 0) + 1

        await asyncio.gather(*(loop() for _ in range(clients)))
        wall, cpu = time.perf_counter() - t0, _proc_cpu(pid) - cpu0
    n = len(lat)
    return {"rate": n / wall, "p50": pct(lat, .5), "p99": pct(lat, .99), "cpu": cpu / wall, "wall": wall,
            "cpu_per": cpu / max(1, n), "codes": codes, "n": n, "next": nxt[0]}


async def probe(url: str, first: int, burst: int = 15) -> dict[str, Any]:
    """The shipped limits at work: `burst` simultaneous logins to one account, then (as soon as the first answer,
    a refusal, shows the limiter has decided that burst) `burst` to as many fresh accounts, all from one IP.
    Counts of admitted (200) and refused (429) per group, and a Retry-After of each group's refusals.  GCRA
    replenishes one login per period/count (3 s for 20/60 s) after the burst, so on a slow server the second group
    may see one more admitted than 20 - 10."""
    import httpx

    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=2 * burst)) as client:
        async def one(i: int) -> httpx.Response:
            return await client.post("/api/auth/login", json={"email": email(i), "password": PASSWORD})

        same = [asyncio.create_task(one(first)) for _ in range(burst)]
        # the refusals answer at once (no hashing): the first answer means the limiter has decided the burst
        await asyncio.wait(same, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.2)
        fresh = [asyncio.create_task(one(first + 1 + k)) for k in range(burst)]
        for name, tasks in (("account", same), ("ip", fresh)):
            rs = await asyncio.gather(*tasks)
            codes = [r.status_code for r in rs]
            if set(codes) - {200, 429}:
                raise RuntimeError(f"probe {name}: unexpected answers {sorted(codes)}")
            retry = [r.headers.get("retry-after") for r in rs if r.status_code == 429]
            out[name] = (codes.count(200), codes.count(429), retry[0] if retry else "-")
    return out


def _spawn(env: dict[str, str], extra: dict[str, str], log: str) -> tuple[subprocess.Popen, str]:
    """`cv run api` on a free port with `extra` settings; (process, base URL)."""
    port = _free_port()
    proc_env = {**os.environ, **env, **extra, "CV_API_PORT": str(port), "CV_API_HOST": "127.0.0.1",
                "CV_API_WORKERS": "1"}  # one process: its /proc CPU is the API's
    proc = subprocess.Popen([str(ROOT / ".venv/bin/cv"), "run", "api"], env=proc_env, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"))
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(proc: subprocess.Popen, url: str, timeout: float = 120) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("API did not become ready")


_T0 = time.monotonic()


def note(what: str) -> None:
    """Progress on stderr (the figures are the one line on stdout)."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {what}", file=sys.stderr, flush=True)


# ---- main ---------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--clients", default=None, help="comma-separated concurrent client counts (default 8,32)")
    ap.add_argument("--seconds", type=float, default=15, help="per phase")
    ap.add_argument("--wrong", type=float, default=0.1, help="share of logins with a wrong password")
    ap.add_argument("--quick", action="store_true", help="3 s per phase, 4 and 16 clients, 500 accounts")
    ap.add_argument("--log-dir", default="/tmp", help="where the API processes' stderr goes")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.accounts = 3, 500
    a.clients = a.clients or ("4,16" if a.quick else "8,32")
    clients = [int(c) for c in a.clients.split(",") if c.strip()]
    if not clients or min(clients) < 1 or a.accounts < 1 or not 0 <= a.wrong <= 1 or a.seconds <= 0:
        ap.error("need --clients >= 1, --accounts >= 1, 0 <= --wrong <= 1, --seconds > 0")

    with temp_stack(("kafka", "postgres", "redis")) as st:
        env = st.env()
        use_env(env)
        from argon2 import PasswordHasher

        from chargeverse.settings import get_settings

        s = get_settings()
        m, t, p, conc = s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism, s.argon2_concurrency
        h0 = time.perf_counter()
        password_hash = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p).hash(PASSWORD)
        hash_ms = (time.perf_counter() - h0) * 1000
        seed(s.postgres_dsn.get_secret_value(), a.accounts, password_hash)
        note(f"stack up, {a.accounts} accounts seeded")

        # both API processes start together (one startup wait); the limits probe runs first, then its server stops
        logs = os.path.join(a.log_dir, "bench_login_api.log"), os.path.join(a.log_dir, "bench_login_api_limits.log")
        # raised for the load, so the hashing path is measured (the limiter's Redis check still runs per login)
        raised = {"CV_RATE_LIMITS": "login.ip=1000000/1;login.account=1000000/1"}
        # the probe's server: the shipped limits ("" = defaults) and its own Redis database, so the buckets it
        # fills (a stored GCRA time an hour ahead) do not refuse the load's logins on the shared key
        probe_env = {"CV_RATE_LIMITS": "", "CV_REDIS_URL": env["CV_REDIS_URL"].rsplit("/", 1)[0] + "/1"}
        api, lim = _spawn(env, raised, logs[0]), _spawn(env, probe_env, logs[1])
        try:
            url, lim_url = _wait(*api), _wait(*lim)
            note("APIs ready")
            refused = asyncio.run(probe(lim_url, a.accounts))
            note(f"limits probe: {refused}")
            _stop(lim[0])
            base = [raw_verify(password_hash, conc, a.seconds, a.wrong)]
            note(f"raw before: {base[0]['rate']:.2f}/s")
            pid = api[0].pid
            idle_rss = _proc_status(pid, "VmRSS")  # ready, before its first hashing
            asyncio.run(load(url, a.accounts, conc, min(2.0, a.seconds), a.wrong, pid, 0))  # warm-up
            runs: dict[int, dict[str, Any]] = {}
            nxt = 0
            for c in clients:
                runs[c] = asyncio.run(load(url, a.accounts, c, a.seconds, a.wrong, pid, nxt))
                nxt = runs[c]["next"]
                note(f"clients={c}: {runs[c]['n']} logins in {runs[c]['wall']:.1f}s")
            peak_rss = _proc_status(pid, "VmHWM")
            _stop(api[0])
            base.append(raw_verify(password_hash, conc, a.seconds, a.wrong))
        finally:
            _stop(api[0])
            _stop(lim[0])

    rate = sum(b["rate"] for b in base) / len(base)
    cpu_per = sum(b["cpu_per"] for b in base) / len(base)
    raw_cpu = sum(b["rate"] * b["cpu_per"] for b in base) / len(base)
    parts = [f"argon2id m={m // 1024}MiB t={t} p={p} concurrency={conc} "
             f"owasp={'ok' if owasp_ok(m, t, p) else 'BELOW'} (floor for t={t}: "
             f"m>={OWASP_ARGON2ID[min(t, 5)] // 1024}MiB p>=1) hash={hash_ms:.0f}ms "
             f"hashmem={m * conc // 1024}MiB accounts={a.accounts} wrong={a.wrong:.0%} {a.seconds:g}s/phase",
             f"raw: {rate:.2f}verify/s (before {base[0]['rate']:.2f}, after {base[1]['rate']:.2f}) "
             f"cpu={raw_cpu:.0%} {cpu_per * 1000:.0f}ms/verify (idle-host ceiling = {os.cpu_count()} cores / "
             f"cpu per verify = {(os.cpu_count() or 1) / cpu_per:.1f}/s)"]
    for c, r in runs.items():
        bad = {k: v for k, v in r["codes"].items() if k != "ok"}
        parts.append(f"api c={c}: {r['rate']:.2f}login/s p50={r['p50']:.0f}ms p99={r['p99']:.0f}ms "
                     f"cpu={r['cpu']:.0%} {r['cpu_per'] * 1000:.0f}ms/login n={r['n']} in {r['wall']:.0f}s "
                     f"unexpected={sum(bad.values())}{bad if bad else ''} | api/raw throughput="
                     f"{r['rate'] / rate:.2f} cpu/login={r['cpu_per'] / cpu_per:.2f}x")
    parts.append(f"api RSS idle={idle_rss / 2**20:.0f}MiB peak={peak_rss / 2**20:.0f}MiB "
                 f"(+{(peak_rss - idle_rss) / 2**20:.0f}MiB; m x concurrency = {m * conc // 1024}MiB)")
    acc, ip = refused["account"], refused["ip"]
    parts.append(f"limiter (shipped defaults login.account=10/900s login.ip=20/60s): 15 at once to one account: "
                 f"{acc[0]} admitted {acc[1]}x429 (Retry-After {acc[2]}s); then 15 to fresh accounts, same IP: "
                 f"{ip[0]} admitted {ip[1]}x429 (Retry-After {ip[2]}s)")
    print(" ; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
