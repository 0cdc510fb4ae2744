"""OCPI Locations pull, end to end: N locations from a local partner (our own platform in the CPO role) through
pagination into our eMSP projections.

    .venv/bin/python bench/ocpi_pull.py [--locations 100000] [--quick]   (--quick: 20,000)

Starts its own embedded stack (Kafka, Postgres, Redis) and two OCPI platforms: Y (CPO) serves its own stations
from its own process - exactly `cv run ocpi` with CV_OCPI_FOLLOW=1 (edges/ocpi/app.py `run`), as a partner would
be - and X (eMSP) pulls them, in this process (edges/ocpi/local.py: the edge plus its projection follower).
Seeding is not part of any figure: N StationRegistered events (bench/replay.py's generator, one per station, 37 ms
apart) replayed into Y's stations projection and ANALYZEd (as autovacuum would have); X registers with Y over
real HTTP (token A -> B -> C).

X's projections (the objects projection and the station directory) run in a process of their own, as the
projections worker runs them in production (`cv run worker`), not in X's edge process: a follower process (this
file with --follow) reading `ocpi.inbound` and writing X's schema.  (`--one-process` puts them back into X's
process, as `cv run ocpi` with CV_OCPI_FOLLOW=1 does in development.)

Then, in the same run:
- baseline: the pages alone (`edges.ocpi.pull.pages` over all of Y's pages, nothing published) - the rate of
  serving and paging, the ceiling of the pull;
- after a warm-up pull of the first 1,000, the pull of the first N/5 locations (date_to) and then of all N, each
  through X's admin API: page by page, every Location validated and published to `ocpi.inbound`, until X's
  objects projection has applied the last one.  Peak memory = the highest RSS of X's edge process plus its
  projections process, sampled every 20 ms during a pull, minus the RSS at its start; "flat" means
  the N pull needs at most 1.5x (or 50 MB more than) what the N/5 pull needed.
Each pull is checked (every location in X's projection, none invalid).  Prints ONE line.
Target (issue 3): >= 2,000 locations/s end to end and memory flat in the number of locations.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_ceiling import temp_stack, use_env  # noqa: E402
from replay import generate  # noqa: E402

T0 = datetime(2025, 1, 6, 6, 0, tzinfo=timezone.utc)  # replay.generate's first event time
STEP = timedelta(milliseconds=37)


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


#: other processes whose RSS counts as X's (its projections process)
ALSO: list[int] = []


def total_rss() -> float:
    return rss_mb() + sum(rss_mb(p) for p in ALSO)


class PeakRss:
    def __init__(self) -> None:
        self.start = total_rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, total_rss())

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak - self.start


class Partner:
    def __init__(self, proc: Any, url: str) -> None:
        self.proc, self.url = proc, url

    def terminate(self) -> None:
        self.proc.terminate()

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout)


def start_partner(env: dict[str, str]) -> Partner:
    """Y: `cv run ocpi` with its projections in-process (CV_OCPI_FOLLOW=1), its own schema and platform id."""
    import os
    import subprocess

    import httpx

    from chargeverse.stack import free_port

    port = free_port()
    penv = dict(os.environ, **env, CV_OCPI_PORT=str(port), CV_OCPI_PLATFORM_ID="bench-y",
                CV_OCPI_SCHEMA_NAME="ocpi_bench_y", CV_OCPI_COUNTRY_CODE="NL", CV_OCPI_PARTY_ID="CPY",
                CV_OCPI_ROLES="CPO", CV_OCPI_PAGE_LIMIT="1000", CV_OCPI_FOLLOW="1")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", "from edges.ocpi.app import run; run()"], env=penv, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return Partner(proc, f"http://127.0.0.1:{port}/ocpi")
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the partner process exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the partner process did not become ready")


X_OCPI = dict(CV_OCPI_PLATFORM_ID="bench-x", CV_OCPI_SCHEMA_NAME="ocpi_bench_x", CV_OCPI_COUNTRY_CODE="NL",
              CV_OCPI_PARTY_ID="EMX", CV_OCPI_ROLES="EMSP")


def follow() -> int:
    """--follow: X's OCPI projections, following the log until stdin closes (the projections worker's job)."""
    from chargeverse.settings import get_settings
    from edges.ocpi.app import ocpi_projections
    from projections.postgres.ocpi_follow import Follower

    projections = ocpi_projections(get_settings())
    follower = Follower(projections).start()
    print("ready", flush=True)
    sys.stdin.read()
    follower.stop()
    if follower.errors:
        print(f"projection errors: {follower.errors[:3]}", file=sys.stderr)
        return 1
    return 0


def start_projections(env: dict[str, str]) -> Any:
    import os
    import subprocess

    proc = subprocess.Popen([sys.executable, __file__, "--follow"], env=dict(os.environ, **env, **X_OCPI),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("X's projections process did not start")
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--locations", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="20,000 locations")
    ap.add_argument("--one-process", action="store_true", help="X's projections in X's edge process")
    ap.add_argument("--follow", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.follow:
        return follow()
    n = 20_000 if a.quick else a.locations
    small = n // 5

    with temp_stack(("kafka", "postgres", "redis")) as st:
        env = st.env()
        use_env(env)
        import httpx
        import psycopg

        from chargeverse.kafka import ensure_topics
        from chargeverse.settings import get_settings
        from chargeverse.tokens import issue
        from edges.ocpi.credtokens import authorization
        from edges.ocpi.local import LocalParty
        from edges.ocpi.pull import pages
        from projections.postgres.stations import StationsProjection
        from projections.replay import replay

        bootstrap = env["CV_KAFKA_BOOTSTRAP"]
        ensure_topics(bootstrap=bootstrap)
        settings = get_settings()
        dsn = settings.postgres_dsn.get_secret_value()
        t0 = time.perf_counter()
        generate(bootstrap, n, n)
        stations = StationsProjection(dsn, "ocpi_bench_y")
        replay(stations, bootstrap=bootstrap)
        with stations.conn.transaction():  # the statistics autovacuum would have gathered on a live table
            stations.conn.execute("ANALYZE stations")
            stations.conn.execute("ANALYZE connectors")
        stations.close()
        seed_s = time.perf_counter() - t0

        x = LocalParty.make(settings, platform_id="bench-x", schema="ocpi_bench_x", country_code="NL",
                            party_id="EMX", roles="EMSP", name="X", apply_timeout=30.0)
        y = start_partner(env)
        xp = None
        if a.one_process:
            x.start()
        else:
            xp = start_projections(env)
            ALSO.append(xp.pid)
            x.start_server()
        try:
            adm = {"Authorization": "Bearer " + issue("bench", ["admin"], ttl_seconds=3600)}
            with httpx.Client(timeout=3600, headers=adm) as h:
                token_a = h.post(f"{y.url}/admin/partners", json={"partner_id": "x", "name": "X"}).json()["token_a"]
                h.post(f"{x.url}/admin/partners", json={"partner_id": "y", "name": "Y", "token": token_a,
                                                        "versions_url": f"{y.url}/versions"}).raise_for_status()
                h.post(f"{x.url}/admin/partners/y/register").raise_for_status()

                with psycopg.connect(dsn, options="-c search_path=ocpi_bench_x,public") as conn:
                    sealed = conn.execute("SELECT their_token_sealed FROM ocpi_partners WHERE partner_id = 'y'"
                                          ).fetchone()[0]
                from edges.ocpi.context import token_box

                token_c = token_box(x.settings).open(sealed, "y")

                async def pages_only() -> tuple[int, float]:
                    got = 0
                    t = time.perf_counter()
                    async with httpx.AsyncClient(timeout=120) as http:
                        async for page in pages(http, f"{y.url}/cpo/2.2.1/locations",
                                                {"Authorization": authorization(token_c)}):
                            got += len(page.items)
                    return got, time.perf_counter() - t

                got, base_s = asyncio.run(pages_only())
                if got != n:
                    raise SystemExit(f"baseline paged {got} locations, expected {n}")

                def pull(date_to: datetime | None) -> tuple[dict, float, float]:
                    params = {"date_to": date_to.strftime("%Y-%m-%dT%H:%M:%S.%fZ")} if date_to else {}
                    mem = PeakRss()
                    t = time.perf_counter()
                    r = h.post(f"{x.url}/admin/partners/y/pull/locations", params=params)
                    secs = time.perf_counter() - t
                    grew = mem.stop()
                    r.raise_for_status()
                    return r.json(), secs, grew

                pull(T0 + STEP * 1000)  # warm-up: first-use allocations are not the pull's
                s_stats, s_secs, s_mem = pull(T0 + STEP * (small + 1))
                f_stats, f_secs, f_mem = pull(None)
            with psycopg.connect(dsn, options="-c search_path=ocpi_bench_x,public") as conn:
                rows = conn.execute("SELECT count(*) FROM ocpi_locations WHERE partner_id = 'y'").fetchone()[0]
        finally:
            x.stop()
            if xp is not None:
                xp.stdin.close()
                xp.wait(30)
            y.terminate()
            y.wait(30)
    if s_stats["objects"] != small or f_stats["objects"] != n or f_stats["invalid"] or rows != n:
        raise SystemExit(f"incomplete: small pull {s_stats}, full pull {f_stats}, {rows} rows in X")
    rate = n / f_secs
    flat = f_mem <= max(1.5 * s_mem, s_mem + 50)
    verdict = "MET" if rate >= 2000 and flat else "NOT MET"
    print(f"ocpi pull {n:,} locations ({f_stats['pages']} pages of 1,000; seeded in {seed_s:.0f} s; X's "
          f"projections {'in its edge process' if a.one_process else 'in their own process'}): "
          f"pages only {n / base_s:,.0f} loc/s | end to end {rate:,.0f} loc/s ({f_secs:.1f} s, "
          f"{rate / (n / base_s):.0%} of paging) | {small:,} locations {small / s_secs:,.0f} loc/s | "
          f"peak RSS +{s_mem:.0f} MB for {small:,}, +{f_mem:.0f} MB for {n:,} | "
          f"target >= 2,000 loc/s and flat memory: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
