"""Roamed sessions end to end, all real: a partner (a hub) pushes its tariff and CDRs to our eMSP receiver over
HTTP -> `ocpi.inbound` -> the OCPI projection keeps the tariff -> the roaming billing processor -> `billing`
(CdrPriced ROAMED, BillingDiscrepancy, BillingReview) and `ledger` (postings the real ledger accepts, balanced).
A CDR that disagrees with the partner's published tariff is still posted (it is authoritative) and reported; a
bad CDR goes to the review queue and never to the ledger; a re-sent CDR changes nothing."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from chargeverse.kafka import EventProducer
from edges.api import identity as idm
from ledger.store import LedgerStore
from projections.postgres.identity import IdentityProjection
from projections.postgres.migrate import connect as pg_connect
from projections.postgres.ocpi_fold import dumps, loads
from projections.replay import replay
from streams.roaming_billing.fold import Policy
from streams.roaming_billing.processor import build
from support import events, wait_for
from test_ocpi_receivers import connect as connect_partner
from test_ocpi_receivers import ok

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"


@pytest.fixture(scope="module")
def world(settings, topics):  # noqa: ANN001, ANN201
    from edges.ocpi.local import LocalParty

    u = uuid.uuid4().hex[:8]
    schema = f"roam_{u}"
    party = LocalParty.make(settings, platform_id=f"roam-{u}", schema=schema, country_code="NL", party_id="CVS",
                            roles="EMSP,CPO", name="roaming billing")
    party.start()
    hub = connect_partner(party, "hub", [("HUB", "DE", "HUB")])
    yield party, hub, schema, u
    party.stop()
    assert not party.follower.errors, party.follower.errors


def _driver(settings, schema: str, uid: str) -> str:  # noqa: ANN001
    """A driver's card: the identity event the API would publish, projected by the real identity projection."""
    account = f"acc-{uuid.uuid4().hex[:8]}"
    p = EventProducer()
    p.publish_sync("identity", idm.id_token_key(uid), "IdTokenIssued", idm.id_token_issued(
        account_id=account, uid=uid, token_type="RFID", contract_id=f"NL-CVS-C{uid}", label=None, valid_until=None,
        source="test", correlation_id="t"))
    p.close()
    proj = IdentityProjection(settings.postgres_dsn.get_secret_value(), schema)
    try:
        replay(proj, from_start=False)
    finally:
        proj.close()
    return account


def _cdr(cdr_id: str, uid: str, tariff_id: str = "12", **changes: object) -> dict:
    cdr = loads((EXAMPLES / "cdr_example.json").read_text())
    cdr["id"] = cdr_id
    cdr["cdr_token"] = {**cdr["cdr_token"], "uid": uid, "country_code": "NL", "party_id": "CVS"}
    cdr["tariffs"][0]["id"] = tariff_id
    cdr["charging_periods"][0]["tariff_id"] = tariff_id
    cdr.update(changes)
    return cdr


def _tariff(tariff_id: str, price: str) -> dict:
    t = copy.deepcopy(loads((EXAMPLES / "cdr_example.json").read_text())["tariffs"][0])
    t["id"] = tariff_id
    t["elements"][0]["price_components"][0]["price"] = Decimal(price)
    return t


def test_partner_cdrs_are_posted_reported_or_reviewed(world, settings) -> None:  # noqa: ANN001
    party, hub, schema, u = world
    dsn = settings.postgres_dsn.get_secret_value()
    uid = f"R{u}".upper()
    account = _driver(settings, schema, uid)
    fair, cheap = f"T{u}A".upper(), f"T{u}B".upper()
    # the partner publishes two tariffs: one as its CDRs price, one cheaper than it will bill
    ok(hub.put(f"/emsp/2.2.1/tariffs/BE/BEC/{fair}", dumps(_tariff(fair, "2.00"))))
    ok(hub.put(f"/emsp/2.2.1/tariffs/BE/BEC/{cheap}", dumps(_tariff(cheap, "1.50"))))
    with pg_connect(dsn, schema, autocommit=True) as c:
        wait_for("the tariffs projected", lambda: c.execute(
            "SELECT count(*) FROM ocpi_tariffs WHERE id = ANY(%s)", ([fair, cheap],)).fetchone()[0] == 2)
    good, disputed, bad = f"CDR-{u}-OK", f"CDR-{u}-DIFF", f"CDR-{u}-BAD"
    ok(hub.post("/emsp/2.2.1/cdrs", dumps(_cdr(good, uid, fair))), 201)
    ok(hub.post("/emsp/2.2.1/cdrs", dumps(_cdr(disputed, uid, cheap))), 201)
    ok(hub.post("/emsp/2.2.1/cdrs", dumps(_cdr(bad, uid, fair, total_cost={"excl_vat": Decimal("9.00"),
                                                                          "incl_vat": Decimal("9.90")}))), 201)
    ok(hub.post("/emsp/2.2.1/cdrs", dumps(_cdr(good, uid, fair))))  # the partner retries: an identical re-send

    proc = build(dsn, schema, ocpi_schema=schema, policy=Policy(platform_id=party.settings.ocpi_platform_id))
    try:
        replay(proc, from_start=False)
        replay(proc, from_start=False)  # nothing new: nothing happens
    finally:
        proc.close()

    def mine(t: str, r: dict) -> bool:
        return r.get("source") == "streams.roaming_billing" and u.upper() in str(r.get("cdr_id") or r.get("payload")).upper()

    billing = events("billing", mine)
    priced = {r["cdr_id"]: r for t, r in billing if t == "CdrPriced"}
    assert set(priced) == {good, disputed}  # once each, although the good one was sent twice
    assert all(r["origin"] == "ROAMED" and r["account_id"] == account for r in priced.values())
    assert priced[good]["total_cost_incl_vat"] == "4.40" and priced[good]["partner_party_id"] == "BEC"
    discrepancies = [r for t, r in billing if t == "BillingDiscrepancy"]
    assert [d["cdr_id"] for d in discrepancies] == [disputed]
    assert any(x["flagged"] and x["ours"] == "3.00" and x["partner"] == "4.00" for x in discrepancies[0]["differences"])
    reviews = [r for t, r in billing if t == "BillingReview"]
    assert len(reviews) == 1 and bad in reviews[0]["payload"]
    assert "TOTAL_COST_MISMATCH" in {x["code"] for x in reviews[0]["reasons"]}

    sessions = {r["session_id"] for r in priced.values()}
    sets = [r for t, r in events("ledger", lambda t, r: t == "LedgerPostingSet" and r.get("session_id") in sessions)]
    assert len(sets) == 2  # the disputed CDR is posted too; the bad one never
    for s in sets:
        dr = sum(Decimal(e["amount"]) for e in s["entries"] if e["direction"] == "DEBIT")
        cr = sum(Decimal(e["amount"]) for e in s["entries"] if e["direction"] == "CREDIT")
        assert dr == cr == Decimal("4.40")
    # the real ledger accepts them: the driver owes 8.80, the partner CPO is owed 8.80
    ledger = LedgerStore(dsn, schema)
    try:
        replay(ledger, from_start=False)
        with pg_connect(dsn, schema, autocommit=True) as c:
            ids = [s["source_event_id"] for s in sets]
            posted = c.execute("SELECT count(*) FROM ledger_posting_sets WHERE source_event_id = ANY(%s)",
                               (ids,)).fetchone()[0]
            refused = c.execute("SELECT count(*) FROM ledger_rejections WHERE source_event_id = ANY(%s)",
                                (ids,)).fetchone()[0]
            receivable = c.execute("SELECT debits_posted - credits_posted FROM ledger_accounts WHERE account LIKE %s",
                                   (f"%{account}%receivable",)).fetchone()
    finally:
        ledger.close()
    assert (posted, refused) == (2, 0)
    assert receivable is not None and receivable[0] == 880  # minor units: 2 x 4.40 EUR
