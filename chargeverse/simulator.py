"""Simulated chargers built on the `ocpp` package's ChargePoint over a real WebSocket: OCPP 1.6-J (default) or
OCPP 2.0.1 (`ChargerSpec.ocpp_version`).

Used by the demo (`cv demo`) and by the end-to-end tests: they are real protocol peers, not mocks, and the `ocpp`
package validates every request they send and every answer they get against the official schemas.  A charger
boots, reports its connectors Available, heartbeats, and "charges": 1.6 Preparing -> Charging -> Finishing ->
Available as status notifications; 2.0.1 Occupied, a transaction (TransactionEvent Started/Updated/Ended with
seqNo), then Available.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import websockets
from ocpp.v16 import ChargePoint as _CP16
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus
from ocpp.v201 import ChargePoint as _CP201
from ocpp.charge_point import serialize_as_dict, snake_to_camel_case
from ocpp.routing import after as after16
from ocpp.routing import after as after201
from ocpp.routing import on as on16
from ocpp.routing import on as on201
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

V16, V201 = "ocpp1.6", "ocpp2.0.1"
log = logging.getLogger("chargeverse.simulator")


@dataclass
class ChargerSpec:
    station_id: str
    secret: str
    latitude: float
    longitude: float
    name: str
    connectors: int = 2
    vendor: str = "chargeverse-sim"
    model: str = "SIM-22"
    ocpp_version: str = V16


class _Cooperative:
    """What both simulated versions share: the record of commands received (`received`, camelCase payloads as
    sent), the follow-up messages sent on the charger's own initiative (`followups`: (action, payload) after the
    central system answered), and a small state (configuration / device model, profiles, local list,
    certificates) so that reads reflect earlier writes."""

    received: list[tuple[str, dict[str, Any]]]
    followups: list[tuple[str, dict[str, Any]]]

    def _init_state(self) -> None:
        self.received = []
        self.followups = []
        self.boot_status: str | None = None
        self.profiles: dict[int, dict[str, Any]] = {}
        self.local_list_version = 0
        self.certificates: dict[str, tuple[str, str]] = {}  # serial -> (certificate type, pem)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.follow_pause = 0.02  # between the steps of a follow-up sequence (download, install, ...)

    def _got(self, action: str, kw: dict[str, Any]) -> None:
        self.received.append((action, snake_to_camel_case(kw)))

    def _later(self, coro: Any) -> None:
        """Send follow-ups after the answer is out (the `ocpp` package runs `@after` hooks as tasks)."""
        task = asyncio.ensure_future(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except Exception:  # noqa: BLE001 - a follow-up the CSMS refuses must not kill the simulator
            log.exception("follow-up of %s failed", getattr(self, "id", "?"))

    async def _follow(self, payload: Any) -> Any:
        res = await self.call(payload, suppress=False)  # type: ignore[attr-defined]
        self.followups.append((type(payload).__name__, snake_to_camel_case(serialize_as_dict(payload))))
        return res

    async def _sequence(self, payloads: list[Any]) -> None:
        for p in payloads:
            await self._follow(p)
            await asyncio.sleep(self.follow_pause)

    def _install(self, cert_type: str, pem: str) -> str:
        serial = hashlib.sha256(pem.encode()).hexdigest()[:40]
        self.certificates[serial] = (cert_type, pem)
        return serial

    def _hash_data(self, serial: str) -> dict[str, Any]:
        # a simulator's stand-in for the real hashes of the issuer's name and key (schema-valid, stable per cert)
        digest = hashlib.sha256(serial.encode()).hexdigest()
        return {"hash_algorithm": "SHA256", "issuer_name_hash": digest[:64], "issuer_key_hash": digest[-64:],
                "serial_number": serial}


class SimChargePoint(_Cooperative, _CP16):
    """The `ocpp` 1.6 ChargePoint (with the security extension) answering every central-system call like a
    cooperative charger, and sending what the protocol expects to follow: the triggered message after
    (Extended)TriggerMessage, FirmwareStatusNotification after UpdateFirmware, DiagnosticsStatusNotification after
    GetDiagnostics, SignedFirmwareStatusNotification after SignedUpdateFirmware, LogStatusNotification after
    GetLog.  `received` lists the commands it got, in order (tests read it)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._init_state()
        self.configuration: dict[str, tuple[str, bool]] = {
            "HeartbeatInterval": ("60", False), "MeterValueSampleInterval": ("60", False),
            "NumberOfConnectors": ("2", True), "LocalAuthListEnabled": ("true", False),
            "SupportedFeatureProfiles": ("Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
                                         "SmartCharging,RemoteTrigger", True)}

    # ---- core ----------------------------------------------------------------------------------------------------
    @on16(Action16.reset)
    def on_reset(self, **kw: Any) -> Any:
        self._got("Reset", kw)
        return result16.Reset(status="Accepted")

    @on16(Action16.remote_start_transaction)
    def on_remote_start(self, **kw: Any) -> Any:
        self._got("RemoteStartTransaction", kw)
        return result16.RemoteStartTransaction(status="Accepted")

    @on16(Action16.remote_stop_transaction)
    def on_remote_stop(self, **kw: Any) -> Any:
        self._got("RemoteStopTransaction", kw)
        return result16.RemoteStopTransaction(status="Accepted")

    @on16(Action16.change_availability)
    def on_change_availability(self, **kw: Any) -> Any:
        self._got("ChangeAvailability", kw)
        return result16.ChangeAvailability(status="Accepted")

    @on16(Action16.unlock_connector)
    def on_unlock_connector(self, **kw: Any) -> Any:
        self._got("UnlockConnector", kw)
        return result16.UnlockConnector(status="Unlocked")

    @on16(Action16.get_configuration)
    def on_get_configuration(self, **kw: Any) -> Any:
        self._got("GetConfiguration", kw)
        keys = kw.get("key") or list(self.configuration)
        known = [{"key": k, "readonly": self.configuration[k][1], "value": self.configuration[k][0]}
                 for k in keys if k in self.configuration]
        unknown = [k for k in keys if k not in self.configuration]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on16(Action16.change_configuration)
    def on_change_configuration(self, **kw: Any) -> Any:
        self._got("ChangeConfiguration", kw)
        key, value = kw["key"], kw["value"]
        if key in self.configuration and self.configuration[key][1]:
            return result16.ChangeConfiguration(status="Rejected")
        if key not in self.configuration:
            return result16.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = (value, False)
        return result16.ChangeConfiguration(status="Accepted")

    @on16(Action16.clear_cache)
    def on_clear_cache(self, **kw: Any) -> Any:
        self._got("ClearCache", kw)
        return result16.ClearCache(status="Accepted")

    @on16(Action16.data_transfer)
    def on_data_transfer(self, **kw: Any) -> Any:
        self._got("DataTransfer", kw)
        return result16.DataTransfer(status="UnknownVendorId")

    # ---- smart charging ------------------------------------------------------------------------------------------
    @on16(Action16.set_charging_profile)
    def on_set_charging_profile(self, **kw: Any) -> Any:
        self._got("SetChargingProfile", kw)
        profile = kw["cs_charging_profiles"]
        self.profiles[int(profile["charging_profile_id"])] = {"connector_id": kw["connector_id"], **profile}
        return result16.SetChargingProfile(status="Accepted")

    @on16(Action16.clear_charging_profile)
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self._got("ClearChargingProfile", kw)
        if kw.get("id") is not None:
            gone = [kw["id"]] if kw["id"] in self.profiles else []
        else:
            gone = [i for i, p in self.profiles.items()
                    if all(kw.get(f) is None or p.get(f) == kw[f]
                           for f in ("connector_id", "charging_profile_purpose", "stack_level"))]
        for i in gone:
            del self.profiles[i]
        return result16.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    @on16(Action16.get_composite_schedule)
    def on_get_composite_schedule(self, **kw: Any) -> Any:
        self._got("GetCompositeSchedule", kw)
        return result16.GetCompositeSchedule(
            status="Accepted", connector_id=kw["connector_id"], schedule_start=_now(),
            charging_schedule={"duration": kw["duration"], "charging_rate_unit": kw.get("charging_rate_unit") or "A",
                               "charging_schedule_period": [{"start_period": 0, "limit": 32.0}]})

    # ---- remote trigger --------------------------------------------------------------------------------------------
    _TRIGGERABLE16 = {"BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                      "Heartbeat", "MeterValues", "StatusNotification"}

    @on16(Action16.trigger_message)
    def on_trigger_message(self, **kw: Any) -> Any:
        self._got("TriggerMessage", kw)
        ok = kw["requested_message"] in self._TRIGGERABLE16
        return result16.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after16(Action16.trigger_message)
    async def after_trigger_message(self, **kw: Any) -> None:
        if kw["requested_message"] in self._TRIGGERABLE16:
            self._later(self._follow(self._triggered16(kw["requested_message"], kw.get("connector_id"))))

    def _triggered16(self, what: str, connector: int | None) -> Any:
        c = connector if connector is not None else 1
        return {
            "BootNotification": lambda: call.BootNotification(charge_point_vendor="chargeverse-sim",
                                                              charge_point_model="SIM-22"),
            "DiagnosticsStatusNotification": lambda: call.DiagnosticsStatusNotification(status="Idle"),
            "FirmwareStatusNotification": lambda: call.FirmwareStatusNotification(status="Idle"),
            "Heartbeat": call.Heartbeat,
            "MeterValues": lambda: call.MeterValues(connector_id=c, meter_value=[
                {"timestamp": _now(), "sampled_value": [{"value": "1234", "measurand":
                                                         "Energy.Active.Import.Register", "unit": "Wh"}]}]),
            "StatusNotification": lambda: call.StatusNotification(
                connector_id=c, error_code=ChargePointErrorCode.no_error, status=ChargePointStatus.available,
                timestamp=_now()),
            "SignChargePointCertificate": lambda: call.SignCertificate(csr=_SIM_CSR),
            "LogStatusNotification": lambda: call.LogStatusNotification(status="Idle"),
        }[what]()

    # ---- reservation, local list -----------------------------------------------------------------------------------
    @on16(Action16.reserve_now)
    def on_reserve_now(self, **kw: Any) -> Any:
        self._got("ReserveNow", kw)
        return result16.ReserveNow(status="Accepted")

    @on16(Action16.cancel_reservation)
    def on_cancel_reservation(self, **kw: Any) -> Any:
        self._got("CancelReservation", kw)
        return result16.CancelReservation(status="Accepted")

    @on16(Action16.send_local_list)
    def on_send_local_list(self, **kw: Any) -> Any:
        self._got("SendLocalList", kw)
        self.local_list_version = int(kw["list_version"])
        return result16.SendLocalList(status="Accepted")

    @on16(Action16.get_local_list_version)
    def on_get_local_list_version(self, **kw: Any) -> Any:
        self._got("GetLocalListVersion", kw)
        return result16.GetLocalListVersion(list_version=self.local_list_version)

    # ---- firmware, diagnostics -------------------------------------------------------------------------------------
    @on16(Action16.update_firmware)
    def on_update_firmware(self, **kw: Any) -> Any:
        self._got("UpdateFirmware", kw)
        return result16.UpdateFirmware()

    @after16(Action16.update_firmware)
    async def after_update_firmware(self, **kw: Any) -> None:
        self._later(self._sequence([call.FirmwareStatusNotification(status=s) for s in
                                    ("Downloading", "Downloaded", "Installing", "Installed")]))

    @on16(Action16.get_diagnostics)
    def on_get_diagnostics(self, **kw: Any) -> Any:
        self._got("GetDiagnostics", kw)
        return result16.GetDiagnostics(file_name=f"diagnostics-{self.id}.log")

    @after16(Action16.get_diagnostics)
    async def after_get_diagnostics(self, **kw: Any) -> None:
        self._later(self._sequence([call.DiagnosticsStatusNotification(status=s) for s in ("Uploading", "Uploaded")]))

    # ---- security extension ----------------------------------------------------------------------------------------
    @on16(Action16.certificate_signed)
    def on_certificate_signed(self, **kw: Any) -> Any:
        self._got("CertificateSigned", kw)
        self._install("ChargePointCertificate", kw["certificate_chain"])
        return result16.CertificateSigned(status="Accepted")

    @on16(Action16.install_certificate)
    def on_install_certificate(self, **kw: Any) -> Any:
        self._got("InstallCertificate", kw)
        self._install(kw["certificate_type"], kw["certificate"])
        return result16.InstallCertificate(status="Accepted")

    @on16(Action16.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, **kw: Any) -> Any:
        self._got("GetInstalledCertificateIds", kw)
        found = [self._hash_data(s) for s, (t, _) in self.certificates.items() if t == kw["certificate_type"]]
        return result16.GetInstalledCertificateIds(status="Accepted" if found else "NotFound",
                                                   certificate_hash_data=found or None)

    @on16(Action16.delete_certificate)
    def on_delete_certificate(self, **kw: Any) -> Any:
        self._got("DeleteCertificate", kw)
        serial = kw["certificate_hash_data"]["serial_number"]
        return result16.DeleteCertificate(status="Accepted" if self.certificates.pop(serial, None) else "NotFound")

    @on16(Action16.signed_update_firmware)
    def on_signed_update_firmware(self, **kw: Any) -> Any:
        self._got("SignedUpdateFirmware", kw)
        return result16.SignedUpdateFirmware(status="Accepted")

    @after16(Action16.signed_update_firmware)
    async def after_signed_update_firmware(self, **kw: Any) -> None:
        rid = kw["request_id"]
        self._later(self._sequence([call.SignedFirmwareStatusNotification(status=s, request_id=rid) for s in
                                    ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed")]))

    @on16(Action16.get_log)
    def on_get_log(self, **kw: Any) -> Any:
        self._got("GetLog", kw)
        return result16.GetLog(status="Accepted", filename=f"{kw['log_type']}-{self.id}.log")

    @after16(Action16.get_log)
    async def after_get_log(self, **kw: Any) -> None:
        rid = kw["request_id"]
        self._later(self._sequence([call.LogStatusNotification(status=s, request_id=rid)
                                    for s in ("Uploading", "Uploaded")]))

    _EXTENDED_TRIGGERABLE = {"BootNotification", "LogStatusNotification", "FirmwareStatusNotification", "Heartbeat",
                             "MeterValues", "SignChargePointCertificate", "StatusNotification"}

    @on16(Action16.extended_trigger_message)
    def on_extended_trigger_message(self, **kw: Any) -> Any:
        self._got("ExtendedTriggerMessage", kw)
        ok = kw["requested_message"] in self._EXTENDED_TRIGGERABLE
        return result16.ExtendedTriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after16(Action16.extended_trigger_message)
    async def after_extended_trigger_message(self, **kw: Any) -> None:
        if kw["requested_message"] in self._EXTENDED_TRIGGERABLE:
            self._later(self._follow(self._triggered16(kw["requested_message"], kw.get("connector_id"))))


class SimChargePoint201(_Cooperative, _CP201):
    """The `ocpp` 2.0.1 ChargePoint answering the CSMS's calls like a cooperative charging station, with the
    follow-ups the protocol expects: the triggered message after TriggerMessage, NotifyReport after GetBaseReport
    (B07), ReportChargingProfiles after GetChargingProfiles, FirmwareStatusNotification after UpdateFirmware."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._init_state()
        # the device model: (component, variable) -> (value, mutability, data type)
        self.variables: dict[tuple[str, str], tuple[str, str, str]] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): ("60", "ReadWrite", "integer"),
            ("AuthCtrlr", "AuthorizeRemoteStart"): ("true", "ReadWrite", "boolean"),
            ("SecurityCtrlr", "SecurityProfile"): ("1", "ReadOnly", "integer"),
            ("SampledDataCtrlr", "TxUpdatedInterval"): ("60", "ReadWrite", "integer"),
        }

    @on201(Action201.reset)
    def on_reset(self, **kw: Any) -> Any:
        self._got("Reset", kw)
        return result201.Reset(status="Accepted")

    @on201(Action201.request_start_transaction)
    def on_request_start(self, **kw: Any) -> Any:
        self._got("RequestStartTransaction", kw)
        return result201.RequestStartTransaction(status="Accepted")

    @on201(Action201.request_stop_transaction)
    def on_request_stop(self, **kw: Any) -> Any:
        self._got("RequestStopTransaction", kw)
        return result201.RequestStopTransaction(status="Accepted")

    @on201(Action201.change_availability)
    def on_change_availability(self, **kw: Any) -> Any:
        self._got("ChangeAvailability", kw)
        return result201.ChangeAvailability(status="Accepted")

    @on201(Action201.unlock_connector)
    def on_unlock_connector(self, **kw: Any) -> Any:
        self._got("UnlockConnector", kw)
        return result201.UnlockConnector(status="Unlocked")

    @on201(Action201.clear_cache)
    def on_clear_cache(self, **kw: Any) -> Any:
        self._got("ClearCache", kw)
        return result201.ClearCache(status="Accepted")

    # ---- device model ----------------------------------------------------------------------------------------------
    @on201(Action201.get_variables)
    def on_get_variables(self, **kw: Any) -> Any:
        self._got("GetVariables", kw)
        out = []
        for d in kw["get_variable_data"]:
            key = (d["component"]["name"], d["variable"]["name"])
            got = self.variables.get(key)
            r: dict[str, Any] = {"component": d["component"], "variable": d["variable"],
                                 "attribute_status": "Accepted" if got else "UnknownVariable"}
            if got:
                r["attribute_value"] = got[0]
            out.append(r)
        return result201.GetVariables(get_variable_result=out)

    @on201(Action201.set_variables)
    def on_set_variables(self, **kw: Any) -> Any:
        self._got("SetVariables", kw)
        out = []
        for d in kw["set_variable_data"]:
            key = (d["component"]["name"], d["variable"]["name"])
            got = self.variables.get(key)
            if got is None:
                st = "UnknownVariable"
            elif got[1] == "ReadOnly":
                st = "Rejected"
            else:
                st = "Accepted"
                self.variables[key] = (d["attribute_value"], got[1], got[2])
            out.append({"component": d["component"], "variable": d["variable"], "attribute_status": st})
        return result201.SetVariables(set_variable_result=out)

    @on201(Action201.get_base_report)
    def on_get_base_report(self, **kw: Any) -> Any:
        self._got("GetBaseReport", kw)
        return result201.GetBaseReport(status="Accepted")

    @after201(Action201.get_base_report)
    async def after_get_base_report(self, **kw: Any) -> None:
        rid, base = kw["request_id"], kw["report_base"]
        rows = [(k, v) for k, v in self.variables.items()
                if base != "ConfigurationInventory" or v[1] == "ReadWrite"]
        data = [{"component": {"name": c}, "variable": {"name": n},
                 "variable_attribute": [{"type": "Actual", "value": val, "mutability": mut}],
                 "variable_characteristics": {"data_type": dt, "supports_monitoring": False}}
                for (c, n), (val, mut, dt) in rows]
        half = max(1, len(data) // 2)  # two parts, to exercise seqNo / tbc
        parts = [data[:half], data[half:]] if len(data) > 1 else [data]
        self._later(self._sequence([call201.NotifyReport(request_id=rid, generated_at=_now(), seq_no=i,
                                                         report_data=part, tbc=i < len(parts) - 1)
                                    for i, part in enumerate(parts)]))

    # ---- smart charging --------------------------------------------------------------------------------------------
    @on201(Action201.set_charging_profile)
    def on_set_charging_profile(self, **kw: Any) -> Any:
        self._got("SetChargingProfile", kw)
        profile = kw["charging_profile"]
        self.profiles[int(profile["id"])] = {"evse_id": kw["evse_id"], **profile}
        return result201.SetChargingProfile(status="Accepted")

    @on201(Action201.get_charging_profiles)
    def on_get_charging_profiles(self, **kw: Any) -> Any:
        self._got("GetChargingProfiles", kw)
        return result201.GetChargingProfiles(status="Accepted" if self._matching(kw) else "NoProfiles")

    def _matching(self, kw: dict[str, Any]) -> list[dict[str, Any]]:
        crit = kw.get("charging_profile") or {}
        ids = crit.get("charging_profile_id")
        return [p for i, p in self.profiles.items()
                if (kw.get("evse_id") is None or p["evse_id"] == kw["evse_id"]) and (not ids or i in ids)
                and (crit.get("charging_profile_purpose") is None
                     or p.get("charging_profile_purpose") == crit["charging_profile_purpose"])]

    @after201(Action201.get_charging_profiles)
    async def after_get_charging_profiles(self, **kw: Any) -> None:
        found = self._matching(kw)
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for p in found:
            by_evse.setdefault(p["evse_id"], []).append({k: v for k, v in p.items() if k != "evse_id"})
        items = list(by_evse.items())
        self._later(self._sequence([call201.ReportChargingProfiles(
            request_id=kw["request_id"], charging_limit_source="CSO", evse_id=evse, charging_profile=profiles,
            tbc=i < len(items) - 1) for i, (evse, profiles) in enumerate(items)]))

    @on201(Action201.clear_charging_profile)
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self._got("ClearChargingProfile", kw)
        if kw.get("charging_profile_id") is not None:
            gone = [kw["charging_profile_id"]] if kw["charging_profile_id"] in self.profiles else []
        else:
            crit = kw.get("charging_profile_criteria") or {}
            gone = [i for i, p in self.profiles.items()
                    if (crit.get("evse_id") is None or p["evse_id"] == crit["evse_id"])
                    and (crit.get("charging_profile_purpose") is None
                         or p.get("charging_profile_purpose") == crit["charging_profile_purpose"])
                    and (crit.get("stack_level") is None or p.get("stack_level") == crit["stack_level"])]
        for i in gone:
            del self.profiles[i]
        return result201.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    @on201(Action201.get_composite_schedule)
    def on_get_composite_schedule(self, **kw: Any) -> Any:
        self._got("GetCompositeSchedule", kw)
        return result201.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": kw["evse_id"], "duration": kw["duration"], "schedule_start": _now(),
            "charging_rate_unit": kw.get("charging_rate_unit") or "A",
            "charging_schedule_period": [{"start_period": 0, "limit": 32.0}]})

    # ---- firmware, trigger ----------------------------------------------------------------------------------------
    @on201(Action201.update_firmware)
    def on_update_firmware(self, **kw: Any) -> Any:
        self._got("UpdateFirmware", kw)
        return result201.UpdateFirmware(status="Accepted")

    @after201(Action201.update_firmware)
    async def after_update_firmware(self, **kw: Any) -> None:
        rid = kw["request_id"]
        self._later(self._sequence([call201.FirmwareStatusNotification(status=s, request_id=rid) for s in
                                    ("Downloading", "Downloaded", "Installing", "Installed")]))

    _TRIGGERABLE201 = {"BootNotification", "FirmwareStatusNotification", "Heartbeat", "LogStatusNotification",
                       "MeterValues", "StatusNotification"}

    @on201(Action201.trigger_message)
    def on_trigger_message(self, **kw: Any) -> Any:
        self._got("TriggerMessage", kw)
        what = kw["requested_message"]
        if what not in self._TRIGGERABLE201:
            return result201.TriggerMessage(status="NotImplemented")
        if what == "BootNotification" and self.boot_status == "Accepted":  # F06.FR.17: no re-boot once accepted
            return result201.TriggerMessage(status="Rejected")
        return result201.TriggerMessage(status="Accepted")

    @after201(Action201.trigger_message)
    async def after_trigger_message(self, **kw: Any) -> None:
        what = kw["requested_message"]
        if what not in self._TRIGGERABLE201 or (what == "BootNotification" and self.boot_status == "Accepted"):
            return
        evse = kw.get("evse") or {}
        e, c = evse.get("id", 1) or 1, evse.get("connector_id", 1)
        msg = {
            "BootNotification": lambda: call201.BootNotification(
                charging_station={"model": "SIM-22", "vendor_name": "chargeverse-sim"}, reason="Triggered"),
            "FirmwareStatusNotification": lambda: call201.FirmwareStatusNotification(status="Idle"),
            "Heartbeat": call201.Heartbeat,
            "LogStatusNotification": lambda: call201.LogStatusNotification(status="Idle"),
            "MeterValues": lambda: call201.MeterValues(evse_id=e, meter_value=[
                {"timestamp": _now(), "sampled_value": [{"value": 1234.0}]}]),
            "StatusNotification": lambda: call201.StatusNotification(
                timestamp=_now(), connector_status="Available", evse_id=e, connector_id=c),
        }[what]()
        self._later(self._follow(msg))

    # ---- certificates --------------------------------------------------------------------------------------------
    @on201(Action201.certificate_signed)
    def on_certificate_signed(self, **kw: Any) -> Any:
        self._got("CertificateSigned", kw)
        self._install(kw.get("certificate_type") or "ChargingStationCertificate", kw["certificate_chain"])
        return result201.CertificateSigned(status="Accepted")

    @on201(Action201.install_certificate)
    def on_install_certificate(self, **kw: Any) -> Any:
        self._got("InstallCertificate", kw)
        self._install(kw["certificate_type"], kw["certificate"])
        return result201.InstallCertificate(status="Accepted")

    @on201(Action201.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, **kw: Any) -> Any:
        self._got("GetInstalledCertificateIds", kw)
        types = kw.get("certificate_type")
        chain = [{"certificate_type": t, "certificate_hash_data": self._hash_data(s)}
                 for s, (t, _) in self.certificates.items() if not types or t in types]
        return result201.GetInstalledCertificateIds(status="Accepted" if chain else "NotFound",
                                                    certificate_hash_data_chain=chain or None)

    @on201(Action201.delete_certificate)
    def on_delete_certificate(self, **kw: Any) -> Any:
        self._got("DeleteCertificate", kw)
        serial = kw["certificate_hash_data"]["serial_number"]
        return result201.DeleteCertificate(status="Accepted" if self.certificates.pop(serial, None) else "NotFound")


#: a syntactically plausible PKCS#10 request for triggered SignCertificate (the CSMS refuses or rejects it anyway)
_SIM_CSR = ("-----BEGIN CERTIFICATE REQUEST-----\nMIIBSIMULATEDCSRFORCHARGEVERSETESTS\n"
            "-----END CERTIFICATE REQUEST-----\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def connect(url: str, spec: ChargerSpec, **kw: Any) -> tuple[Any, Any, asyncio.Task]:
    """Open the WebSocket (HTTP Basic unless the spec has no secret, the spec's subprotocol) and start the
    ChargePoint's reader.  Extra keywords go to `websockets.connect` (e.g. `ssl=` for wss://)."""
    headers = dict(kw.pop("additional_headers", {}) or {})
    if spec.secret:
        auth = base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()
        headers["Authorization"] = f"Basic {auth}"
    ws = await websockets.connect(f"{url.rstrip('/')}/{spec.station_id}", subprotocols=[spec.ocpp_version],
                                  additional_headers=headers, **kw)
    cp: Any = (SimChargePoint201 if spec.ocpp_version == V201 else SimChargePoint)(spec.station_id, ws)
    task = asyncio.create_task(cp.start())
    return ws, cp, task


async def boot(cp: Any, spec: ChargerSpec) -> Any:
    if spec.ocpp_version == V201:
        res = await cp.call(call201.BootNotification(
            charging_station={"model": spec.model, "vendor_name": spec.vendor,
                              "serial_number": f"SN-{spec.station_id}", "firmware_version": "1.0.0"},
            reason="PowerUp"))
        cp.boot_status = res.status
        for c in range(1, spec.connectors + 1):
            await status(cp, c, "Available", spec)
        return res
    res = await cp.call(call.BootNotification(charge_point_vendor=spec.vendor, charge_point_model=spec.model,
                                              charge_point_serial_number=f"SN-{spec.station_id}",
                                              firmware_version="1.0.0"))
    cp.boot_status = res.status
    for c in range(0, spec.connectors + 1):
        await status(cp, c, ChargePointStatus.available)
    return res


async def status(cp: Any, connector: int, st: Any, spec: ChargerSpec | None = None) -> Any:
    """A status notification; for 2.0.1 chargers `connector` is the EVSE (one connector each)."""
    if isinstance(cp, _CP201):
        return await cp.call(call201.StatusNotification(timestamp=_now(), connector_status=st,
                                                        evse_id=connector, connector_id=1))
    return await cp.call(call.StatusNotification(connector_id=connector, error_code=ChargePointErrorCode.no_error,
                                                 status=st, timestamp=_now()))


async def heartbeat(cp: Any) -> Any:
    return await cp.call(call201.Heartbeat() if isinstance(cp, _CP201) else call.Heartbeat())


async def charge_cycle(cp: Any, connector: int, pause: float) -> None:
    if isinstance(cp, _CP201):
        tx = uuid.uuid4().hex[:16]
        await status(cp, connector, "Occupied")
        for seq, (event, reason) in enumerate((("Started", "CablePluggedIn"), ("Updated", "ChargingStateChanged"),
                                               ("Ended", "EVCommunicationLost"))):
            await cp.call(call201.TransactionEvent(
                event_type=event, timestamp=_now(), trigger_reason=reason, seq_no=seq,
                transaction_info={"transaction_id": tx}, evse={"id": connector, "connector_id": 1}))
            await asyncio.sleep(pause)
        await status(cp, connector, "Available")
        return
    for st in (ChargePointStatus.preparing, ChargePointStatus.charging, ChargePointStatus.finishing,
               ChargePointStatus.available):
        await status(cp, connector, st)
        await asyncio.sleep(pause)


async def run_charger(url: str, spec: ChargerSpec, *, duration: float, heartbeat_every: float = 10.0,
                      seed: int = 0) -> int:
    """Run one charger for `duration` seconds; returns the number of CALLs it made."""
    rnd = random.Random(seed)
    ws, cp, task = await connect(url, spec)
    calls = 0
    per_cycle = 5 if spec.ocpp_version == V201 else 4
    try:
        await boot(cp, spec)
        calls += 1 + spec.connectors + (0 if spec.ocpp_version == V201 else 1)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() < end:
            if rnd.random() < 0.5:
                await charge_cycle(cp, rnd.randint(1, spec.connectors), pause=min(2.0, heartbeat_every / 4))
                calls += per_cycle
            await heartbeat(cp)
            calls += 1
            await asyncio.sleep(rnd.uniform(0.5, 1.5) * heartbeat_every)
    finally:
        task.cancel()
        await ws.close()
    return calls
