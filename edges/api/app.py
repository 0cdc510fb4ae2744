"""The app API (`cv run api`): FastAPI, read from projections, every endpoint authenticated.

OpenAPI document at /openapi.json, interactive docs at /docs.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import psycopg
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

from chargeverse.gc_pacing import freeze_startup_objects
from chargeverse.settings import Settings, get_settings
from chargeverse.kafka import EventProducer
from edges.api import (accounts, admin, audit, billing, commands, fleets, me, session_control, sessions, stations,
                       tariffs)
from edges.api import analytics, community, notifications
from edges.api import forecasts, smartcharging
from streams.notifications.worker import start_worker


class RefuseNul:
    """No text we store may carry a NUL character (Postgres cannot hold one): refuse it at the door with 422,
    whatever the endpoint, instead of failing deep inside one (the fuzzer found two such 500s).

    A plain ASGI middleware, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request in
    a task of its own with streams between the two, which cost more CPU than a whole station search page
    (bench/station_search.py).  A GET passes after two substring checks; a body is read and replayed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("root_path", "") + scope["path"]
        raw_query = scope.get("query_string", b"").decode("latin-1").lower()
        # photo uploads are bytes, not text (edges/api/community.py checks them and answers 413/415)
        binary = path.startswith("/api/stations/") and path.endswith("/photos")
        binary = binary or path == "/pnc/ocsp"  # DER OCSP requests (RFC 6960): NUL bytes are data
        body, replay = b"", receive
        if scope["method"] in ("POST", "PUT", "PATCH") and not binary:
            chunks, more = [], True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client went away: nothing to answer
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

        if "%00" in raw_query or "%00" in path or b"\\u0000" in body or b"\x00" in body:
            response = JSONResponse({"detail": "NUL characters are not accepted in any field"}, status_code=422)
            await response(scope, replay, send)
            return
        await self.app(scope, replay, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    s = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pg = AsyncConnectionPool(s.postgres_dsn.get_secret_value(), min_size=2, max_size=20,
                                           open=False)
        await app.state.pg.open(wait=True, timeout=30)
        # reads that need no transaction (station search and detail, the busiest endpoints): autocommit saves the
        # BEGIN and COMMIT round trips a pooled connection otherwise makes around every query
        app.state.pg_read = AsyncConnectionPool(s.postgres_dsn.get_secret_value(), min_size=2, max_size=20,
                                                kwargs={"autocommit": True}, open=False)
        await app.state.pg_read.open(wait=True, timeout=30)
        app.state.redis = aioredis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)
        app.state.producer = EventProducer(s.kafka_bootstrap)
        notifier = start_worker(s)  # the notifications sender, when CV_NOTIFICATIONS_WORKER=true
        # the app's own objects (routes, models, schemas, imported modules) would be re-walked by every full
        # collection, a pause every request in flight waits out: freeze them once they are built
        # (chargeverse/gc_pacing.py says why the OCPP edge does more)
        freeze_startup_objects()
        try:
            yield
        finally:
            if notifier is not None:
                await asyncio.get_running_loop().run_in_executor(None, notifier.stop)
            if getattr(app.state, "photo_blobs", None) is not None:
                app.state.photo_blobs.close()
            await asyncio.get_running_loop().run_in_executor(None, app.state.producer.flush)
            app.state.producer.close()
            await app.state.pg.close()
            await app.state.pg_read.close()
            await app.state.redis.aclose()

    app = FastAPI(title="chargeverse API", version="0.1.0", lifespan=lifespan,
                  description="Driver, fleet and operator API of chargeverse. Authenticate with a Bearer JWT.")
    # station search first: routes are matched in order, and the busiest endpoint need not be compared with
    # every account route before it is found (its paths, /api/stations and /api/stations/{id}, shadow no other)
    app.include_router(stations.router)
    app.include_router(accounts.router)
    app.include_router(me.router)
    app.include_router(admin.router)
    app.include_router(commands.router)
    app.include_router(session_control.router)
    app.include_router(sessions.router)
    app.include_router(fleets.router)
    app.include_router(tariffs.router)
    app.include_router(billing.router)
    app.include_router(audit.router)
    app.include_router(community.router)
    app.include_router(analytics.router)
    app.include_router(notifications.router)
    app.include_router(smartcharging.router)
    app.include_router(forecasts.router)
    from edges.api import pnc  # Plug & Charge: OCSP, CRL (public), enrolment/revocation (admin)

    app.include_router(pnc.router)

    app.add_middleware(RefuseNul)

    @app.exception_handler(psycopg.DataError)
    async def unstorable_value(request: Any, exc: psycopg.DataError) -> JSONResponse:
        """A value Postgres cannot hold (a NUL character in a text field, a number out of range) is the caller's
        mistake, not a server error: 422 with the reason, and the API keeps serving."""
        return JSONResponse({"detail": f"a value in the request cannot be stored or searched: {exc}"[:300]},
                            status_code=422)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the projections it reads answer")
    async def readyz() -> JSONResponse:
        checks = {}
        try:
            async with app.state.pg.connection() as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["postgres"] = f"down: {type(exc).__name__}"
        try:
            await app.state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"down: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    def openapi() -> dict:
        """The OpenAPI document, with 422 documented as it is answered: FastAPI's list of field errors for
        malformed requests, or one sentence saying why a well-formed request cannot be served."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = doc.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"]["properties"]["detail"] = {
                    "title": "Detail", "anyOf": [
                        {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                        {"type": "string", "description": "why the request cannot be served"}]}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
