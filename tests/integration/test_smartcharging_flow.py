"""Smart charging end to end, all real: a fleet manager defines a depot site with an 11 kW grid connection and two
chargers through the API (SiteDefined on `sites`); a driver's card starts a session on an OCPP 1.6 charger and
another on an OCPP 2.0.1 charger (both built on the `ocpp` package, which validates every call it gets against the
official schemas); the smartcharging processor re-plans on each start and the OCPP edge delivers each charger a
SetChargingProfile (1.6 TxProfile / 2.0.1 SetChargingProfileRequest).  What the two chargers are told never adds up
to more than the site's limit.  The driver then says her car leaves in two hours needing 15 kWh: the site re-plans
and her charger is told to charge faster, still within the limit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargeverse.simulator import boot
from chargeverse.tokens import issue
from support import events
from test_ocpp_support import charger, register_charger

pytestmark = pytest.mark.integration
SITE_LIMIT_W = 11_000.0


async def _driver_with_card(api: str, uid: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        email = f"sc-{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post("/api/auth/register", json={"email": email, "password": "correct horse battery staple"})
        assert r.status_code in (201, 202), r.text
        tok = await c.post("/api/auth/login", json={"email": email, "password": "correct horse battery staple"})
        assert tok.status_code == 200, tok.text
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        r = await c.post("/api/me/id-tokens", headers=h, json={"type": "RFID", "uid": uid})
        assert r.status_code == 201, r.text
        return h


def _profile(kw: dict[str, Any]) -> tuple[datetime, int, list[tuple[int, float]]]:
    """(start, duration s, [(startPeriod, limit W)]) of a SetChargingProfile a charger received (1.6 or 2.0.1)."""
    prof = kw.get("csChargingProfiles") or kw["chargingProfile"]
    sched = prof["chargingSchedule"]
    sched = sched[0] if isinstance(sched, list) else sched
    assert sched["chargingRateUnit"] == "W"
    start = datetime.fromisoformat(sched["startSchedule"].replace("Z", "+00:00"))
    return start, sched["duration"], [(p["startPeriod"], float(p["limit"])) for p in sched["chargingSchedulePeriod"]]


def _limit_at(kw: dict[str, Any], t: datetime) -> float:
    start, duration, periods = _profile(kw)
    off = (t - start).total_seconds()
    if not 0 <= off < duration:
        return 0.0
    return [lim for s, lim in periods if s <= off][-1]


def _latest_profile(cp: Any) -> dict[str, Any] | None:
    got = [kw for action, kw in cp.received if action == "SetChargingProfile"]
    return got[-1] if got else None


def _site(api: str, site_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(f"{api}/api/smartcharging/sites/{site_id}", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _command(api: str, command_id: str) -> dict[str, Any] | None:
    """The command as the operator API shows it, once the charger has answered it."""
    op = {"Authorization": f"Bearer {issue('sc-test-operator', ['operator'])}"}
    r = httpx.get(f"{api}/api/operator/commands/{command_id}", headers=op, timeout=10)
    if r.status_code != 200 or r.json()["outcome"] is None:
        return None
    assert r.json()["outcome"] == "RESULT", r.json()
    return r.json()


def _received_as_sent(cp: Any, payload: dict[str, Any]) -> bool:
    """The charger's latest profile is the one the command carried (its periods, start and id)."""
    got = _latest_profile(cp)
    if got is None:
        return False
    sent = payload.get("csChargingProfiles") or payload["chargingProfile"]
    have = got.get("csChargingProfiles") or got["chargingProfile"]
    return _profile(got) == _profile(payload) and \
        have.get("chargingProfileId", have.get("id")) == sent.get("chargingProfileId", sent.get("id"))


async def _eventually(what: str, fn: Any, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await asyncio.to_thread(fn)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def _all_delivered(api: str, site_id: str, headers: dict[str, str], cps: dict[str, Any], pred: Any
                         ) -> dict[str, Any]:
    """Wait for the site's latest plan to satisfy `pred`, and for every charger to have the profile that plan
    stands on (answered by the charger: outcome RESULT)."""
    def newest() -> dict[str, Any] | None:
        sched = _site(api, site_id, headers)["schedule"]
        return sched if sched and pred(sched) else None

    sched = await _eventually("the re-planned schedule", newest)
    for row in sched["sessions"]:
        cmd = await _eventually("the charger's answer", lambda: _command(api, row["profile_command_id"]))
        assert cmd["action"] == "SetChargingProfile" and cmd["charge_point_id"] == row["charge_point_id"]
        await _eventually(f"{row['charge_point_id']} to hold its profile",
                          lambda: _received_as_sent(cps[row["charge_point_id"]], cmd["payload"]))
    return sched


def _assert_within_site_limit(a: dict[str, Any], b: dict[str, Any]) -> None:
    start = min(_profile(a)[0], _profile(b)[0])
    for k in range(24 * 4):
        t = start + timedelta(minutes=15 * k)
        assert _limit_at(a, t) + _limit_at(b, t) <= SITE_LIMIT_W, f"over the site limit at {t}"


async def test_two_chargers_get_profiles_within_the_site_limit_and_a_departure_replans(platform, unique) -> None:  # noqa: ANN001,E501
    a_spec = register_charger("SCA", unique)  # OCPP 1.6
    b_spec = register_charger("SCB", unique, version="ocpp2.0.1")
    uid_a, uid_b = f"A{unique[-7:]}".upper(), f"B{unique[-7:]}".upper()
    driver_a = await _driver_with_card(platform.api, uid_a)
    driver_b = await _driver_with_card(platform.api, uid_b)
    manager = {"Authorization": f"Bearer {issue(f'fm-{unique}', ['fleet_manager'])}"}
    site_id = f"depot-{unique}"
    site = {"name": "Depot", "time_zone": "Europe/Amsterdam", "slot_minutes": 15, "horizon_hours": 24,
            "limits": [{"node_id": "grid", "parent_id": None, "cap_kw": SITE_LIMIT_W / 1000}],
            "connectors": [{"charge_point_id": a_spec.station_id, "connector_id": 1, "node_id": "grid", "max_kw": 11},
                           {"charge_point_id": b_spec.station_id, "connector_id": 1, "node_id": "grid", "max_kw": 11}],
            "default_departure_hours": 8, "default_energy_kwh": 20}
    async with httpx.AsyncClient(base_url=platform.api, timeout=30) as api:
        # an impossible tree is refused with the reason, nothing published
        bad = dict(site, limits=[{"node_id": "grid", "parent_id": None, "cap_kw": -1}])
        assert (await api.put(f"/api/smartcharging/sites/{site_id}", headers=manager, json=bad)).status_code == 422
        assert (await api.put(f"/api/smartcharging/sites/{site_id}", headers=driver_a, json=site)).status_code == 403
        r = await api.put(f"/api/smartcharging/sites/{site_id}", headers=manager, json=site)
        assert r.status_code == 201, r.text
        assert [c["charge_point_id"] for c in r.json()["connectors"]] == [a_spec.station_id, b_spec.station_id]
        other = {"Authorization": f"Bearer {issue(f'fm2-{unique}', ['fleet_manager'])}"}
        assert (await api.get(f"/api/smartcharging/sites/{site_id}", headers=other)).status_code == 404
        assert (await api.put(f"/api/smartcharging/sites/x-{site_id}", headers=other, json=site)).status_code == 409

        async with charger(platform.ocpp, a_spec) as cp_a, charger(platform.ocpp, b_spec) as cp_b:
            await boot(cp_a, a_spec)
            await boot(cp_b, b_spec)
            cps = {a_spec.station_id: cp_a, b_spec.station_id: cp_b}
            now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            started = await cp_a.call(call16.StartTransaction(connector_id=1, id_tag=uid_a, meter_start=0,
                                                              timestamp=now))
            assert started.id_tag_info["status"] == "Accepted"
            first = await _all_delivered(platform.api, site_id, manager, cps, lambda s: len(s["sessions"]) == 1)
            assert first["trigger"] == "SessionStarted" and not first["infeasible"]
            await cp_b.call(call201.TransactionEvent(
                event_type="Started", timestamp=now, trigger_reason="Authorized", seq_no=0,
                transaction_info={"transaction_id": f"TX-{unique}"}, evse={"id": 1, "connector_id": 1},
                id_token={"id_token": uid_b, "type": "ISO14443"}))
            both = await _all_delivered(platform.api, site_id, manager, cps, lambda s: len(s["sessions"]) == 2)
            prof_a, prof_b = _latest_profile(cp_a), _latest_profile(cp_b)
            assert prof_a is not None and prof_b is not None
            assert "csChargingProfiles" in prof_a and prof_a["csChargingProfiles"]["transactionId"] == \
                started.transaction_id  # 1.6 TxProfile bound to the transaction
            assert prof_b["chargingProfile"]["transactionId"] == f"TX-{unique}"  # 2.0.1
            _assert_within_site_limit(prof_a, prof_b)
            assert both["site_peak_kw"] <= SITE_LIMIT_W / 1000 + 1e-6

            # the driver says when she leaves and what she needs: the site re-plans
            session_a = next(s["session_id"] for s in both["sessions"] if s["charge_point_id"] == a_spec.station_id)
            url = f"/api/smartcharging/sessions/{session_a}"
            too_early = {"departure_at": "2000-01-01T00:00:00Z", "energy_kwh": 15}
            r = await api.put(f"{url}/needs", headers=driver_a, json=too_early)
            assert r.status_code == 422 and "not after the session's start" in r.text
            stranger = driver_b  # another driver: her own session only
            assert (await api.put(f"{url}/needs", headers=stranger, json={"energy_kwh": 15})).status_code == 404
            leave = datetime.now(timezone.utc) + timedelta(hours=2)
            r = await api.put(f"{url}/needs", headers=driver_a, json={"departure_at": leave.isoformat(),
                                                                      "energy_kwh": 15})
            assert r.status_code == 202, r.text
            replanned = await _all_delivered(platform.api, site_id, manager, cps,
                                             lambda s: s["trigger"] == "ChargingNeedsSet")
            mine = next(s for s in replanned["sessions"] if s["session_id"] == session_a)
            # the decision is on the log too, with the reason it was made
            [(_, logged)] = events("smartcharging", lambda t, r: t == "ChargingScheduleComputed" and
                              r["site_id"] == site_id and r["trigger"] == "ChargingNeedsSet")
            assert logged["plan_start"] == datetime.fromisoformat(replanned["plan_start"])
            assert mine["need_source"] == "driver" and mine["requested_kwh"] == 15.0
            prof_a, prof_b = _latest_profile(cp_a), _latest_profile(cp_b)
            assert prof_a is not None and prof_b is not None
            start = _profile(prof_a)[0]
            hours_left = (leave - start).total_seconds() / 3600
            assert _limit_at(prof_a, start) >= 15_000 / hours_left - 100  # fast enough to have 15 kWh by then
            _assert_within_site_limit(prof_a, prof_b)

            plan = (await api.get(f"{url}/plan", headers=driver_a)).json()
            assert plan["needs"]["energy_kwh"] == 15.0 and plan["plan"]["need_source"] == "driver"
            assert plan["plan"]["departure_at"] == mine["departure_at"]
            assert (await api.get(f"{url}/plan", headers=stranger)).status_code == 404
