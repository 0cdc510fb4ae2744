"""The response envelope (edges/ocpi/status.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from edges.ocpi.status import Status, envelope, envelope_raw, ocpi_timestamp

NOW = datetime(2015, 6, 30, 21, 59, 59, tzinfo=timezone.utc)


def test_envelope_fields() -> None:
    assert envelope({"a": 1}, now=NOW) == {"data": {"a": 1}, "status_code": 1000, "status_message": "Success",
                                           "timestamp": "2015-06-30T21:59:59Z"}
    e = envelope(None, Status.INVALID_PARAMETERS, "Missing required field: type", now=NOW)
    assert e == {"status_code": 2001, "status_message": "Missing required field: type",
                 "timestamp": "2015-06-30T21:59:59Z"}


def test_raw_envelope_splices_stored_json_unchanged() -> None:
    doc = '{"price": 2.00, "id": "X"}'
    text = envelope_raw(doc, now=NOW)
    assert doc in text
    assert json.loads(text) == {"data": {"price": 2.0, "id": "X"}, "status_code": 1000,
                                "status_message": "Success", "timestamp": "2015-06-30T21:59:59Z"}
    assert json.loads(envelope_raw(None, 2003, "unknown location", now=NOW))["status_code"] == 2003
    assert json.loads(envelope_raw("[]"))["data"] == []


def test_timestamps_are_utc_with_z() -> None:
    from datetime import timedelta

    assert ocpi_timestamp(NOW.astimezone(timezone(timedelta(hours=2)))) == "2015-06-30T21:59:59Z"
    assert ocpi_timestamp(NOW.replace(microsecond=5000)) == "2015-06-30T21:59:59.005000Z"
