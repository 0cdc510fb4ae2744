"""Routing and message id headers (edges/ocpi/headers.py)."""

from __future__ import annotations

from edges.ocpi.headers import (CORRELATION_ID, FROM_COUNTRY, FROM_PARTY, REQUEST_ID, TO_COUNTRY, TO_PARTY, Route,
                                parse_route, request_headers, response_route_headers)


def test_routing_headers_are_read_case_insensitively_and_upper_cased() -> None:
    r = parse_route({"ocpi-from-country-code": "nl", "ocpi-from-party-id": "tnm", TO_COUNTRY: "BE",
                     TO_PARTY: "BEC"})
    assert r == Route("NL", "TNM", "BE", "BEC") and r.sender == ("NL", "TNM") and r.receiver == ("BE", "BEC")
    assert parse_route({}).sender is None and parse_route({FROM_COUNTRY: "NL"}).sender is None


def test_a_response_swaps_the_request_route() -> None:
    h = response_route_headers(Route("NL", "TNM", "BE", "BEC"), us=("DE", "CVS"))
    assert h == {FROM_COUNTRY: "BE", FROM_PARTY: "BEC", TO_COUNTRY: "NL", TO_PARTY: "TNM"}
    # no routing headers in the request: from us, to nobody in particular
    assert response_route_headers(Route(), us=("DE", "CVS")) == {FROM_COUNTRY: "DE", FROM_PARTY: "CVS"}


def test_every_request_gets_a_new_request_id_and_keeps_the_correlation_id() -> None:
    a = request_headers("Token x", correlation_id="corr-1", sender=("NL", "EMX"), receiver=("NL", "CPY"))
    b = request_headers("Token x", correlation_id="corr-1")
    assert a[REQUEST_ID] != b[REQUEST_ID]
    assert a[CORRELATION_ID] == b[CORRELATION_ID] == "corr-1"
    assert a[TO_PARTY] == "CPY" and a[FROM_PARTY] == "EMX" and TO_PARTY not in b
    assert request_headers("Token x")[CORRELATION_ID] != request_headers("Token x")[CORRELATION_ID]
