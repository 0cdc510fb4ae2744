"""Batched registration reads (edges/ocpp/coalesce.py): concurrent handshakes share one statement, a lone one is
not delayed, and no read is ever answered by a statement that started before it was asked (revocation stays
immediate).  The fetch is a stand-in for the Postgres statement; the real one runs in the OCPP integration tests."""

from __future__ import annotations

import asyncio
from typing import Sequence

import pytest

from edges.ocpp.coalesce import Coalescer


class Store:
    """A projection whose rows change while reads are in flight; records every statement it answers."""

    def __init__(self) -> None:
        self.rows = {"CP1": "Accepted", "CP2": "Accepted"}
        self.statements: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def fetch(self, keys: Sequence[str]) -> dict[str, str]:
        self.statements.append(list(keys))
        snapshot = {k: self.rows[k] for k in keys if k in self.rows}  # what the statement sees when it starts
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("postgres is down")
        return snapshot


async def test_a_lone_read_goes_out_at_once_and_unknown_keys_are_none() -> None:
    st = Store()
    c = Coalescer(st.fetch, max_batch=10, max_inflight=1)
    assert await c.get("CP1") == "Accepted"
    assert await c.get("NOPE") is None
    assert st.statements == [["CP1"], ["NOPE"]]


async def test_reads_arriving_while_a_statement_runs_share_the_next_one() -> None:
    st = Store()
    st.gate.clear()
    c = Coalescer(st.fetch, max_batch=10, max_inflight=1)
    first = asyncio.create_task(c.get("CP1"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(c.get(k)) for k in ("CP2", "CP1", "CP3")]
    await asyncio.sleep(0)
    st.gate.set()
    assert await first == "Accepted"
    assert [await t for t in rest] == ["Accepted", "Accepted", None]
    assert st.statements == [["CP1"], ["CP2", "CP1", "CP3"]]
    assert (c.fetches, c.keys) == (2, 4)


async def test_a_revocation_committed_after_a_statement_started_is_seen_by_reads_asked_after_it() -> None:
    st = Store()
    st.gate.clear()
    c = Coalescer(st.fetch, max_batch=10, max_inflight=1)
    before = asyncio.create_task(c.get("CP1"))
    while not st.statements:  # until its statement has started (and read "Accepted")
        await asyncio.sleep(0)
    st.rows["CP1"] = "Revoked"
    after = asyncio.create_task(c.get("CP1"))  # asked after the change: must not share the running statement
    await asyncio.sleep(0)
    st.gate.set()
    assert await before == "Accepted"
    assert await after == "Revoked"


async def test_batches_are_capped_and_a_failed_statement_fails_only_its_own_reads() -> None:
    st = Store()
    st.gate.clear()
    c = Coalescer(st.fetch, max_batch=2, max_inflight=1)
    tasks = [asyncio.create_task(c.get(f"K{i}")) for i in range(5)]
    await asyncio.sleep(0)
    st.fail = True
    st.gate.set()
    await asyncio.sleep(0)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [len(s) for s in st.statements] == [1, 2, 2]
    assert all(isinstance(r, ConnectionError) for r in results)
    st.fail = False
    assert await c.get("CP2") == "Accepted"  # the coalescer keeps serving after a failure


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Store().fetch, max_batch=0)
