"""The monthly invoice run (ledger/billing/invoice_job.py): one invoice per driver and per fleet, energy-bill
accounts exported instead of invoiced, identical events when a month is re-run, refused input said clearly."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from chargeverse import exactjson
from chargeverse.avro import default_codec
from ledger.billing.invoice_job import (
    CdrRow, EnergyBillLink, add_parser, load_energy_bill_links, month_outputs, run_month, sessions_from_rows,
)
from ledger.billing.invoices import ChargeLine, PricedSession

UTC = timezone.utc


def session(sid: str, account: str, ended: datetime, net: str = "2.50", vat: str = "0.25", currency: str = "EUR",
            fleet: str | None = None, cost_centre: str | None = None) -> PricedSession:
    return PricedSession(session_id=sid, account_id=account, currency=currency, started_at=ended.replace(hour=0),
                         ended_at=ended, energy_kwh=Decimal("10"),
                         charges=(ChargeLine("ENERGY", "Energy", Decimal(net), Decimal("10"), Decimal(vat)),),
                         location="Paid, Via Roma 1", fleet_id=fleet, cost_centre=cost_centre)


NOV = datetime(2026, 11, 15, 12, tzinfo=UTC)
SESSIONS = [
    session("s1", "alice", NOV),
    session("s2", "alice", datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),  # 1 December in Amsterdam: not November
    session("s3", "bob", NOV, net="4.00", vat="0.40"),
    session("s4", "bob", NOV, fleet="fleet-1", cost_centre="CC-7"),  # the fleet pays: not on bob's invoice
    session("s5", "carol", NOV, net="1.00", vat="0.10"),
]


def test_one_invoice_per_driver_and_per_fleet_each_on_its_account_key() -> None:
    res = month_outputs(SESSIONS, year=2026, month=11, tz="Europe/Amsterdam")
    got = {(r["kind"], k, r["gross"], tuple(r["session_ids"])) for _, k, t, r in res.outputs if t == "InvoiceIssued"}
    assert got == {("DRIVER", "alice", "2.75", ("s1",)), ("DRIVER", "bob", "4.40", ("s3",)),
                   ("DRIVER", "carol", "1.10", ("s5",)), ("FLEET", "fleet-1", "2.75", ("s4",))}
    codec = default_codec()
    for _, _, etype, rec in res.outputs:
        assert codec.decode(codec.encode(etype, rec))[0] == etype
    assert {t for t, _, _, _ in res.outputs} == {"billing"}
    assert "4 invoices (3 driver, 1 fleet)" in res.summary()


def test_re_running_a_month_publishes_identical_events() -> None:
    a = month_outputs(SESSIONS, year=2026, month=11, tz="Europe/Amsterdam")
    b = month_outputs(list(reversed(SESSIONS)), year=2026, month=11, tz="Europe/Amsterdam")
    assert a.outputs == b.outputs
    rec = a.outputs[0][3]
    assert rec["occurred_at"] == rec["recorded_at"] == datetime(2026, 11, 30, 23, tzinfo=UTC)  # the month's end


def test_a_late_cdr_re_issues_the_same_invoice_number_as_a_new_event() -> None:
    first = {r["invoice_number"]: r for _, _, t, r in
             month_outputs(SESSIONS, year=2026, month=11, tz="Europe/Amsterdam").outputs}
    later = month_outputs([*SESSIONS, session("s9", "alice", NOV)], year=2026, month=11, tz="Europe/Amsterdam")
    again = {r["invoice_number"]: r for _, _, _, r in later.outputs}
    assert first.keys() == again.keys()
    changed = [n for n in first if first[n]["event_id"] != again[n]["event_id"]]
    assert len(changed) == 1 and again[changed[0]]["account_id"] == "alice" and again[changed[0]]["gross"] == "5.50"


def test_an_energy_bill_account_is_exported_and_forwarded_instead_of_invoiced() -> None:
    links = {"carol": EnergyBillLink("supplier-x", "EAN-123")}
    res = month_outputs(SESSIONS, year=2026, month=11, tz="Europe/Amsterdam", energy_bill=links)
    assert "carol" not in {r["account_id"] for _, _, t, r in res.outputs if t == "InvoiceIssued"}
    [exp] = [r for _, _, t, r in res.outputs if t == "EnergyBillExported"]
    assert (exp["account_id"], exp["supplier_id"], exp["customer_account"], exp["gross"], exp["session_ids"]) == (
        "carol", "supplier-x", "EAN-123", "1.10", ["s5"])
    [(topic, key, _, fwd)] = [o for o in res.outputs if o[2] == "LedgerPostingSet"]
    assert topic == "ledger" and key == "driver:carol" and fwd["causation_id"] == exp["event_id"]
    legs = {(e["account"], e["direction"], e["amount"]) for e in fwd["entries"]}
    assert legs == {("supplier:supplier-x:receivable", "DEBIT", "1.10"), ("driver:carol:receivable", "CREDIT", "1.10")}
    codec = default_codec()
    for _, _, etype, rec in res.outputs:
        codec.encode(etype, rec)


def test_an_empty_month_issues_nothing() -> None:
    assert month_outputs(SESSIONS, year=2026, month=10, tz="Europe/Amsterdam").outputs == []


def test_a_cdr_the_builders_refuse_is_listed_with_its_reason_and_the_rest_is_kept(cdr_example) -> None:  # noqa: ANN001
    good = CdrRow("ok", "alice", None, None, "OWN", exactjson.dumps(cdr_example))
    broken = dict(cdr_example, total_cost={"excl_vat": Decimal("4.00"), "incl_vat": Decimal("3.00")})  # VAT below zero
    bad = CdrRow("bad", "alice", None, None, "OWN", exactjson.dumps(broken))
    sessions, skipped = sessions_from_rows([good, bad, CdrRow("junk", "a", None, None, "OWN", "{}")])
    assert [s.session_id for s in sessions] == ["ok"] and sessions[0].gross == Decimal("4.40")
    assert [sid for sid, _ in skipped] == ["bad", "junk"] and all(why for _, why in skipped)


@pytest.mark.parametrize("kw,msg", [
    ({"year": 2026, "month": 12, "tz": "Europe/Amsterdam"}, "has not ended"),
    ({"year": 2026, "month": 11, "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"year": 2026, "month": 13, "tz": "UTC"}, "not 1..12"),
])
def test_open_months_and_bad_input_are_refused_before_anything_is_read(kw, msg) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=msg):
        run_month("postgresql://nobody@127.0.0.1:1/none", None, now=datetime(2026, 12, 5, tzinfo=UTC), **kw)


def test_the_cli_parses_the_month_and_says_what_is_wrong(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["billing", "invoices", "--month", "2026-11", "--dry-run"])
    assert a.month == (2026, 11) and a.tz == "Europe/Amsterdam" and a.dry_run and callable(a.fn)
    with pytest.raises(SystemExit):
        p.parse_args(["billing", "invoices", "--month", "2026-13"])
    f = tmp_path / "links.json"
    f.write_text(json.dumps({"carol": {"supplier_id": "s", "customer_account": "c"}}))
    assert load_energy_bill_links(f) == {"carol": EnergyBillLink("s", "c")}
    f.write_text(json.dumps({"carol": {"supplier_id": ""}}))
    with pytest.raises(ValueError, match="'carol'"):
        load_energy_bill_links(f)
