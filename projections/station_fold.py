"""Fold `stations` events into per-row patches: pure logic shared by the Postgres and Redis projections.

A batch of events for a station collapses into one patch per row (last write wins, in log order), so a
projection writes each touched row once per batch instead of once per event: that is what makes a replay of
millions of heartbeats and status changes fast.  Events of one station are ordered (one key, one partition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from projections.base import SourcedEvent


@dataclass
class Patches:
    #: station_id -> column -> value
    stations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (station_id, connector_id) -> column -> value
    connectors: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: station_id -> (password_hash, security_profile, revoked, registration_status)
    credentials: dict[str, tuple[str | None, int, bool, str]] = field(default_factory=dict)


#: `stations` events other projections own (pg.station_tariffs): passed over, they change no station row
NOT_MINE = frozenset({"StationTariffSet"})


def fold(events: Iterable[SourcedEvent]) -> Patches:
    p = Patches()
    for e in events:
        if e.type in NOT_MINE:
            continue
        r = e.record
        sid = r["station_id"]
        row = p.stations.setdefault(sid, {})
        row["updated_at"] = r["occurred_at"]
        row["last_event_id"] = r["event_id"]
        if e.type == "StationRegistered":
            row.update(name=r["name"], operator=r["operator"], address=r["address"], own=r["own"],
                       location=(r["longitude"], r["latitude"]))
            for c in r["connectors"]:
                p.connectors.setdefault((sid, c["connector_id"]), {}).update(
                    standard=c["standard"], max_power_kw=c["max_power_kw"])
            p.credentials[sid] = (r["password_hash"], r["security_profile"], bool(r.get("revoked", False)),
                                  r.get("registration_status") or "Accepted")
        elif e.type == "StationBooted":
            row.update(vendor=r["vendor"], model=r["model"], serial_number=r["serial_number"],
                       firmware_version=r["firmware_version"], boot_status=r["status"],
                       heartbeat_interval=r["interval"], booted_at=r["occurred_at"])
        elif e.type == "StationHeartbeat":
            row["last_heartbeat_at"] = r["occurred_at"]
        elif e.type == "StationConnectionChanged":
            row.update(online=r["online"], edge_instance=r["edge_instance"])
        elif e.type == "ConnectorStatusChanged":
            p.connectors.setdefault((sid, r["connector_id"]), {}).update(
                status=r["status"], error_code=r["error_code"], info=r["info"],
                vendor_error_code=r["vendor_error_code"], status_at=r["occurred_at"])
        else:
            raise ValueError(f"stations projection cannot apply {e.type}")
    return p
