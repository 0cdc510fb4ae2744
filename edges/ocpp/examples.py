"""One minimal, schema-valid request per charger-initiated action of each version.

Used by the tests (every action answered with a schema-valid answer), the edge benchmark and as a readable
catalogue of what chargers send.  Kept beside the handlers so a new action cannot be added without an example
(a unit test checks the three stay in step).
"""

from __future__ import annotations

from typing import Any

T = "2026-01-01T12:00:00Z"
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBtest\n-----END CERTIFICATE REQUEST-----\n"

V16: dict[str, dict[str, Any]] = {
    "Authorize": {"idTag": "TAG-1"},
    "BootNotification": {"chargePointVendor": "chargeverse-sim", "chargePointModel": "SIM-22",
                         "firmwareVersion": "1.0.0"},
    "DataTransfer": {"vendorId": "com.example", "messageId": "hello", "data": "{}"},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "Heartbeat": {},
    "MeterValues": {"connectorId": 1, "transactionId": 1,
                    "meterValue": [{"timestamp": T, "sampledValue": [
                        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]},
    "StartTransaction": {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": T},
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": T},
    "StopTransaction": {"transactionId": 1, "meterStop": 12000, "timestamp": T, "idTag": "TAG-1",
                        "reason": "Local",
                        "transactionData": [{"timestamp": T, "sampledValue": [
                            {"value": "12000", "context": "Transaction.End", "unit": "Wh"}]}]},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 1},
    "SecurityEventNotification": {"type": "FirmwareUpdated", "timestamp": T, "techInfo": "1.0.1"},
    "SignCertificate": {"csr": CSR},
    "SignedFirmwareStatusNotification": {"status": "Installed", "requestId": 1},
}

_SCHEDULE = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}

V201: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}},
    "BootNotification": {"chargingStation": {"model": "SIM-22", "vendorName": "chargeverse-sim"},
                         "reason": "PowerUp"},
    "ClearedChargingLimit": {"chargingLimitSource": "EMS", "evseId": 1},
    "DataTransfer": {"vendorId": "com.example", "messageId": "hello", "data": {"a": 1}},
    "FirmwareStatusNotification": {"status": "Installed", "requestId": 1},
    "Get15118EVCertificate": {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                              "exiRequest": "gAAA"},
    "GetCertificateStatus": {"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "aa",
                                                 "issuerKeyHash": "bb", "serialNumber": "01",
                                                 "responderURL": "http://ocsp.example"}},
    "Heartbeat": {},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 1},
    "MeterValues": {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": [{"value": 1234.5}]}]},
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1},
    "NotifyCustomerInformation": {"data": "no data", "seqNo": 0, "generatedAt": T, "requestId": 1},
    "NotifyDisplayMessages": {"requestId": 1},
    "NotifyEVChargingNeeds": {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"}},
    "NotifyEVChargingSchedule": {"timeBase": T, "evseId": 1, "chargingSchedule": _SCHEDULE},
    "NotifyEvent": {"generatedAt": T, "seqNo": 0, "eventData": [
        {"eventId": 1, "timestamp": T, "trigger": "Alerting", "actualValue": "1",
         "eventNotificationType": "HardWiredNotification", "component": {"name": "EVSE"},
         "variable": {"name": "Power"}}]},
    "NotifyMonitoringReport": {"requestId": 1, "seqNo": 0, "generatedAt": T},
    "NotifyReport": {"requestId": 1, "seqNo": 0, "generatedAt": T, "reportData": [
        {"component": {"name": "ChargingStation"}, "variable": {"name": "Model"},
         "variableAttribute": [{"value": "SIM-22"}]}]},
    "PublishFirmwareStatusNotification": {"status": "Published", "location": ["http://fw.example/1"],
                                          "requestId": 1},
    "ReportChargingProfiles": {"requestId": 1, "chargingLimitSource": "CSO", "evseId": 1, "chargingProfile": [
        {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
         "chargingSchedule": [{**_SCHEDULE, "startSchedule": T}]}]},
    "ReservationStatusUpdate": {"reservationId": 1, "reservationUpdateStatus": "Expired"},
    "SecurityEventNotification": {"type": "FirmwareUpdated", "timestamp": T},
    "SignCertificate": {"csr": CSR, "certificateType": "ChargingStationCertificate"},
    "StatusNotification": {"timestamp": T, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    "TransactionEvent": {"eventType": "Started", "timestamp": T, "triggerReason": "Authorized", "seqNo": 0,
                         "transactionInfo": {"transactionId": "TX-1"}, "evse": {"id": 1, "connectorId": 1},
                         "idToken": {"idToken": "TAG-1", "type": "ISO14443"}},
}

BY_VERSION: dict[str, dict[str, dict[str, Any]]] = {"ocpp1.6": V16, "ocpp2.0.1": V201}
