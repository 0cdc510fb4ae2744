"""Payments on the real stack: a real OCPP 1.6 charger charges drivers' cards through the whole platform
(sessions -> billing) and the payments processor holds at the start, captures at the CDR, releases the rest,
charges what the hold did not cover, sends a declined card to review, never charges twice when its batch is
re-processed, and the month's invoice run issues the driver's invoice (identically when re-run).

The processor runs here in a follower thread under a private name (its own state and offsets), with a
LocalProvider the test can inspect, from the log's end at the start of the test (so it never touches other
tests' sessions).  Whether or not the worker also runs the registered `payments` processor, the outputs are the
same events (ids derive from the causing events), so every assertion counts distinct event ids."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer, base_config
from chargeverse.simulator import ChargerSpec, boot, connect
from chargeverse.stations_admin import register
from chargeverse.tariffs_admin import set_tariff
from chargeverse.tokens import issue
from ledger.billing.invoice_job import run_month
from ledger.billing.payments import HoldStatus, LocalProvider
from projections.replay import replay
from streams.payments.config import PaymentSettings
from streams.payments.processor import build
from support import events, wait_for, TARIFFS_SINCE

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh, VAT 10 %
PASSWORD = "correct horse battery staple"


class Follower:
    """The processor applying whatever is new on its topics, in a thread, until stopped."""

    def __init__(self, proc: Any) -> None:
        self.proc, self.errors = proc, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                replay(self.proc, from_start=False, stall_seconds=20)
            except Exception as exc:  # noqa: BLE001 - surfaced by the test
                self.errors.append(exc)
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def _log_ends(topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    c = Consumer({**base_config(), "group.id": f"t-{uuid.uuid4().hex[:8]}"})
    try:
        md = c.list_topics(timeout=10)
        return {(t, p): c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in topics for p in md.topics[t].partitions}
    finally:
        c.close()


def _start_at(dsn: str, name: str, ends: dict[tuple[str, int], int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM processor_state WHERE processor = %s", (name,))
        conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (name,))
        for (t, p), o in ends.items():
            conn.execute("INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
                         "VALUES (%s, %s, %s, %s)", (name, t, p, o))


async def _driver(api: str, uid: str, pm: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        email = f"p-{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code in (201, 202), r.text
        tok = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        r = await c.post("/api/me/payment-methods", headers=h, json={"payment_method_id": pm, "provider": "local"})
        assert r.status_code == 201, r.text
        r = await c.post("/api/me/id-tokens", headers=h, json={"type": "RFID", "uid": uid})
        assert r.status_code == 201, r.text
        return h


async def _charge(cp: Any, id_tag: str, wh: int, hour: int) -> None:
    started = await cp.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=1_000_000,
                                                  timestamp=f"2026-11-27T{hour:02d}:00:00Z"))
    assert started.id_tag_info["status"] == "Accepted"
    await cp.call(call.StopTransaction(meter_stop=1_000_000 + wh, timestamp=f"2026-11-27T{hour:02d}:59:00Z",
                                       transaction_id=started.transaction_id, reason="Local", id_tag=id_tag))


def _payments(session_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Distinct PaymentEvents per session, in log order."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in session_ids}
    seen: set[str] = set()
    for _, r in events("billing", lambda t, r: t == "PaymentEvent" and r["session_id"] in session_ids):
        if r["event_id"] not in seen:
            seen.add(r["event_id"])
            out[r["session_id"]].append(r)
    return out


def _caught_up(dsn: str, name: str, target: dict[tuple[str, int], int]) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        got = {(t, p): o for t, p, o in conn.execute(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s", (name,))}
    return all(got.get(tp, 0) >= o for tp, o in target.items())


def _ledger_sets(dsn: str, session_ids: set[str]) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT session_id, kind, hold_id FROM ledger_posting_sets WHERE session_id = ANY(%s) "
                            "ORDER BY session_id, kind", (list(session_ids),)).fetchall()


async def test_cards_are_held_captured_released_declined_and_never_charged_twice(platform, settings, unique) -> None:  # noqa: ANN001
    dsn = settings.postgres_dsn.get_secret_value()
    name = f"payments-it-{unique}"
    local = LocalProvider()
    proc = build(dsn, provider=local, settings=PaymentSettings(hold_amount=Decimal("2.00")), name=name)
    ends = _log_ends(proc.topics)
    _start_at(dsn, name, ends)
    follower = Follower(proc)
    try:
        good, bad = f"A{unique[-7:]}".upper(), f"B{unique[-7:]}".upper()
        alice = await _driver(platform.api, good, "pm_card_ok_" + unique)
        await _driver(platform.api, bad, "pm_decline_" + unique)
        sid = f"PAYM-{unique}"
        p = EventProducer()
        secret = register(p, sid, name="Paid", operator="TestNet", latitude=45.0, longitude=7.0)
        set_tariff(p, sid, TARIFF, time_zone="Europe/Rome", set_by="test", valid_from=TARIFFS_SINCE)
        p.close()
        spec = ChargerSpec(sid, secret, 45.0, 7.0, "Paid")
        wait_for("the tariff projected", lambda: httpx.get(
            f"{platform.api}/api/operator/stations/{sid}/tariff",
            headers={"Authorization": f"Bearer {issue('op', ['operator'])}"}).status_code == 200)
        for _ in range(150):
            try:
                ws, cp, task = await connect(platform.ocpp, spec)
                break
            except InvalidStatus:
                await asyncio.sleep(0.2)
        try:
            await boot(cp, spec)
            await _charge(cp, good, 10_000, 10)  # 2.75 EUR: more than the 2.00 hold
            await _charge(cp, good, 4_000, 12)  # 1.10 EUR: less than the hold
            await _charge(cp, bad, 2_000, 14)  # a declined card
        finally:
            task.cancel()
            await ws.close()

        def mine() -> list[dict[str, Any]] | None:
            r = httpx.get(f"{platform.api}/api/sessions/history", headers=alice).json()["items"]
            done = [s for s in r if s["charge_point_id"] == sid and s["cost"]]
            return done if len(done) == 2 else None

        by_cost = {s["cost"]["incl_vat"]: s["session_id"] for s in wait_for("both sessions billed", mine, 60)}
        big, small = by_cost["2.75"], by_cost["1.10"]
        all_sessions = {r["session_id"] for _, r in events(
            "sessions", lambda t, r: t == "SessionStarted" and r["charge_point_id"] == sid)}
        assert len(all_sessions) == 3
        declined = (all_sessions - {big, small}).pop()

        def settled() -> dict[str, list[dict[str, Any]]] | None:
            got = _payments(all_sessions)
            kinds = {s: [e["kind"] for e in evs] for s, evs in got.items()}
            ok = (kinds[big] == ["HOLD_AUTHORISED", "CAPTURED", "CHARGED"]
                  and kinds[small] == ["HOLD_AUTHORISED", "CAPTURED"] and kinds[declined] == ["FAILED", "FAILED"])
            assert ok, (kinds, follower.errors[-1:])
            return got

        got = wait_for("every payment step", settled, 90)
        assert not follower.errors, follower.errors
        hold, cap, excess = got[big]
        assert (hold["amount"], cap["amount"], cap["released_amount"], excess["amount"]) == (
            "2.00", "2.00", "0.00", "0.75")
        hold2, cap2 = got[small]
        assert (hold2["amount"], cap2["amount"], cap2["released_amount"]) == ("2.00", "1.10", "0.90")
        assert local.hold(hold2["hold_id"]).status is HoldStatus.CAPTURED
        assert [e["failure_code"] for e in got[declined]] == ["declined", "declined"]
        assert {e["payment_method_ref"] for e in got[big] + got[small] if e["payment_method_ref"]} == {
            "pm_card_ok_" + unique}

        # the ledger: both holds posted (the rest released with the capture), the excess a posting of its own,
        # and for the declined card only billing's charge (the receivable stays open)
        rows = wait_for("the ledger", lambda: (lambda r: r if len(r) >= 8 else None)(_ledger_sets(dsn, all_sessions)),
                        60)
        kinds = sorted((s, k) for s, k, _ in rows)
        assert kinds == sorted([(big, "HOLD"), (big, "POST_HOLD"), (big, "POSTING"), (big, "POSTING"),
                                (small, "HOLD"), (small, "POST_HOLD"), (small, "POSTING"), (declined, "POSTING")])
        with psycopg.connect(dsn, autocommit=True) as conn:
            holds = conn.execute("SELECT session_id, status FROM ledger_holds WHERE session_id = ANY(%s)",
                                 ([big, small],)).fetchall()
        assert sorted(holds) == sorted([(big, "POSTED"), (small, "POSTED")])

        # the declined card is in the operators' review queue with the provider's reason
        op = {"Authorization": f"Bearer {issue('op', ['operator'])}"}

        def reviewed() -> list | None:
            r = httpx.get(f"{platform.api}/api/operator/billing/reviews", headers=op).json()
            return [x for x in r if x["session_id"] == declined] or None

        review = wait_for("the review entry", reviewed, 60)
        assert {c["code"] for x in review for c in x["reasons"]} == {"PAYMENT_DECLINED"}

        # re-delivery: the processor forgets everything it committed and processes the same events again
        follower.stop()
        before = {s: [e["event_id"] for e in evs] for s, evs in _payments(all_sessions).items()}
        holds_before, charges_before = len(local._holds), len(local._charges)
        _start_at(dsn, name, ends)
        follower = Follower(proc)
        target = _log_ends(proc.topics)
        wait_for("the re-delivery processed", lambda: _caught_up(dsn, name, target), 90)
        follower.stop()
        assert not follower.errors, follower.errors
        assert (len(local._holds), len(local._charges)) == (holds_before, charges_before)
        after = {s: [e["event_id"] for e in evs] for s, evs in _payments(all_sessions).items()}
        assert after == before  # the same events again (same ids), nothing new
        assert sorted((s, k) for s, k, _ in _ledger_sets(dsn, all_sessions)) == kinds

        # the month's invoices: alice's invoice has both sessions; a re-run publishes identical events
        p = EventProducer()
        try:
            now = datetime(2026, 12, 2, tzinfo=timezone.utc)
            first = run_month(dsn, p, 2026, 11, "Europe/Rome", now=now)
            again = run_month(dsn, p, 2026, 11, "Europe/Rome", now=now)
        finally:
            p.close()
        assert [o[3]["event_id"] for o in first.outputs] == [o[3]["event_id"] for o in again.outputs]
        [inv] = [i for i in first.invoices if set(i.session_ids) & {big, small}]
        assert set(inv.session_ids) == {big, small} and inv.gross == Decimal("3.85") and inv.kind.value == "DRIVER"
        issued = wait_for("the invoice on the log", lambda: events(
            "billing", lambda t, r: t == "InvoiceIssued" and r["invoice_number"] == inv.number) or None)
        assert len({r["event_id"] for _, r in issued}) == 1 and issued[0][1]["gross"] == "3.85"
    finally:
        follower.stop()
        proc.close()
