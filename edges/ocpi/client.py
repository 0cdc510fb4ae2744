"""Our side of OCPI calls: requests to a partner, with the right headers, read as OCPI envelopes.

Every request carries a new X-Request-ID, the X-Correlation-ID of the conversation it belongs to, and the
Authorization header in the partner's encoding (Base64, or bare for `plain_token` partners); functional-module
requests also carry the routing headers.  Transport failures, non-2xx answers, answers that are not an OCPI
envelope and non-1xxx statuses all raise PartnerError with what happened - never a token.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from edges.ocpi import VERSION
from edges.ocpi.credtokens import authorization
from edges.ocpi.headers import request_headers
from edges.ocpi.models import check
from projections.postgres.ocpi_fold import loads

log = logging.getLogger(__name__)


class PartnerError(RuntimeError):
    """A call to a partner failed; `status` is the OCPI status they answered (when they did)."""

    def __init__(self, message: str, *, http_status: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status


@dataclass
class Answer:
    data: Any
    status_code: int
    status_message: str | None
    response: httpx.Response


async def call(http: httpx.AsyncClient, method: str, url: str, token: str, *, plain: bool = False,
               body: Any = None, params: dict[str, str] | None = None, correlation_id: str | None = None,
               sender: tuple[str, str] | None = None, receiver: tuple[str, str] | None = None,
               timeout: float | None = None) -> Answer:
    headers = request_headers(authorization(token, plain), correlation_id=correlation_id, sender=sender,
                              receiver=receiver)
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    try:
        resp = await http.request(method, url, headers=headers, content=content, params=params,
                                  timeout=timeout or httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as exc:
        raise PartnerError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    try:
        env = loads(resp.content)
    except ValueError:
        raise PartnerError(f"{method} {url}: HTTP {resp.status_code}, answer is not JSON",
                           http_status=resp.status_code) from None
    if not isinstance(env, dict) or not isinstance(env.get("status_code"), int):
        raise PartnerError(f"{method} {url}: HTTP {resp.status_code}, answer is not an OCPI envelope",
                           http_status=resp.status_code)
    status, message = env["status_code"], env.get("status_message")
    if resp.status_code >= 300 or not 1000 <= status < 2000:
        raise PartnerError(f"{method} {url}: HTTP {resp.status_code}, OCPI {status} {message or ''}".strip(),
                           http_status=resp.status_code, status=status)
    return Answer(env.get("data"), status, message, resp)


async def fetch_endpoints(http: httpx.AsyncClient, versions_url: str, token: str, *, plain: bool = False,
                          correlation_id: str | None = None) -> tuple[str, list[dict[str, str]]]:
    """GET their versions, pick 2.2.1, GET its details: (version, endpoints).  PartnerError when they do not
    speak 2.2.1 (status 3002) or answer something unreadable."""
    ans = await call(http, "GET", versions_url, token, plain=plain, correlation_id=correlation_id)
    v = check("versions", {"versions": ans.data})
    if not v.ok:
        raise PartnerError(f"their versions are unreadable: {v.message()}")
    url = next((x["url"] for x in ans.data if x["version"] == VERSION), None)
    if url is None:
        raise PartnerError(f"they offer OCPI {', '.join(x['version'] for x in ans.data)}, not {VERSION}",
                           status=3002)
    det = await call(http, "GET", url, token, plain=plain, correlation_id=correlation_id)
    v = check("version_details", det.data)
    if not v.ok:
        raise PartnerError(f"their version details are unreadable: {v.message()}")
    return VERSION, [{"identifier": e["identifier"], "role": e["role"], "url": e["url"]}
                     for e in det.data["endpoints"]]


def endpoint_of(endpoints: list[dict[str, str]], identifier: str, role: str | None = None) -> str | None:
    for e in endpoints:
        if e["identifier"] == identifier and (role is None or e["role"] == role):
            return e["url"]
    return None
