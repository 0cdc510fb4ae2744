"""OCPI message routing and message id headers.  Pure: no I/O.

- `X-Request-ID`: new for every request we send (every hop: a forwarded request gets a new one); a response
  carries the id of the request it answers.
- `X-Correlation-ID`: kept across hops; a response carries the request's, and a request we make *because of*
  another (fetching a partner's versions while answering its credentials POST) carries the cause's.
- `OCPI-to-*` / `OCPI-from-*` (OCPI 2.2.1 §4.1.6): set on requests and responses of functional modules, never on
  configuration modules (versions, credentials, hubclientinfo).  A request's `to` must be one of our parties; a
  response swaps the request's pair.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Mapping

REQUEST_ID = "X-Request-ID"
CORRELATION_ID = "X-Correlation-ID"
TO_PARTY = "OCPI-to-party-id"
TO_COUNTRY = "OCPI-to-country-code"
FROM_PARTY = "OCPI-from-party-id"
FROM_COUNTRY = "OCPI-from-country-code"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Route:
    """Who a message goes from and to (country code, party id), as the routing headers say."""

    from_country: str | None = None
    from_party: str | None = None
    to_country: str | None = None
    to_party: str | None = None

    @property
    def sender(self) -> tuple[str, str] | None:
        return (self.from_country, self.from_party) if self.from_country and self.from_party else None

    @property
    def receiver(self) -> tuple[str, str] | None:
        return (self.to_country, self.to_party) if self.to_country and self.to_party else None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name) or headers.get(name.lower())
    return v.strip().upper() if v and v.strip() else None


def parse_route(headers: Mapping[str, str]) -> Route:
    """The routing headers of a request (names are case-insensitive; Starlette's headers already are)."""
    return Route(_get(headers, FROM_COUNTRY), _get(headers, FROM_PARTY), _get(headers, TO_COUNTRY),
                 _get(headers, TO_PARTY))


def response_route_headers(request: Route, us: tuple[str, str]) -> dict[str, str]:
    """A response's routing headers: from = the party addressed (or us), to = the requesting party if known."""
    out = {FROM_COUNTRY: (request.receiver or us)[0], FROM_PARTY: (request.receiver or us)[1]}
    if request.sender:
        out[TO_COUNTRY], out[TO_PARTY] = request.sender
    return out


def request_headers(authorization: str, *, correlation_id: str | None = None,
                    sender: tuple[str, str] | None = None, receiver: tuple[str, str] | None = None,
                    request_id: str | None = None) -> dict[str, str]:
    """Headers of a request we send: a new request id, the given (or a new) correlation id, routing if given."""
    h = {"Authorization": authorization, REQUEST_ID: request_id or new_id(),
         CORRELATION_ID: correlation_id or new_id()}
    if sender:
        h[FROM_COUNTRY], h[FROM_PARTY] = sender
    if receiver:
        h[TO_COUNTRY], h[TO_PARTY] = receiver
    return h
