"""The OCPI edge as a FastAPI app (`cv run ocpi`): everything under `/ocpi`, health at `/healthz` and `/readyz`.

Every answer is an OCPI envelope and carries `X-Request-ID` (the request's, or a new one) and `X-Correlation-ID`
(the request's, or a new one); answers of functional modules (`/ocpi/emsp/...`, `/ocpi/cpo/...`) also carry the
routing headers, swapped from the request's (edges/ocpi/headers.py).  Framework errors are mapped to OCPI:
unknown path or method -> 2000 with the HTTP status, bad query parameter -> 400 + 2001, anything unexpected ->
500 + 3000 (logged, the partner sees no internals).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, AsyncIterator, Callable

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargeverse.kafka import EventProducer
from chargeverse.settings import Settings, get_settings
from edges.ocpi import VERSION, admin, commands_api, cpo_senders, credentials, hubclientinfo, receivers, senders, tokens_sender
from edges.ocpi.config import parties
from edges.ocpi.context import OcpiContext, _utcnow, token_box
from edges.ocpi.headers import CORRELATION_ID, REQUEST_ID, new_id, parse_route, response_route_headers
from edges.ocpi.status import OcpiError, Status, envelope

log = logging.getLogger(__name__)

_FUNCTIONAL = ("/ocpi/emsp/", "/ocpi/cpo/")


def create_app(settings: Settings | None = None, *,
               clock: Callable[[], datetime] | None = None, producer: EventProducer | None = None) -> FastAPI:
    s = settings or get_settings()
    parties(s)  # fail at start on a bad role list

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        from projections.postgres.migrate import connect, migrate

        dsn = s.postgres_dsn.get_secret_value()

        def _migrate() -> None:
            with connect(dsn, s.ocpi_schema_name) as conn:
                migrate(conn, s.ocpi_schema_name)

        await asyncio.get_running_loop().run_in_executor(None, _migrate)
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=10, open=False,
                                   kwargs={"options": f"-c search_path={s.ocpi_schema_name},public"})
        await pool.open(wait=True, timeout=30)
        own_producer = producer is None
        prod = producer or EventProducer()
        http = httpx.AsyncClient(timeout=s.ocpi_http_timeout, follow_redirects=False)
        # the admin API authenticates operators like the app API does (edges/api/auth.py: JWT keyring in Redis)
        app.state.redis = aioredis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)
        follower = None
        if s.ocpi_follow:
            from projections.postgres.ocpi_follow import Follower

            follower = Follower(ocpi_projections(s)).start()
        app.state.ocpi = OcpiContext(s, pool, prod, token_box(s), http, clock or _utcnow)
        worker = None
        if s.ocpi_commands_worker:
            from edges.ocpi.commands_worker import CommandsWorker

            worker = await asyncio.get_running_loop().run_in_executor(
                None, CommandsWorker(s, clock=clock or _utcnow).start)
        pusher = None
        if s.ocpi_push_worker:
            from edges.ocpi.push_worker import PushWorker

            pusher = await asyncio.get_running_loop().run_in_executor(None, PushWorker(s).start)
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.get_running_loop().run_in_executor(None, worker.stop)
            if pusher is not None:
                await asyncio.get_running_loop().run_in_executor(None, pusher.stop)
            await http.aclose()
            await app.state.redis.aclose()
            await pool.close()
            if own_producer:
                prod.close()
            if follower is not None:
                follower.stop()

    app = FastAPI(title="chargeverse OCPI", version=VERSION, lifespan=lifespan,
                  description="OCPI 2.2.1 edge: credentials, locations, sessions, CDRs, tariffs, tokens, commands. "
                              "Authenticate with `Authorization: Token <base64 credentials token>`.")
    app.include_router(credentials.router, prefix="/ocpi")
    app.include_router(receivers.emsp, prefix="/ocpi")
    app.include_router(receivers.cpo, prefix="/ocpi")
    app.include_router(senders.router, prefix="/ocpi")
    app.include_router(cpo_senders.router, prefix="/ocpi")
    app.include_router(hubclientinfo.router, prefix="/ocpi")
    app.include_router(tokens_sender.router, prefix="/ocpi")
    app.include_router(commands_api.cpo, prefix="/ocpi")
    app.include_router(commands_api.emsp, prefix="/ocpi")
    app.include_router(admin.router, prefix="/ocpi")

    @app.middleware("http")
    async def message_ids(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers[REQUEST_ID] = request.headers.get(REQUEST_ID) or new_id()
        response.headers[CORRELATION_ID] = request.headers.get(CORRELATION_ID) or new_id()
        if request.url.path.startswith(_FUNCTIONAL):
            us = (s.ocpi_country_code, s.ocpi_party_id)
            for k, v in response_route_headers(parse_route(request.headers), us).items():
                response.headers[k] = v
        return response

    @app.exception_handler(OcpiError)
    async def ocpi_error(request: Request, exc: OcpiError) -> JSONResponse:
        return JSONResponse(envelope(exc.data, exc.status, exc.message), status_code=exc.http_status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse(envelope(None, Status.INVALID_PARAMETERS, problems), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.url.path.startswith("/ocpi/admin"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return JSONResponse(envelope(None, Status.CLIENT_ERROR, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(envelope(None, Status.SERVER_ERROR, "internal error; it has been logged"),
                            status_code=500)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the partner projection answers")
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with request.app.state.ocpi.pool.connection() as conn:
                await conn.execute("SELECT 1 FROM ocpi_partners LIMIT 1")
            return JSONResponse({"ready": True})
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"ready": False, "postgres": type(exc).__name__}, status_code=503)

    return app


def ocpi_projections(settings: Settings) -> list[Any]:
    from projections.postgres.ocpi_objects import OcpiObjectsProjection
    from projections.postgres.ocpi_partners import OcpiPartnersProjection

    dsn = settings.postgres_dsn.get_secret_value()
    return [OcpiPartnersProjection(dsn, settings.ocpi_schema_name, settings.ocpi_platform_id),
            OcpiObjectsProjection(dsn, settings.ocpi_schema_name, settings.ocpi_platform_id)]


def run() -> None:
    """`cv run ocpi`."""
    import uvicorn

    s = get_settings()
    uvicorn.run(create_app(s), host=s.ocpi_host, port=s.ocpi_port, log_level="info")
