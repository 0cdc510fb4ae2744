"""Pagination (edges/ocpi/paging.py): requests parsed and capped, headers as OCPI 2.2.1 §4.1.5 says, and a page's
objects split out verbatim."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from edges.ocpi.paging import PageFormatError, PageRequest, next_link, page_headers, page_items, parse_page
from edges.ocpi.status import OcpiError, Status

T0 = datetime(2019, 1, 28, 12, 0, tzinfo=timezone.utc)


def test_defaults_and_the_cap() -> None:
    assert parse_page({}, 100) == PageRequest(None, None, 0, 100)
    assert parse_page({"limit": "2000"}, 100).limit == 100  # oversized: capped at X-Limit
    assert parse_page({"limit": "0"}, 100).limit == 100
    p = parse_page({"date_from": "2019-01-28T12:00:00Z", "date_to": "2019-01-29T12:00:00", "offset": "50",
                    "limit": "10"}, 100)
    assert p == PageRequest(T0, datetime(2019, 1, 29, 12, tzinfo=timezone.utc), 50, 10)


@pytest.mark.parametrize("params", [{"limit": "ten"}, {"offset": "-1"}, {"date_from": "yesterday"},
                                    {"date_to": "2019-01-28"}])
def test_bad_parameters_are_2001(params: dict) -> None:
    with pytest.raises(OcpiError) as e:
        parse_page(params, 100)
    assert e.value.status == 2001 and e.value.http_status == 400


def test_headers_of_a_middle_page_link_the_next_with_every_filter() -> None:
    page = PageRequest(T0, None, 100, 100)
    h = page_headers("https://x/ocpi/cpo/2.2.1/cdrs", page, total=350, returned=100, max_limit=100)
    assert h["X-Total-Count"] == "350" and h["X-Limit"] == "100"
    assert h["Link"] == ('<https://x/ocpi/cpo/2.2.1/cdrs?date_from=2019-01-28T12%3A00%3A00Z&offset=200&limit=100>;'
                         ' rel="next"')


def test_the_last_page_has_no_link_and_x_limit_stays_the_cap() -> None:
    h = page_headers("https://x/l", PageRequest(None, None, 300, 100), total=350, returned=50, max_limit=100)
    assert "Link" not in h and h["X-Limit"] == "100"
    assert "Link" not in page_headers("https://x/l", PageRequest(None, None, 0, 100), 0, 0, 100)


@pytest.mark.parametrize("header, want", [
    ('<https://s/ocpi/cpo/2.2.1/cdrs/?offset=150&limit=50>; rel="next"',
     "https://s/ocpi/cpo/2.2.1/cdrs/?offset=150&limit=50"),
    ('<https://s/a?offset=2>; rel=next', "https://s/a?offset=2"),
    ('<https://s/prev>; rel="prev", <https://s/next>; rel="next"', "https://s/next"),
    ('<https://s/prev>; rel="prev"', None),
    (None, None),
    ("", None),
])
def test_next_link(header: str | None, want: str | None) -> None:
    assert next_link(header) == want


def test_page_items_keep_each_object_exactly_as_sent() -> None:
    a = '{ "id" : "A",  "price": 2.00 }'
    b = '{"id":"B","nested":{"x":[1, 2.50]}}'
    text = (f'{{"status_code": 1000, "timestamp": "2020-01-01T00:00:00Z", "data": [ {a} ,\n {b} ], '
            '"status_message": "ok"}')
    body = page_items(text)
    assert body.status_code == 1000 and body.status_message == "ok"
    assert [raw for raw, _ in body.items] == [a, b]
    assert body.items[1][1]["nested"]["x"][1].as_tuple().exponent == -2
    assert page_items('{"data": [], "status_code": 1000}').items == []
    assert page_items('{"status_code": 2001, "status_message": "no"}').status_code == 2001


@pytest.mark.parametrize("text", ["[1, 2]", '{"data": {"id": 1}, "status_code": 1000}', '{"data": [1, ',
                                  "not json", '{"data" [1]}'])
def test_page_items_refuses_what_is_not_an_envelope_with_a_list(text: str) -> None:
    with pytest.raises(PageFormatError):
        page_items(text)


def test_page_items_handles_a_large_page() -> None:
    objs = [{"id": f"L{i}", "v": i} for i in range(5000)]
    body = page_items(json.dumps({"data": objs, "status_code": 1000}))
    assert [o for _, o in body.items] == objs


def test_a_keyset_cursor_round_trips_and_rides_in_the_next_link_beside_the_offset() -> None:
    from urllib.parse import parse_qs, urlparse

    from edges.ocpi.paging import decode_cursor, encode_cursor

    last = (datetime(2025, 1, 6, 6, 0, 0, 123456, tzinfo=timezone.utc), "STATION/é 7")
    assert decode_cursor(encode_cursor(*last)) == last
    h = page_headers("https://x/l", PageRequest(None, None, 0, 100), total=350, returned=100, max_limit=100,
                     last_key=last)
    q = parse_qs(urlparse(h["Link"][1:h["Link"].index(">")]).query)
    assert q["offset"] == ["100"] and parse_page({k: v[0] for k, v in q.items()}, 100).after == last


# junk, base64 of junk, and a cursor with a naive time
@pytest.mark.parametrize("junk", ["x", "bm90IGpzb24", "WyIyMDI1LTAxLTA2VDA2OjAwOjAwIiwiYSJd"])
def test_a_cursor_that_is_not_ours_is_refused_with_2001(junk: str) -> None:
    with pytest.raises(OcpiError) as e:
        parse_page({"after": junk}, 100)
    assert e.value.status == Status.INVALID_PARAMETERS
