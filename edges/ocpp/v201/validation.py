"""Schema validation of OCPP 2.0.1 payloads with the official JSON schemas (the `ocpp` package's v201 set,
`<Action>Request.json`), compiled once by jsonschema-rs (edges/ocpp/schemas.py).

Error mapping (OCPP-J 2.0.1 §4.3): a wrong type or malformed date-time -> TypeConstraintViolation; a missing
required field -> OccurrenceConstraintViolation; an unknown field -> FormatViolation; a value out of its
enumeration, length or range -> PropertyConstraintViolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp

from edges.ocpp.schemas import Codes, SchemaSet
from edges.ocpp.v201 import FORMATION, OCCURRENCE

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"
SCHEMA_SET = SchemaSet(SCHEMAS, "Request", Codes(occurrence=OCCURRENCE, formation=FORMATION))

#: every action a Charging Station may send to a CSMS in OCPP 2.0.1 (Part 2, the messages "CS -> CSMS")
CP_INITIATED = frozenset({
    "Authorize", "BootNotification", "ClearedChargingLimit", "DataTransfer", "FirmwareStatusNotification",
    "Get15118EVCertificate", "GetCertificateStatus", "Heartbeat", "LogStatusNotification", "MeterValues",
    "NotifyChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages", "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport", "NotifyReport",
    "PublishFirmwareStatusNotification", "ReportChargingProfiles", "ReservationStatusUpdate",
    "SecurityEventNotification", "SignCertificate", "StatusNotification", "TransactionEvent",
})

#: actions of 2.0.1 a CSMS sends (a charger sending one is recognised, not supported: NotSupported)
CS_INITIATED = frozenset({
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache", "ClearChargingProfile",
    "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer",
    "DeleteCertificate", "GetBaseReport", "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
    "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport",
    "GetTransactionStatus", "GetVariables", "InstallCertificate", "PublishFirmware", "RequestStartTransaction",
    "RequestStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
    "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring", "SetVariables",
    "TriggerMessage", "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
})

#: certificate operations a charger starts: only over TLS (security profile 2 or 3)
CERTIFICATE_OPERATIONS = frozenset({"SignCertificate", "Get15118EVCertificate", "GetCertificateStatus"})


def validator(action: str) -> jsonschema_rs.Validator | None:
    return SCHEMA_SET.request(action)


def check(action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """None when valid, else (CALLERROR code, human reason)."""
    return SCHEMA_SET.check(action, payload)
