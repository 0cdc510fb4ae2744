"""Every OCPP 1.6 central-system call (with the security extension) as an operator command, all real: the
operator API publishes it on `ocpp.commands`, the edge holding the socket sends the CALL, a charger built on the
`ocpp` package's v16 ChargePoint (which validates every request it gets against the official schemas) answers it,
and the outcome comes back through the `ocpp_commands` projection.  For each command: outcome RESULT with a result
the official response schema accepts, the CALL and the answer on `ocpp.frames` (same message id), the charger saw
exactly the payload the operator sent, and the messages the protocol expects the charger to send next
(FirmwareStatusNotification, DiagnosticsStatusNotification, the triggered message, ...) answered and recorded.

Certificate operations need TLS: on a profile-1 charger the edge records REFUSED (`SecurityProfile`) and the
charger never sees them; on a profile-2 charger (a TLS edge started in this process) they are answered.

One charger per module (a module-scoped event loop), commands parametrised, so the module stays fast.  OCTT ids
are not in the test names: the 1.6 OCTT CSMS cases for these commands (e.g. TC_010_CSMS, TC_011_1_CSMS remote start)
are multi-step scenarios of which a single command is one step; the ones implemented end to end are in
test_ocpp_v16_csms.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any, AsyncIterator

import httpx
import pytest
import pytest_asyncio

from chargeverse.ocpp_commands import valid_result
from chargeverse.simulator import ChargerSpec, boot
from chargeverse.tokens import issue
from support import events
from test_ocpp_support import charger, edge_in_process, register_charger

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
V = "ocpp1.6"
SOON = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00",
                                                                                                          "Z")


# ---- helpers shared with test_ocpp_commands_v201.py and test_ocpp_routing.py -------------------------------------
def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('operator-cmd', ['operator'])}"}


async def command(api: str, cp_id: str, action: str, payload: dict[str, Any], *, version: str | None = None,
                  timeout_s: float = 10, wait_s: float = 30) -> dict[str, Any]:
    """POST a command through the operator API and return the command with its outcome (200 expected)."""
    body: dict[str, Any] = {"action": action, "payload": payload, "timeout_s": timeout_s, "wait_s": wait_s}
    if version:
        body["ocpp_version"] = version
    async with httpx.AsyncClient(base_url=api, timeout=wait_s + 30) as c:
        r = await c.post(f"/api/operator/chargers/{cp_id}/commands", headers=operator(), json=body)
    assert r.status_code == 200, r.text
    return r.json()


def results_of(command_id: str) -> list[dict[str, Any]]:
    """Every OcppCommandResult on the log for one command (the edges' claim keeps it at one)."""
    return [rec for _, rec in events("ocpp.commands", lambda t, rec: t == "OcppCommandResult"
                                     and rec["command_id"] == command_id)]


def frames_in(sid: str, action: str | None = None) -> list[dict[str, Any]]:
    """IN CALL frames a charger sent (its own initiative), optionally of one action."""
    return [r for _, r in events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == sid
                                 and r["direction"] == "IN" and r["message_type_id"] == 2
                                 and (action is None or r["action"] == action))]


async def assert_call_and_answer_recorded(sid: str, command_id: str, action: str, payload: dict[str, Any],
                                    result: Any) -> dict[str, Any]:
    """The CALL we sent and the charger's CALLRESULT are on `ocpp.frames` with the command's message id."""
    [res] = await eventually("one result recorded", lambda: results_of(command_id) or None)
    mid = res["message_id"]
    frames = [r for _, r in events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == sid
                                   and r["message_id"] == mid)]
    out = [f for f in frames if f["direction"] == "OUT"]
    inn = [f for f in frames if f["direction"] == "IN"]
    assert len(out) == 1 and out[0]["message_type_id"] == 2 and out[0]["action"] == action
    assert json.loads(out[0]["raw"]) == [2, mid, action, payload]
    assert len(inn) == 1 and inn[0]["message_type_id"] == 3 and inn[0]["action"] == action and inn[0]["valid"]
    assert json.loads(inn[0]["raw"]) == [3, mid, result] and inn[0]["answers"] == out[0]["raw"]
    return res


async def eventually(what: str, fn: Any, timeout: float = 30.0) -> Any:
    """Like support.wait_for, but yields to the event loop: the chargers (and in-process edges) run in it."""
    loop = asyncio.get_running_loop()
    end, last = loop.time() + timeout, None
    while loop.time() < end:
        last = fn()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def answered(sid: str, action: str, n: int) -> list[dict[str, Any]]:
    """Wait until the charger has sent `n` CALLs of `action` and the edge answered each (CALLRESULT on the log)."""
    def got() -> Any:
        ins = frames_in(sid, action)
        if len(ins) < n:
            return None
        mids = {f["message_id"] for f in ins}
        outs = [r for _, r in events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == sid
                                     and r["direction"] == "OUT" and r["message_type_id"] == 3
                                     and r["message_id"] in mids)]
        return ins if len(outs) >= n else None
    return await eventually(f"{n} {action} from {sid} answered", got)


async def drive(api: str, spec: ChargerSpec, cp: Any, action: str, payload: dict[str, Any],
                expect: dict[str, Any], followups: dict[str, int], version: str) -> dict[str, Any]:
    """One command end to end; returns the result."""
    before = {a: len(frames_in(spec.station_id, a)) for a in followups}
    got = await command(api, spec.station_id, action, payload, version=version)
    assert got["outcome"] == "RESULT", got
    result = got["result"]
    assert valid_result(version, action, result), result
    assert {k: result.get(k) for k in expect} == expect, result
    assert cp.received[-1] == (action, payload)
    await assert_call_and_answer_recorded(spec.station_id, got["command_id"], action, payload, result)
    for a, n in followups.items():
        sent = await answered(spec.station_id, a, before[a] + n)
        assert all(f["valid"] for f in sent)
    return result


# ---- the charger(s) --------------------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cp16(platform) -> AsyncIterator[tuple[ChargerSpec, Any]]:  # noqa: ANN001
    spec = register_charger("C16", uuid.uuid4().hex[:10], version=V)
    async with charger(platform.ocpp, spec) as cp:
        assert (await boot(cp, spec)).status == "Accepted"
        yield spec, cp


CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]] = [
    # action, payload, expected result fields, follow-ups the charger sends (action -> count)
    ("RemoteStartTransaction", {"connectorId": 1, "idTag": "DRIVER-1"}, {"status": "Accepted"}, {}),
    ("RemoteStopTransaction", {"transactionId": 17}, {"status": "Accepted"}, {}),
    ("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}, {"status": "Accepted"}, {}),
    ("Reset", {"type": "Soft"}, {"status": "Accepted"}, {}),
    ("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}, {}),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}, {"status": "Accepted"}, {}),
    ("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]},
     {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "120"}],
      "unknownKey": ["NoSuchKey"]}, {}),
    ("ClearCache", {}, {"status": "Accepted"}, {}),
    ("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}},
     {"status": "Accepted"}, {}),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
     {"status": "Accepted", "connectorId": 1}, {}),
    ("ClearChargingProfile", {"id": 7}, {"status": "Accepted"}, {}),
    ("ReserveNow", {"connectorId": 1, "expiryDate": SOON, "idTag": "DRIVER-1", "reservationId": 5},
     {"status": "Accepted"}, {}),
    ("CancelReservation", {"reservationId": 5}, {"status": "Accepted"}, {}),
    ("SendLocalList", {"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "DRIVER-1", "idTagInfo": {"status": "Accepted"}}]}, {"status": "Accepted"}, {}),
    ("GetLocalListVersion", {}, {"listVersion": 3}, {}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}, {"status": "Accepted"},
     {"StatusNotification": 1}),
    ("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}, {"status": "Accepted"},
     {"MeterValues": 1}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}, {"Heartbeat": 1}),
    ("UpdateFirmware", {"location": "https://firmware.example/sim-22-2.0.bin", "retrieveDate": SOON}, {},
     {"FirmwareStatusNotification": 4}),
    ("GetDiagnostics", {"location": "ftp://diagnostics.example/upload"}, {}, {"DiagnosticsStatusNotification": 2}),
    ("GetLog", {"logType": "DiagnosticsLog", "requestId": 11, "log": {"remoteLocation": "https://logs.example/up"}},
     {"status": "Accepted"}, {"LogStatusNotification": 2}),
    ("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}, {"Heartbeat": 1}),
]


@pytest.mark.parametrize("action,payload,expect,followups", CASES,
                         ids=[f"{c[0]}-{c[1].get('requestedMessage', i)}" for i, c in enumerate(CASES)])
async def test_every_16_command_is_answered_schema_valid_and_recorded(platform, cp16, action, payload, expect,
                                                                      followups) -> None:  # noqa: ANN001
    spec, cp = cp16
    await drive(platform.api, spec, cp, action, payload, expect, followups, V)


CERTIFICATE_CASES = [
    ("CertificateSigned", {"certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
    ("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
    ("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}),
    ("DeleteCertificate", {"certificateHashData": {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64,
                                                   "issuerKeyHash": "b" * 64, "serialNumber": "01"}}),
    ("SignedUpdateFirmware", {"requestId": 12, "firmware": {
        "location": "https://firmware.example/sim-22-2.0.bin", "retrieveDateTime": SOON,
        "signingCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "signature": "c2lnbmF0dXJl"}}),
]


@pytest.mark.parametrize("action,payload", CERTIFICATE_CASES, ids=[c[0] for c in CERTIFICATE_CASES])
async def test_certificate_operations_are_refused_on_profile_1(platform, cp16, action, payload) -> None:  # noqa: ANN001,E501
    spec, cp = cp16
    seen = len(cp.received)
    got = await command(platform.api, spec.station_id, action, payload, version=V)
    assert (got["outcome"], got["error_code"]) == ("REFUSED", "SecurityProfile"), got
    assert len(cp.received) == seen  # never sent
    [res] = results_of(got["command_id"])
    assert res["message_id"] is None


async def test_a_20_command_to_a_16_charger_is_refused(platform, cp16) -> None:  # noqa: ANN001
    spec, cp = cp16
    seen = len(cp.received)
    got = await command(platform.api, spec.station_id, "GetVariables", {"getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
    assert (got["outcome"], got["error_code"]) == ("REFUSED", "WrongVersion"), got
    assert len(cp.received) == seen


# ---- profile 2: certificate operations over TLS ------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls16(platform, tmp_path_factory) -> AsyncIterator[tuple[ChargerSpec, Any]]:  # noqa: ANN001
    from chargeverse.stack import free_port
    from edges.ocpp.tls import TlsConfig
    from test_ocpp_security import _ca, _leaf

    d = tmp_path_factory.mktemp("pki16")
    ca = _ca("test CSMS CA")
    ca_pem, _ = ca.write(d, "ca")
    cert, key = _leaf(ca, "localhost", server=True).write(d, "server")
    import ssl

    spec = register_charger("C16T", uuid.uuid4().hex[:10], version=V, profile=2)
    async with edge_in_process(tls=TlsConfig(cert, key, None, port=free_port())) as edge:
        ctx = ssl.create_default_context(cafile=str(ca_pem))
        async with charger(f"wss://127.0.0.1:{edge.tls_port}/ocpp", spec, ssl=ctx) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            yield spec, cp


async def test_certificate_operations_are_answered_on_profile_2(platform, tls16) -> None:  # noqa: ANN001
    spec, cp = tls16
    pem = "-----BEGIN CERTIFICATE-----\nMIIBsimulatedroot\n-----END CERTIFICATE-----\n"
    await drive(platform.api, spec, cp, "InstallCertificate",
                {"certificateType": "CentralSystemRootCertificate", "certificate": pem}, {"status": "Accepted"}, {}, V)
    ids = await drive(platform.api, spec, cp, "GetInstalledCertificateIds",
                      {"certificateType": "CentralSystemRootCertificate"}, {"status": "Accepted"}, {}, V)
    [installed] = ids["certificateHashData"]
    await drive(platform.api, spec, cp, "DeleteCertificate", {"certificateHashData": installed},
                {"status": "Accepted"}, {}, V)
    await drive(platform.api, spec, cp, "DeleteCertificate", {"certificateHashData": installed},
                {"status": "NotFound"}, {}, V)
    await drive(platform.api, spec, cp, "CertificateSigned", dict(CERTIFICATE_CASES[0][1]), {"status": "Accepted"},
                {}, V)
    await drive(platform.api, spec, cp, "SignedUpdateFirmware", dict(CERTIFICATE_CASES[4][1]),
                {"status": "Accepted"}, {"SignedFirmwareStatusNotification": 5}, V)
