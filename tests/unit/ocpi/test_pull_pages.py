"""The paged pull (edges/ocpi/pull.py `pages`) against a fake partner: follows Link rel="next", keeps objects
verbatim, retries what is worth retrying with backoff, gives up on what is not, and never runs more than one page
ahead of its consumer (memory flat in the number of objects)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from edges.ocpi.client import PartnerError
from edges.ocpi.pull import pages


class FakeSender:
    """A partner's sender interface with `n` objects, `per_page` per page, and scripted failures."""

    def __init__(self, n: int, per_page: int, failures: dict[int, list[int]] | None = None) -> None:
        self.n, self.per_page = n, per_page
        self.failures = failures or {}  # offset -> HTTP statuses to answer first
        self.requests: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            offset = int(request.url.params.get("offset", "0"))
            queued = self.failures.get(offset)
            if queued:
                status = queued.pop(0)
                return httpx.Response(status, json={"status_code": 3000, "timestamp": "2020-01-01T00:00:00Z"})
            objs = ", ".join(f'{{"id": "L{i}", "price": {i}.10}}' for i in range(offset, min(offset + self.per_page,
                                                                                           self.n)))
            headers = {"X-Total-Count": str(self.n), "X-Limit": str(self.per_page)}
            if offset + self.per_page < self.n:
                headers["Link"] = f'<https://cpo.example/locations?offset={offset + self.per_page}>; rel="next"'
            body = f'{{"data": [{objs}], "status_code": 1000, "timestamp": "2020-01-01T00:00:00Z"}}'
            return httpx.Response(200, text=body, headers=headers)
        finally:
            self.in_flight -= 1


async def _collect(sender: FakeSender, **kw: object) -> list:
    async with httpx.AsyncClient(transport=httpx.MockTransport(sender.handler)) as http:
        return [p async for p in pages(http, "https://cpo.example/locations", {"Authorization": "Token x"},
                                       backoff=0.001, **kw)]


async def test_follows_every_next_link_and_keeps_objects_verbatim() -> None:
    sender = FakeSender(n=10, per_page=4)
    got = await _collect(sender)
    assert [len(p.items) for p in got] == [4, 4, 2]
    raws = [raw for p in got for raw, _ in p.items]
    assert raws[0] == '{"id": "L0", "price": 0.10}' and len(raws) == 10
    assert got[0].total == 10 and got[0].limit == 4 and got[-1].next is None
    assert len({p.request_id for p in got}) == 3  # a new X-Request-ID per request


async def test_transient_failures_are_retried_with_backoff() -> None:
    sender = FakeSender(n=6, per_page=3, failures={3: [503, 502]})
    got = await _collect(sender)
    assert sum(len(p.items) for p in got) == 6
    assert len(sender.requests) == 4  # page 2 took three attempts


@pytest.mark.parametrize("status", [401, 404])
async def test_client_errors_are_not_retried(status: int) -> None:
    sender = FakeSender(n=6, per_page=3, failures={0: [status]})
    with pytest.raises(PartnerError) as e:
        await _collect(sender)
    assert e.value.http_status == status and len(sender.requests) == 1


async def test_an_ocpi_error_status_or_a_non_envelope_stops_the_pull() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=json.dumps({"status_code": 2001, "status_message": "bad date_from"}))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(PartnerError, match="2001"):
            [p async for p in pages(http, "https://cpo.example/l", {}, backoff=0.001)]

    async def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(garbage)) as http:
        with pytest.raises(PartnerError):
            [p async for p in pages(http, "https://cpo.example/l", {}, retries=1, backoff=0.001)]


async def test_never_more_than_one_page_ahead_of_the_consumer() -> None:
    sender = FakeSender(n=200, per_page=10)
    consumed = 0
    async with httpx.AsyncClient(transport=httpx.MockTransport(sender.handler)) as http:
        async for _ in pages(http, "https://cpo.example/locations", {}, backoff=0.001):
            consumed += 1
            await asyncio.sleep(0.005)  # a slow consumer: the fetcher must wait for it
            assert len(sender.requests) <= consumed + 1
    assert consumed == 20 and sender.max_in_flight == 1
