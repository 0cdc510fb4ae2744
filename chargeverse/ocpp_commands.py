"""The catalogue of CSMS-initiated OCPP calls and their validation.  Pure: no I/O.

A command is checked twice: by whoever publishes it (the operator API answers a bad payload with 422 before
anything reaches the log) and by the edge holding the charger's socket, which knows the version the charger
actually speaks.  Both checks use the official JSON schemas shipped in the `ocpp` package, compiled once by
jsonschema-rs, so the two can never disagree.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
VERSIONS = (V16, V201)

_ROOT = Path(ocpp.__file__).parent

#: every call a central system may send to a charger, per version (1.6 includes the security extension)
CSMS_INITIATED: dict[str, frozenset[str]] = {
    V16: frozenset({
        "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "ClearChargingProfile",
        "DataTransfer", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
        "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
        "SetChargingProfile", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
        # security extension
        "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds",
        "GetLog", "InstallCertificate", "SignedUpdateFirmware",
    }),
    V201: frozenset({
        "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache", "ClearChargingProfile",
        "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer",
        "DeleteCertificate", "GetBaseReport", "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
        "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport",
        "GetTransactionStatus", "GetVariables", "InstallCertificate", "PublishFirmware", "RequestStartTransaction",
        "RequestStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile",
        "SetDisplayMessage", "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile",
        "SetVariableMonitoring", "SetVariables", "TriggerMessage", "UnlockConnector", "UnpublishFirmware",
        "UpdateFirmware",
    }),
}

#: certificate operations: refused on security profiles 0 and 1 (no TLS), as the security whitepaper requires
CERTIFICATE_ACTIONS = frozenset({"CertificateSigned", "DeleteCertificate", "GetInstalledCertificateIds",
                                 "InstallCertificate", "SignedUpdateFirmware"})


class CommandInvalid(ValueError):
    """The command cannot be sent: unknown action for the version, or a payload its schema rejects."""


def _schema_path(version: str, action: str, response: bool) -> Path:
    if version == V16:
        return _ROOT / "v16" / "schemas" / f"{action}{'Response' if response else ''}.json"
    return _ROOT / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"


@lru_cache(maxsize=None)
def _validator(version: str, action: str, response: bool) -> jsonschema_rs.Validator:
    schema = json.loads(_schema_path(version, action, response).read_text())
    schema.pop("$schema", None)
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def versions_for(action: str) -> list[str]:
    """The versions in which `action` is a CSMS-initiated call."""
    return [v for v in VERSIONS if action in CSMS_INITIATED[v]]


def validate(action: str, payload: Any, version: str | None = None) -> str:
    """Check a command; return the version it is valid for (`version` when given).

    Without a version, the payload must be valid for at least one version that has the action; the first such
    version is returned.  Raises CommandInvalid with a human reason otherwise.
    """
    if version is not None and version not in VERSIONS:
        raise CommandInvalid(f"unknown OCPP version {version!r}; known: {', '.join(VERSIONS)}")
    candidates = [version] if version else versions_for(action)
    if not candidates or (version and action not in CSMS_INITIATED[version]):
        where = version or "any supported OCPP version"
        raise CommandInvalid(f"{action!r} is not a central-system call in {where}")
    if not isinstance(payload, dict):
        raise CommandInvalid("payload must be a JSON object")
    reasons = []
    for v in candidates:
        errors = list(_validator(v, action, False).iter_errors(payload))
        if not errors:
            return v
        e = errors[0]
        where = "/".join(str(p) for p in e.instance_path) or "payload"
        reasons.append(f"{v}: {where}: {e.message}")
    raise CommandInvalid("; ".join(reasons))


def valid_result(version: str, action: str, payload: Any) -> bool:
    """Whether a charger's CALLRESULT payload matches the official response schema."""
    return not any(True for _ in _validator(version, action, True).iter_errors(payload))
