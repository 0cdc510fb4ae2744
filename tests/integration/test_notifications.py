"""Notifications through the running platform: a real OCPP 1.6 charger charges a registered driver's card; when
the charger faults during the session and when the session finishes, the notifications processor requests a
notification for the driver (`notifications` topic), the API process's sender delivers it through the default log
sender (its log names the account, never the email) and records NotificationSent; the driver lists them at
GET /api/me/notifications.  Nobody is notified for an anonymous card, and a driver sees only their own."""

from __future__ import annotations

import httpx
import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus

from chargeverse.simulator import boot
from support import events, wait_for
from test_money_path import _connect, _driver_with_card, _station

pytestmark = pytest.mark.integration


async def test_a_fault_and_the_end_of_a_session_reach_the_driver_once_each(platform, unique) -> None:  # noqa: ANN001
    uid = f"E{unique[-7:]}".upper()
    driver = await _driver_with_card(platform.api, uid)
    me = httpx.get(f"{platform.api}/api/me", headers=driver).json()
    spec = _station(f"nt-{unique}")
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        started = await cp.call(call.StartTransaction(connector_id=1, id_tag=uid, meter_start=0,
                                                      timestamp="2026-11-27T09:00:00Z"))
        for _ in range(2):  # a charger repeating its fault is one alert
            await cp.call(call.StatusNotification(connector_id=1, error_code=ChargePointErrorCode.ground_failure,
                                                  status=ChargePointStatus.faulted,
                                                  timestamp="2026-11-27T09:10:00Z"))
        await cp.call(call.StopTransaction(meter_stop=3_000, timestamp="2026-11-27T09:15:00Z",
                                           transaction_id=started.transaction_id, reason="Other", id_tag=uid))
        # an anonymous card: a session, a fault, a stop -- and nobody to tell
        anon = await cp.call(call.StartTransaction(connector_id=1, id_tag="ANON-CARD", meter_start=3_000,
                                                   timestamp="2026-11-27T10:00:00Z"))
        await cp.call(call.StatusNotification(connector_id=1, error_code=ChargePointErrorCode.ground_failure,
                                              status=ChargePointStatus.faulted, timestamp="2026-11-27T10:01:00Z"))
        await cp.call(call.StopTransaction(meter_stop=4_000, timestamp="2026-11-27T10:05:00Z",
                                           transaction_id=anon.transaction_id, reason="Local", id_tag="ANON-CARD"))
    finally:
        task.cancel()
        await ws.close()

    def delivered():  # noqa: ANN202
        r = httpx.get(f"{platform.api}/api/me/notifications", headers=driver)
        assert r.status_code == 200, r.text
        items = [i for i in r.json()["items"] if i["station_id"] == spec.station_id]
        assert len(items) == 2 and all(i["status"] == "sent" for i in items), items
        return items

    items = wait_for("both notifications sent", delivered, timeout=60)
    kinds = {i["kind"]: i for i in items}
    assert set(kinds) == {"charger_fault", "session_finished"}
    assert kinds["charger_fault"]["data"]["error_code"] == "GroundFailure"
    assert kinds["session_finished"]["data"]["energy_kwh"] == 3.0
    assert all(i["channel"] == "log" for i in items)

    on_log = events("notifications", lambda t, r: r["station_id"] == spec.station_id
                    if t == "NotificationRequested" else False)
    assert len(on_log) == 2 and {r["account_id"] for _, r in on_log} == {me["account_id"]}
    ids = {r["notification_id"] for _, r in on_log}
    sent = events("notifications", lambda t, r: t == "NotificationSent" and r["notification_id"] in ids)
    assert {r["notification_id"] for _, r in sent} == ids

    api_log = (platform.logs / "api.log").read_text(errors="replace")
    for nid in ids:
        assert f"notification {nid} " in api_log
    assert me["email"] not in api_log

    other = await _driver_with_card(platform.api, f"F{unique[-7:]}".upper())
    assert httpx.get(f"{platform.api}/api/me/notifications", headers=other).json()["items"] == []
    assert httpx.get(f"{platform.api}/api/me/notifications").status_code in (401, 403)
    assert httpx.get(f"{platform.api}/api/me/notifications", params={"limit": 0},
                     headers=driver).status_code == 422
