"""Schema validation of OCPP 1.6 payloads with the official JSON schemas (shipped in the `ocpp` package),
compiled once by jsonschema-rs (edges/ocpp/schemas.py): the stock validator costs ~1 ms a message, this a few µs
(DESIGN.md §5).

Error mapping (OCPP-J 1.6 §4.2.3): a wrong type or malformed date-time -> TypeConstraintViolation; a missing
required field -> OccurenceConstraintViolation (sic); an unknown field -> FormationViolation; a value out of its
enumeration, length or range -> PropertyConstraintViolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp

from edges.ocpp.schemas import Codes, SchemaSet
from edges.ocpp.v16 import FORMATION, OCCURRENCE

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
SCHEMA_SET = SchemaSet(SCHEMAS, "", Codes(occurrence=OCCURRENCE, formation=FORMATION))

#: every action a charge point may send to a central system in OCPP 1.6 (+ security extension)
CP_INITIATED = frozenset({
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification",
    "StopTransaction", "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
    "SignedFirmwareStatusNotification",
})

#: actions of 1.6 a central system sends (a charger sending one is recognised, not supported: NotSupported)
CS_INITIATED = frozenset({
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
    "ClearChargingProfile", "DataTransfer", "DeleteCertificate", "ExtendedTriggerMessage", "GetCompositeSchedule",
    "GetConfiguration", "GetDiagnostics", "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog",
    "InstallCertificate", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset",
    "SendLocalList", "SetChargingProfile", "SignedUpdateFirmware", "TriggerMessage", "UnlockConnector",
    "UpdateFirmware",
})

#: certificate operations a charger starts: only over TLS (security profile 2 or 3)
CERTIFICATE_OPERATIONS = frozenset({"SignCertificate"})


def validator(action: str) -> jsonschema_rs.Validator | None:
    """The compiled validator of a request schema, or None when the schema is not shipped."""
    return SCHEMA_SET.request(action)


def check(action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """None when valid, else (CALLERROR code, human reason)."""
    return SCHEMA_SET.check(action, payload)
