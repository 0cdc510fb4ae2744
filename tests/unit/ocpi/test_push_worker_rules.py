"""The push worker's bookkeeping (edges/ocpi/push_worker.py), without a broker: where a push goes, and the commit
rule that makes a partner outage lose nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from pydantic import SecretStr

from chargeverse.settings import Settings
from edges.ocpi.outbound import Attempted, CircuitOpen
from edges.ocpi.push_worker import PushWorker, target_url

TP = ("ocpi.outbound", 3)


def _worker() -> PushWorker:
    return PushWorker(Settings(ocpi_platform_id="t", ocpi_breaker_reset_seconds=0.01,
                               ocpi_secret_key=SecretStr("k" * 32)))


def _rec(partner: str = "x", module: str = "locations") -> dict:
    return {"partner_id": partner, "module": module, "method": "PUT", "object_id": "L1", "country_code": "NL",
            "party_id": "CPY", "event_id": "e", "correlation_id": "c"}


def test_puts_go_to_the_object_url_cdr_posts_to_the_endpoint() -> None:
    rec = _rec()
    assert target_url("https://e/ocpi/emsp/2.2.1/locations/", "PUT", rec) == \
        "https://e/ocpi/emsp/2.2.1/locations/NL/CPY/L1"
    assert target_url("https://e/ocpi/emsp/2.2.1/cdrs", "POST", rec) == "https://e/ocpi/emsp/2.2.1/cdrs"


def test_no_update_lost_the_commit_never_passes_a_blocked_or_unfinished_push() -> None:
    async def run() -> None:
        from edges.ocpi.outbound import Lanes

        w = _worker()
        w.lanes = Lanes(w.policy)
        w.position[TP] = 20
        assert w.safe_offsets() == {TP: 20}
        w.inflight[TP] = {12, 15}
        assert w.safe_offsets() == {TP: 12}
        # partner x unreachable at 12: blocked; later pushes of x are not sent, and the commit holds at 12
        await w._finished(TP, 12, _rec(), Attempted(error=CircuitOpen("open"), attempts=0))
        w.inflight[TP].discard(12)
        assert w.blocked == {"x": {TP: 12}} and w.safe_offsets() == {TP: 12}
        w._consider(TP, 16, _rec())
        assert w.blocked == {"x": {TP: 12}} and 16 not in w.inflight[TP]
        # another partner's push at 15 completes: x still holds the commit
        await w._finished(TP, 15, _rec("y"), Attempted(value=object(), attempts=1))
        w.inflight[TP].discard(15)
        assert w.done_upto == {"y": 15} and w.safe_offsets() == {TP: 12}
        # once x's breaker allows a trial, the worker seeks back to 12 to re-send from the log
        await asyncio.sleep(0.02)
        w.retry_at["x"] = 0.0
        w._unblock_ready()
        assert "x" not in w.blocked and w._seek == {TP: 12}
        # re-reading, y's push at 15 is not sent again
        w.position[TP] = 12
        w._consider(TP, 15, _rec("y"))
        assert 15 not in w.inflight.get(TP, set())
        await w.lanes.close()

    asyncio.run(run())


def test_parked_when_refused_for_good_never_retried() -> None:
    from edges.ocpi.client import PartnerError

    async def run() -> None:
        w = _worker()
        published = []

        class P:
            async def publish(self, topic: str, key: str, etype: str, rec: dict) -> None:
                published.append((topic, key, etype, rec))

        w.producer = P()  # type: ignore[assignment]
        rec = _rec()
        rec.update(occurred_at=datetime.now(timezone.utc), recorded_at=datetime.now(timezone.utc))
        await w._finished(TP, 7, rec, Attempted(error=PartnerError("2001", http_status=400, status=2001), attempts=1))
        assert w.done_upto == {"x": 7} and not w.blocked
        assert [(t, k, e) for t, k, e, _ in published] == [("ocpi.inbound", "x", "OcpiPushParked")]
        assert published[0][3]["ocpi_status"] == 2001 and published[0][3]["http_status"] == 400

    asyncio.run(run())
