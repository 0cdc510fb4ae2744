"""Waiting for a service to answer its health endpoint: shared by `cv up`, the test harness and the benchmarks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


class NotReady(RuntimeError):
    pass


def wait_healthy(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `proc` exits.  The error carries the tail of `log`."""
    tail = (lambda: "\n" + log.read_text(errors="replace")[-3000:]) if log else (lambda: "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NotReady(f"{url}: the process exited with {proc.returncode}{tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise NotReady(f"{url} not healthy after {timeout:.0f}s{tail()}")
