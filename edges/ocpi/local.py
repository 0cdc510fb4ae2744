"""A whole OCPI platform in this process: the edge on a real HTTP port (uvicorn in a thread) plus its
projections (a Follower thread), in its own Postgres schema and with its own platform id.

For tests (two independent parties talking over real HTTP on one stack), benches (a local partner to pull from)
and demos.  Not for production: there the edge is `cv run ocpi` and the projections run in the worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx
import uvicorn

from chargeverse.settings import Settings
from chargeverse.stack import free_port
from edges.ocpi.app import create_app, ocpi_projections
from edges.ocpi.config import root_url, with_ocpi
from projections.postgres.ocpi_follow import Follower


@dataclass
class LocalParty:
    #: this party's settings: the stack's, with its own OCPI section (`with_ocpi`)
    settings: Settings
    extra_projections: list[Any] = field(default_factory=list)
    clock: Callable[[], datetime] | None = None
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    follower: Follower | None = None
    projections: list[Any] = field(default_factory=list)

    @classmethod
    def make(cls, settings: Settings, *, platform_id: str, schema: str, country_code: str, party_id: str,
             roles: str, name: str, **ocpi_overrides: Any) -> "LocalParty":
        port = free_port()
        return cls(with_ocpi(settings, host="127.0.0.1", port=port, platform_id=platform_id, schema_name=schema,
                             country_code=country_code, party_id=party_id, roles=roles, business_name=name,
                             **ocpi_overrides))

    @property
    def url(self) -> str:
        return root_url(self.settings)

    def start(self, timeout: float = 30.0) -> "LocalParty":
        self.projections = ocpi_projections(self.settings)
        self.follower = Follower([*self.projections, *self.extra_projections]).start()
        return self.start_server(timeout)

    def start_server(self, timeout: float = 30.0) -> "LocalParty":
        """(Re)start the HTTP edge on its port; the projections keep running."""
        s = self.settings
        config = uvicorn.Config(create_app(s, clock=self.clock), host=s.ocpi_host, port=s.ocpi_port,
                                log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"ocpi-{s.ocpi_platform_id}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{s.ocpi_host}:{s.ocpi_port}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"OCPI party {s.ocpi_platform_id} did not become ready in {timeout}s")

    def stop_server(self) -> None:
        """Stop the HTTP edge only (a partner outage); `start_server` brings it back on the same port."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
        self.server, self.thread = None, None

    def stop(self) -> None:
        self.stop_server()
        if self.follower is not None:
            self.follower.stop()
        for p in [*self.projections, *self.extra_projections]:
            try:
                p.close()
            except Exception:  # noqa: BLE001 - closing on the way out
                pass
