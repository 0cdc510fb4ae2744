"""Pulling from a partner's sender interface (GET lists, paged) into the log.

`pages()` is an async generator over one paged GET: it follows `Link: rel="next"` until there is none, reads
`X-Total-Count`/`X-Limit`, retries a failing page with exponential backoff (transport errors, HTTP 5xx and 429),
and holds at most two pages at a time - the one being consumed and the next one, fetched meanwhile - so a pull
of 100,000 Locations runs in memory flat in their number.  Each object is split out of the page as the exact text
the partner sent (edges/ocpi/paging.py).

`pull()` publishes every pulled object as OcpiObjectReceived (method PULL) on `ocpi.inbound`, valid or not,
awaiting the broker's acknowledgement of a page before asking for the one after next (back-pressure: a slow log
slows the pull, it never piles up pages).  Objects that fail validation, or belong to a party the connection
does not speak for, are published as invalid and never reach the projection, so the partner's previous good
data stays visible.  Incremental pulls pass `date_from` (inclusive) - the `date_to` of the previous pull.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator

import httpx

from chargeverse.kafka import Delivered
from chargeverse.topics import OCPI_INBOUND
from edges.ocpi.client import PartnerError
from edges.ocpi.context import OBJECTS, OcpiContext
from edges.ocpi.credtokens import authorization
from edges.ocpi.events import object_key, object_received
from edges.ocpi.headers import REQUEST_ID, new_id, request_headers
from edges.ocpi.models import check
from edges.ocpi.paging import PageFormatError, next_link, page_items
from edges.ocpi.status import ocpi_timestamp
from edges.ocpi.store import Partner

log = logging.getLogger(__name__)

KIND = {"locations": "location", "sessions": "session", "cdrs": "cdr", "tariffs": "tariff", "tokens": "token"}
ID_FIELD = {"locations": "id", "sessions": "id", "cdrs": "id", "tariffs": "id", "tokens": "uid"}
#: whose objects each module's sender serves
OWNER_ROLES = {"locations": ("CPO",), "sessions": ("CPO",), "cdrs": ("CPO",), "tariffs": ("CPO",),
               "tokens": ("EMSP",)}


@dataclass
class Page:
    url: str
    items: list[tuple[str, Any]]
    total: int | None
    limit: int | None
    request_id: str
    next: str | None = None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, PartnerError) and (exc.http_status or 0) in (429, 500, 502, 503, 504)


async def _get_page(http: httpx.AsyncClient, url: str, params: dict[str, str] | None, headers: dict[str, str],
                    retries: int, backoff: float) -> Page:
    attempt = 0
    while True:
        h = dict(headers, **{REQUEST_ID: new_id()})
        try:
            resp = await http.get(url, params=params, headers=h)
            if resp.status_code >= 300:
                raise PartnerError(f"GET {url}: HTTP {resp.status_code}", http_status=resp.status_code)
            try:
                body = page_items(resp.text)
            except PageFormatError as exc:
                raise PartnerError(f"GET {url}: {exc}", http_status=resp.status_code) from None
            if body.status_code is None or not 1000 <= body.status_code < 2000:
                raise PartnerError(f"GET {url}: OCPI {body.status_code} {body.status_message or ''}",
                                   http_status=resp.status_code, status=body.status_code)

            def num(name: str) -> int | None:
                v = resp.headers.get(name)
                return int(v) if v and v.strip().isdigit() else None

            nxt = next_link(resp.headers.get("link"))
            return Page(str(resp.url), body.items, num("X-Total-Count"), num("X-Limit"), h[REQUEST_ID], nxt)
        except (httpx.TransportError, PartnerError) as exc:
            attempt += 1
            if attempt > retries or not _retryable(exc):
                raise PartnerError(str(exc), http_status=getattr(exc, "http_status", None)) from exc
            delay = backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("GET %s failed (%s); retry %d/%d in %.1fs", url, exc, attempt, retries, delay)
            await asyncio.sleep(delay)


async def pages(http: httpx.AsyncClient, url: str, headers: dict[str, str], *,
                params: dict[str, str] | None = None, retries: int = 4,
                backoff: float = 0.5) -> AsyncIterator[Page]:
    """Every page of a paged GET, following Link rel="next"; the next page is fetched while this one is used."""
    pending: asyncio.Task[Page] | None = asyncio.create_task(_get_page(http, url, params, headers, retries, backoff))
    try:
        while pending is not None:
            page = await pending
            pending = (asyncio.create_task(_get_page(http, page.next, None, headers, retries, backoff))
                       if page.next and page.items else None)
            yield page
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


@dataclass
class PullStats:
    pages: int = 0
    objects: int = 0
    invalid: int = 0
    total: int | None = None
    last: dict[int, Delivered] = field(default_factory=dict)  # partition -> last delivery


async def pull(ctx: OcpiContext, p: Partner, module: str, *, date_from: datetime | None = None,
               date_to: datetime | None = None, limit: int | None = None, wait: bool = True,
               wait_timeout: float = 600.0) -> PullStats:
    """Pull `module` from partner `p`'s sender interface into `ocpi.inbound`; with `wait`, return once the
    objects projection has applied everything published."""
    url = p.endpoint(module, "SENDER")
    if url is None or not p.their_token_sealed:
        raise PartnerError(f"partner {p.partner_id} has no {module} sender endpoint")
    token = ctx.box.open(p.their_token_sealed, p.partner_id)
    correlation = new_id()
    params: dict[str, str] = {}
    if date_from is not None:
        params["date_from"] = ocpi_timestamp(date_from)
    if date_to is not None:
        params["date_to"] = ocpi_timestamp(date_to)
    if limit is not None:
        params["limit"] = str(limit)
    sender = ctx.us
    headers = request_headers(authorization(token, p.plain_token), correlation_id=correlation, sender=sender,
                              receiver=p.first_party(OWNER_ROLES[module][0]))
    stats = PullStats()
    kind, id_field = KIND[module], ID_FIELD[module]
    async for page in pages(ctx.http, url, headers, params=params or None):
        stats.pages += 1
        stats.total = page.total if page.total is not None else stats.total
        sends = []
        for raw, obj in page.items:
            v = check(kind, obj)
            errors = list(v.errors)
            ids = [obj.get(f) if isinstance(obj, dict) else None for f in ("country_code", "party_id", id_field)]
            cc, pid, oid = (x if isinstance(x, str) else "" for x in ids)
            if v.ok and not p.speaks_for(cc, pid, OWNER_ROLES[module]):
                errors.append(f"{cc}/{pid} is not a party of this connection")
            token_type = (obj.get("type") or "RFID") if module == "tokens" and isinstance(obj, dict) else None
            rec = object_received(platform_id=ctx.settings.ocpi_platform_id, partner_id=p.partner_id, module=module,
                                  method="PULL", country_code=cc, party_id=pid, object_id=oid, raw=raw,
                                  valid=not errors, errors=errors, warnings=v.warnings,
                                  token_type=token_type if isinstance(token_type, str) else None,
                                  request_id=page.request_id, source=ctx.source, correlation_id=correlation)
            stats.objects += 1
            stats.invalid += bool(errors)
            # futures, not coroutines: gather would wrap each coroutine in a task (a page is 1,000 objects)
            sends.append(ctx.producer.publish_nowait(OCPI_INBOUND.name, object_key(
                p.partner_id, module, cc, pid, oid, rec["token_type"]), "OcpiObjectReceived", rec))
        for d in await asyncio.gather(*sends):
            prev = stats.last.get(d.partition)
            if prev is None or d.offset > prev.offset:
                stats.last[d.partition] = d
    if wait:
        for d in stats.last.values():
            await ctx.wait(OBJECTS, d, timeout=wait_timeout)
    log.info("pulled %d %s from %s in %d pages (%d invalid)", stats.objects, module, p.partner_id, stats.pages,
             stats.invalid)
    return stats
