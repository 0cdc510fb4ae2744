"""The station search's plain path (edges/api/stations.py, `plain_search`) reads a query string exactly as the
declared route's FastAPI validation does, or leaves it to that route: a driver gets the same page either way."""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from edges.api.stations import plain_search, search, search_query

PLAIN = ("near", "bbox", "radius", "limit", "offset")


def _declared_reader() -> TestClient:
    """An app whose one route declares the search's parameters exactly (its signature without the request and
    the auth dependency) and answers what FastAPI made of them."""

    async def echo(**kwargs: Any) -> dict[str, str]:
        return {k: repr(v) for k, v in kwargs.items()}

    sig = inspect.signature(search)
    echo.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name not in ("request", "_")],
        return_annotation=inspect.Signature.empty)
    app = FastAPI()
    app.add_api_route("/s", echo, methods=["GET"])
    return TestClient(app)


CLIENT = _declared_reader()
#: what search_query assumes for every parameter a plain query does not carry
DEFAULTS = {n: p.default for n, p in inspect.signature(search_query).parameters.items()}


def _same_as_declared(query: str) -> None:
    args = plain_search(query.encode("latin-1"))
    if args is None:
        return  # the declared route answers it, as it always has
    r = CLIENT.get("/s?" + query)
    assert r.status_code == 200, (query, args, r.text)
    assert r.json() == {k: repr(args.get(k, DEFAULTS[k])) for k in r.json()}, query


def test_the_apps_own_searches_take_the_plain_path() -> None:
    near = urlencode({"near": "52.37000,4.89000", "limit": 20})
    box = urlencode({"bbox": "52.30000,4.80000,52.40000,5.00000", "limit": 20})
    assert plain_search(near.encode()) == {"near": "52.37000,4.89000", "bbox": None, "radius": None, "limit": 20,
                                           "offset": 0}
    assert plain_search(box.encode())["bbox"] == "52.30000,4.80000,52.40000,5.00000"  # type: ignore[index]
    assert plain_search(b"near=1,2&radius=2000&offset=40")["radius"] == 2000.0  # type: ignore[index]


def test_filters_and_doubtful_values_go_to_the_declared_route() -> None:
    for query in ("near=1,2&connector=CHADEMO", "near=1,2&available=true", "near=1,2&limit=1e3", "near=1,2&limit=",
                  "near=1,2&limit=201", "near=1,2&limit=0", "near=1,2&limit=+5", "near=1,2&radius=0",
                  "near=1,2&radius=-1", "near=1,2&radius=500001", "near=1,2&near=3,4", "near=", "near=1,2&x=1",
                  "near=1,2&offset=100001", "near=1,2&radius=nan", "near=1,2&radius=inf"):
        assert plain_search(query.encode()) is None, query


def test_accepted_queries_read_as_fastapi_reads_them() -> None:
    for query in ("near=1,2", "near=1,2&limit=007&offset=0", "bbox=1,2,3,4&near=2,3&radius=500000",
                  "bbox=a&radius=0.000001", "near=%35%32,4&limit=%32%30", "limit=200&offset=100000&near=x",
                  "near=1,2&radius=12.5", "near=52.37000%2C4.89000&limit=20", "near=1%2C2&radius=500000.0"):
        assert plain_search(query.encode()) is not None, query
        _same_as_declared(query)


_VALUES = st.one_of(st.sampled_from(["0", "1", "007", "20", "200", "201", "100000", "100001", "500000",
                                     "500000.5", "0.0", "1.5", "1e3", "-1", "+3", " 5", "%35", "nan", "52.37,4.89",
                                     "1,2,3,4", "", "\u00e9"]),
                    st.text(alphabet="0123456789.,-+e %", max_size=8))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*PLAIN, "connector"]), _VALUES, max_size=4))
def test_any_query_the_plain_path_accepts_reads_as_fastapi_reads_it(params: dict[str, str]) -> None:
    _same_as_declared("&".join(f"{k}={v}" for k, v in params.items()))
