"""The document store keeps transactions atomic and isolated when several clients write at once.

Every Mongo projection commits its documents together with its offsets in one transaction; if two projections'
transactions bled into each other, a crash or an abort could leave documents without offsets (or offsets without
documents).  These tests run against whatever document store the suite is configured with: the embedded one (behind
chargeverse/mongo_embedded.py's gate) or a real MongoDB.
"""

from __future__ import annotations

import threading
import time
import uuid

import pymongo
import pytest

from projections.mongo_tx import in_transaction


@pytest.fixture
def db(settings):  # noqa: ANN001 - fixture
    client = pymongo.MongoClient(settings.mongo_url.get_secret_value(), serverSelectionTimeoutMS=10000)
    name = f"txtest_{uuid.uuid4().hex[:8]}"
    database = client[settings.mongo_db]
    coll = database[name]
    coll.insert_one({"_id": "created-outside-any-transaction"})
    yield client, coll
    coll.drop()
    client.close()


def test_concurrent_transactions_from_many_clients_all_commit_whole(db, settings) -> None:  # noqa: ANN001
    """Eight clients each commit 25 transactions of 4 documents at once: every transaction lands, none fails."""
    _, coll = db
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        client = pymongo.MongoClient(settings.mongo_url.get_secret_value(), serverSelectionTimeoutMS=10000)
        c = client[coll.database.name][coll.name]
        try:
            for t in range(25):
                def body(s, t=t):  # noqa: ANN001, ANN202
                    for d in range(4):
                        c.insert_one({"_id": f"{w}-{t}-{d}", "w": w, "t": t}, session=s)
                    c.update_one({"_id": f"count-{w}"}, {"$inc": {"n": 1}}, upsert=True, session=s)
                in_transaction(client, body)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert coll.count_documents({"w": {"$exists": True}}) == 8 * 25 * 4
    assert sorted(d["n"] for d in coll.find({"_id": {"$regex": "^count-"}})) == [25] * 8


def test_an_aborted_transaction_leaves_nothing_while_another_commits(db, settings) -> None:  # noqa: ANN001
    """One client aborts half-way while another commits in between: the committed one is whole, the aborted gone."""
    client, coll = db
    other = pymongo.MongoClient(settings.mongo_url.get_secret_value(), serverSelectionTimeoutMS=10000)
    oc = other[coll.database.name][coll.name]
    started = threading.Event()
    committed: list[bool] = []

    def other_commits() -> None:
        started.wait(10)
        with other.start_session() as s, s.start_transaction():
            oc.insert_one({"_id": "other-1"}, session=s)
            oc.insert_one({"_id": "other-2"}, session=s)
        committed.append(True)

    th = threading.Thread(target=other_commits)
    th.start()
    with pytest.raises(RuntimeError):
        with client.start_session() as s, s.start_transaction():
            coll.insert_one({"_id": "mine-1"}, session=s)
            started.set()
            th.join(0.5)  # the other client tries to commit while this transaction is still open
            coll.insert_one({"_id": "mine-2"}, session=s)
            raise RuntimeError("abort")
    th.join(30)
    other.close()
    assert committed == [True]
    ids = {d["_id"] for d in coll.find({})}
    assert {"other-1", "other-2"} <= ids
    assert not {"mine-1", "mine-2"} & ids


def test_a_reader_does_not_see_another_clients_uncommitted_writes(db, settings) -> None:  # noqa: ANN001
    """A read during another client's open transaction sees the old state (MongoDB) or waits for the commit
    (the embedded store's gate); it never returns the uncommitted document while the transaction is open."""
    client, coll = db
    reader = pymongo.MongoClient(settings.mongo_url.get_secret_value(), serverSelectionTimeoutMS=10000)
    rc = reader[coll.database.name][coll.name]
    seen: list[tuple[int, float]] = []

    def read() -> None:
        n = rc.count_documents({"_id": "uncommitted"})
        seen.append((n, time.monotonic()))

    with client.start_session() as s, s.start_transaction():
        coll.insert_one({"_id": "uncommitted"}, session=s)
        th = threading.Thread(target=read)
        th.start()
        th.join(0.5)
        commit_started = time.monotonic()
    th.join(30)
    reader.close()
    assert len(seen) == 1
    n, at = seen[0]
    assert n == 0 or at > commit_started, "read an uncommitted document"
    assert coll.count_documents({"_id": "uncommitted"}) == 1
