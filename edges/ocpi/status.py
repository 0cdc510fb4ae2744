"""OCPI status codes, the response envelope, and the one exception every handler raises.  Pure: no I/O.

Every answer of the edge - success or error, from a handler or from a framework failure - is the OCPI envelope
`{data, status_code, status_message, timestamp}`.  HTTP statuses follow OCPI 2.2.1 "Status codes": a body that is
not JSON is HTTP 400; a missing or unknown credentials token is HTTP 401; a request that reached the OCPI layer
(authenticated, JSON, addressing an existing resource) is HTTP 200 whatever its OCPI status, so a schema error is
HTTP 200 + 2001; an object that does not exist is HTTP 404 (+ 2003 for a Location).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    UNABLE_TO_USE_CLIENT_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003
    HUB_ERROR = 4000
    UNKNOWN_RECEIVER = 4001
    HUB_TIMEOUT = 4002
    HUB_CONNECTION = 4003


class OcpiError(Exception):
    """An OCPI error answer: OCPI status, message, HTTP status (and optional debugging `data`)."""

    def __init__(self, status: Status, message: str, http_status: int = 200, data: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status
        self.data = data
        self.headers = headers or {}


def unauthorized(message: str = "missing or unknown credentials token") -> OcpiError:
    return OcpiError(Status.INVALID_PARAMETERS, message, 401, headers={"WWW-Authenticate": "Token"})


def invalid(message: str, data: Any = None) -> OcpiError:
    return OcpiError(Status.INVALID_PARAMETERS, message, 200, data)


def not_allowed(message: str) -> OcpiError:
    return OcpiError(Status.CLIENT_ERROR, message, 405)


def ocpi_timestamp(dt: datetime | None = None) -> str:
    """An OCPI DateTime: RFC 3339 in UTC with a `Z`, to the second (or to the microsecond when it has one)."""
    dt = (dt or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def envelope(data: Any = None, status: int = Status.SUCCESS, message: str | None = "Success",
             now: datetime | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data is not None:
        out["data"] = data
    out["status_code"] = int(status)
    if message is not None:
        out["status_message"] = message
    out["timestamp"] = ocpi_timestamp(now)
    return out


def envelope_raw(data_json: str | None, status: int = Status.SUCCESS, message: str | None = "Success",
                 now: datetime | None = None) -> str:
    """The envelope with `data` given as JSON text, spliced in as is: stored objects are served byte for byte,
    without a parse and a re-serialisation that could change a number's spelling."""
    tail = json.dumps(envelope(None, status, message, now))[1:]
    if data_json is None:
        return "{" + tail
    return '{"data": ' + data_json + ", " + tail
