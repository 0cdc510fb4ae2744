"""Every OCPP 2.0.1 CSMS call the platform uses, as an operator command, all real: the operator API publishes it
on `ocpp.commands`, the edge holding the socket sends the CALL, a Charging Station built on the `ocpp` package's
v201 ChargePoint (validating every request against the official 2.0.1 schemas) answers it, and the outcome comes
back through the `ocpp_commands` projection.  Checked per command as in test_ocpp_commands_v16.py (RESULT,
schema-valid result, CALL and answer on `ocpp.frames`, the payload the station saw, the follow-ups it sends:
NotifyReport after GetBaseReport (use case B07), ReportChargingProfiles after GetChargingProfiles,
FirmwareStatusNotification after UpdateFirmware, the triggered message after TriggerMessage).

Certificate operations: REFUSED (`SecurityProfile`) on profile 1, answered over TLS on profile 2.  Where a
command is the CSMS's step of an OCA test case (OCPP 2.0.1 Part 6, CSMS cases), that case's id leads the test id
(e.g. `TC_K_01_CSMS-SetChargingProfile`), so `pytest -k TC_K_` lists the smart-charging conformance covered.
Multi-step cases whose other steps are the station's (e.g. TC_F_01_CSMS, remote start with cable plug-in first)
are not claimed.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from chargeverse.simulator import ChargerSpec, boot
from test_ocpp_commands_v16 import SOON, command, drive, results_of
from test_ocpp_support import charger, edge_in_process, register_charger

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
V = "ocpp2.0.1"
HB = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
PEM = "-----BEGIN CERTIFICATE-----\nMIIBsimulated\n-----END CERTIFICATE-----\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cp201(platform) -> AsyncIterator[tuple[ChargerSpec, Any]]:  # noqa: ANN001
    spec = register_charger("C201", uuid.uuid4().hex[:10], version=V)
    async with charger(platform.ocpp, spec) as cp:
        assert (await boot(cp, spec)).status == "Accepted"
        yield spec, cp


CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]] = [
    ("RequestStartTransaction", {"idToken": {"idToken": "DRIVER-1", "type": "ISO14443"}, "remoteStartId": 42,
                                 "evseId": 1}, {"status": "Accepted"}, {}),
    ("RequestStopTransaction", {"transactionId": "tx-17"}, {"status": "Accepted"}, {}),
    ("SetChargingProfile", {"evseId": 1, "chargingProfile": {
        "id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}},
     {"status": "Accepted"}, {}),
    ("GetChargingProfiles", {"requestId": 21, "evseId": 1,
                             "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"}},
     {"status": "Accepted"}, {"ReportChargingProfiles": 1}),
    ("GetCompositeSchedule", {"duration": 3600, "evseId": 1, "chargingRateUnit": "A"}, {"status": "Accepted"}, {}),
    ("ClearChargingProfile", {"chargingProfileId": 7}, {"status": "Accepted"}, {}),
    ("GetChargingProfiles", {"requestId": 22, "chargingProfile": {"chargingProfileId": [7]}},
     {"status": "NoProfiles"}, {}),
    ("SetVariables", {"setVariableData": [{"attributeValue": "120", **HB}]},
     {"setVariableResult": [{"attributeStatus": "Accepted", **HB}]}, {}),
    ("GetVariables", {"getVariableData": [HB]},
     {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "120", **HB}]}, {}),
    ("GetBaseReport", {"requestId": 31, "reportBase": "FullInventory"}, {"status": "Accepted"}, {"NotifyReport": 2}),
    ("UpdateFirmware", {"requestId": 41, "firmware": {"location": "https://firmware.example/sim-22-2.0.bin",
                                                      "retrieveDateTime": SOON}},
     {"status": "Accepted"}, {"FirmwareStatusNotification": 4}),
    ("Reset", {"type": "OnIdle"}, {"status": "Accepted"}, {}),
    ("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}}, {"status": "Accepted"}, {}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}, {"Heartbeat": 1}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
     {"status": "Accepted"}, {"StatusNotification": 1}),
    ("TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}}, {"status": "Accepted"},
     {"MeterValues": 1}),
    ("TriggerMessage", {"requestedMessage": "BootNotification"}, {"status": "Rejected"}, {}),  # already accepted
]


#: CASES index -> the OCA CSMS test case whose CSMS step that command is
OCA = {2: "TC_K_01_CSMS", 3: "TC_K_35_CSMS", 4: "TC_K_43_CSMS", 5: "TC_K_05_CSMS", 6: "TC_K_32_CSMS",
       7: "TC_B_09_CSMS", 8: "TC_B_06_CSMS", 9: "TC_B_13_CSMS", 11: "TC_B_20_CSMS", 12: "TC_G_03_CSMS",
       13: "TC_F_20_CSMS", 14: "TC_F_23_CSMS", 15: "TC_F_11_CSMS"}


def _case_id(i: int, case: tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]) -> str:
    name = f"{case[0]}-{case[1].get('requestedMessage', i)}"
    return f"{OCA[i]}-{name}" if i in OCA else name


@pytest.mark.parametrize("action,payload,expect,followups", CASES,
                         ids=[_case_id(i, c) for i, c in enumerate(CASES)])
async def test_every_201_command_is_answered_schema_valid_and_recorded(platform, cp201, action, payload, expect,
                                                                       followups) -> None:  # noqa: ANN001
    spec, cp = cp201
    await drive(platform.api, spec, cp, action, payload, expect, followups, V)


async def test_the_notify_report_carries_the_request_id_and_the_device_model(platform, cp201) -> None:  # noqa: ANN001
    from test_ocpp_commands_v16 import frames_in
    import json

    spec, _ = cp201
    reports = [json.loads(f["raw"])[3] for f in frames_in(spec.station_id, "NotifyReport")]
    ours = [r for r in reports if r["requestId"] == 31]
    assert [r["seqNo"] for r in ours] == [0, 1] and [r.get("tbc", False) for r in ours] == [True, False]
    reported = {(d["component"]["name"], d["variable"]["name"]): d["variableAttribute"][0]["value"]
                for r in ours for d in r["reportData"]}
    assert reported[("OCPPCommCtrlr", "HeartbeatInterval")] == "120"  # the value SetVariables wrote


CERTIFICATE_CASES = [
    ("CertificateSigned", {"certificateChain": PEM}),
    ("InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": PEM}),
    ("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}),
    ("DeleteCertificate", {"certificateHashData": {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64,
                                                   "issuerKeyHash": "b" * 64, "serialNumber": "01"}}),
]


@pytest.mark.parametrize("action,payload", CERTIFICATE_CASES, ids=[c[0] for c in CERTIFICATE_CASES])
async def test_certificate_operations_are_refused_on_profile_1(platform, cp201, action, payload) -> None:  # noqa: ANN001,E501
    spec, cp = cp201
    seen = len(cp.received)
    got = await command(platform.api, spec.station_id, action, payload, version=V)
    assert (got["outcome"], got["error_code"]) == ("REFUSED", "SecurityProfile"), got
    assert len(cp.received) == seen
    [res] = results_of(got["command_id"])
    assert res["message_id"] is None


async def test_a_16_command_to_a_201_station_is_refused(platform, cp201) -> None:  # noqa: ANN001
    spec, cp = cp201
    seen = len(cp.received)
    got = await command(platform.api, spec.station_id, "RemoteStartTransaction", {"idTag": "DRIVER-1"})
    assert (got["outcome"], got["error_code"]) == ("REFUSED", "WrongVersion"), got
    assert len(cp.received) == seen


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls201(platform, tmp_path_factory) -> AsyncIterator[tuple[ChargerSpec, Any]]:  # noqa: ANN001
    from chargeverse.stack import free_port
    from edges.ocpp.tls import TlsConfig
    from test_ocpp_security import _ca, _leaf

    d = tmp_path_factory.mktemp("pki201")
    ca = _ca("test CSMS CA")
    ca_pem, _ = ca.write(d, "ca")
    cert, key = _leaf(ca, "localhost", server=True).write(d, "server")
    spec = register_charger("C201T", uuid.uuid4().hex[:10], version=V, profile=2)
    async with edge_in_process(tls=TlsConfig(cert, key, None, port=free_port())) as edge:
        async with charger(f"wss://127.0.0.1:{edge.tls_port}/ocpp", spec,
                           ssl=ssl.create_default_context(cafile=str(ca_pem))) as cp:
            assert (await boot(cp, spec)).status == "Accepted"
            yield spec, cp


async def test_certificate_operations_are_answered_on_profile_2(platform, tls201) -> None:  # noqa: ANN001
    spec, cp = tls201
    await drive(platform.api, spec, cp, "InstallCertificate", CERTIFICATE_CASES[1][1], {"status": "Accepted"}, {}, V)
    ids = await drive(platform.api, spec, cp, "GetInstalledCertificateIds", CERTIFICATE_CASES[2][1],
                      {"status": "Accepted"}, {}, V)
    [installed] = ids["certificateHashDataChain"]
    assert installed["certificateType"] == "CSMSRootCertificate"
    hashes = installed["certificateHashData"]
    await drive(platform.api, spec, cp, "DeleteCertificate", {"certificateHashData": hashes},
                {"status": "Accepted"}, {}, V)
    await drive(platform.api, spec, cp, "DeleteCertificate", {"certificateHashData": hashes},
                {"status": "NotFound"}, {}, V)
    await drive(platform.api, spec, cp, "CertificateSigned", CERTIFICATE_CASES[0][1], {"status": "Accepted"}, {}, V)
