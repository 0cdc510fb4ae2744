"""OCPI pagination, both sides.  Pure: no I/O.

Serving (OCPI 2.2.1 §4.1.5): `date_from` inclusive, `date_to` exclusive, `offset`, `limit` capped at our page
limit; the answer carries `X-Total-Count` (matching objects, ignoring offset/limit), `X-Limit` (our cap, not the
number returned) and, unless it is the last page, `Link: <next>; rel="next"` repeating every filter.
A sender that orders by a unique key may also put `after=<cursor>` (opaque to partners: base64url of the last
object's sort key) into its next link beside the offset: following it, the next page starts after that key with
an index seek instead of counting `offset` rows from the start (which made late pages of a 100,000-location pull
slow), and an object updated during the pull moves to the end instead of shifting a page and being skipped.
A partner that builds its own `offset` gets exactly the standard behaviour.

Pulling: `page_items` splits one page's body into its objects *as text*, exactly as the partner wrote them (with
the C JSON scanner, no re-serialisation), so a pulled object is kept verbatim like a pushed one; `next_link` reads
the `Link` header.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import urlencode

from edges.ocpi.status import OcpiError, Status, ocpi_timestamp
from projections.postgres.ocpi_fold import parse_datetime


@dataclass(frozen=True)
class PageRequest:
    date_from: datetime | None
    date_to: datetime | None
    offset: int
    limit: int
    #: keyset cursor from our own next link: (updated_at, id) of the last object of the previous page
    after: tuple[datetime, str] | None = None


def encode_cursor(stamp: datetime, key: str) -> str:
    raw = json.dumps([stamp.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    """The (timestamp, key) of an `after` cursor; ValueError when it is not one of ours."""
    try:
        stamp, key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        when = datetime.fromisoformat(stamp)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a page cursor: {exc}") from None
    if when.tzinfo is None or not isinstance(key, str):
        raise ValueError("not a page cursor")
    return when, key


def parse_page(params: Mapping[str, str], max_limit: int) -> PageRequest:
    """The page a GET asks for; 2001 on values that are not what OCPI says they are."""
    def dt(name: str) -> datetime | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        v = parse_datetime(raw)
        if v is None:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} must be an RFC 3339 DateTime, got {raw!r}", 400)
        return v

    def num(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            v = int(raw)
        except ValueError:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} must be an integer, got {raw!r}", 400) from None
        if v < 0:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} must not be negative", 400)
        return v

    date_from, date_to = dt("date_from"), dt("date_to")
    limit = num("limit", max_limit)
    after = None
    if params.get("after"):
        try:
            after = decode_cursor(params["after"])
        except ValueError as exc:
            raise OcpiError(Status.INVALID_PARAMETERS, f"after: {exc}", 400) from None
    return PageRequest(date_from, date_to, num("offset", 0), min(limit, max_limit) if limit > 0 else max_limit,
                       after)


def page_headers(url: str, page: PageRequest, total: int, returned: int, max_limit: int,
                 last_key: tuple[datetime, str] | None = None) -> dict[str, str]:
    """X-Total-Count, X-Limit and (unless last) the Link to the next page, with the request's filters (and the
    keyset cursor after `last_key`, for senders that page by it)."""
    h = {"X-Total-Count": str(total), "X-Limit": str(max_limit)}
    nxt = page.offset + returned
    if returned > 0 and nxt < total:
        q: dict[str, str] = {}
        if page.date_from is not None:
            q["date_from"] = ocpi_timestamp(page.date_from)
        if page.date_to is not None:
            q["date_to"] = ocpi_timestamp(page.date_to)
        q["offset"] = str(nxt)
        q["limit"] = str(page.limit)
        if last_key is not None:
            q["after"] = encode_cursor(*last_key)
        h["Link"] = f'<{url}?{urlencode(q)}>; rel="next"'
    return h


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_REL_NEXT = re.compile(r'rel\s*=\s*"?([^";]*)"?', re.I)


def next_link(header: str | None) -> str | None:
    """The `rel="next"` target of a Link header (RFC 8288; several links may be comma separated)."""
    if not header:
        return None
    for m in _LINK.finditer(header):
        rel = _REL_NEXT.search(m.group(2))
        if rel and "next" in rel.group(1).lower().split():
            return m.group(1).strip()
    return None


# ---- one page's objects, verbatim ------------------------------------------------------------------------------

_decoder = json.JSONDecoder(parse_float=Decimal)
_WS = re.compile(r"[ \t\n\r]*")


class PageFormatError(ValueError):
    """The page is not an OCPI envelope whose `data` is a list."""


@dataclass
class PageBody:
    status_code: int | None
    status_message: str | None
    items: list[tuple[str, Any]]  # (verbatim text, parsed) of each element of `data`


def page_items(text: str) -> PageBody:
    """Parse an envelope, keeping each element of `data` as the exact text it was sent as."""
    idx = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[idx:idx + 1] != "{":
        raise PageFormatError("the answer is not a JSON object")
    idx += 1
    status_code: int | None = None
    status_message: str | None = None
    items: list[tuple[str, Any]] | None = None
    try:
        while True:
            idx = _WS.match(text, idx).end()  # type: ignore[union-attr]
            if text[idx] == "}":
                break
            if text[idx] == ",":
                idx += 1
                continue
            key, idx = _decoder.raw_decode(text, idx)
            idx = _WS.match(text, idx).end()  # type: ignore[union-attr]
            if text[idx] != ":":
                raise PageFormatError(f"expected ':' at {idx}")
            idx = _WS.match(text, idx + 1).end()  # type: ignore[union-attr]
            if key == "data" and text[idx] == "[":
                items = []
                idx += 1
                while True:
                    idx = _WS.match(text, idx).end()  # type: ignore[union-attr]
                    if text[idx] == "]":
                        idx += 1
                        break
                    if text[idx] == ",":
                        idx += 1
                        continue
                    start = idx
                    value, idx = _decoder.raw_decode(text, idx)
                    items.append((text[start:idx], value))
            else:
                value, idx = _decoder.raw_decode(text, idx)
                if key == "status_code" and isinstance(value, int):
                    status_code = value
                elif key == "status_message" and isinstance(value, str):
                    status_message = value
                elif key == "data" and value is None:
                    items = []
                elif key == "data":
                    raise PageFormatError("`data` is not a list")
    except (json.JSONDecodeError, IndexError) as exc:
        raise PageFormatError(f"not JSON: {exc}") from exc
    return PageBody(status_code, status_message, items if items is not None else [])
