"""What a driver should hear about, decided from the log (pure: no I/O; the account lookup is passed in).

Input: `sessions` (SessionStarted, SessionStopped) and `stations` (ConnectorStatusChanged).  State is kept per
STATION (a session event's `charge_point_id`, a status event's `station_id`): the sessions running there and the
last `KEEP` finished ones (connector, id token, start and stop time, whether a fault was notified), and the last
`KEEP` faults (connector, time, error code).

Decisions:
- SessionStopped -> NotificationRequested `session_finished` to the account behind the session's id token (energy,
  start, stop, reason), once per session.
- ConnectorStatusChanged to Faulted while a session runs on that connector (connector 0 = the whole charger; a
  session whose connector is unknown matches any fault of its station) -> `charger_fault` to that session's
  account (error code), at most once per session however often the charger repeats the fault.
- No account behind the token (an anonymous RFID card, a roaming token) -> nothing: there is nobody to tell.

Invariants: the notification id is derived from the causing event's id (`derived_id`), so re-processing after a
crash requests the same notification, which the projection and the sender drop; the payload carries facts of
the session, never secrets or contact details (the sender looks those up when it sends).
Order across the two topics is not guaranteed (the stations processor is stateless and usually faster than the
sessions processor, so a fault often arrives before the start of the session it interrupted).  So a fault is
tied to a session by TIME, not by arrival: both topics' events carry `occurred_at` = when the OCPP edge received
the frame behind them (one clock), and a fault belongs to a session when start <= fault <= stop on a matching
connector.  Whichever arrives last (start, stop or fault) makes the match; the session's `fault_notified` flag
keeps it to one alert.  Beyond `KEEP` remembered faults or finished sessions per station a very late event can
miss its partner -- a missed alert, never a wrong one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

from chargeverse.events import derived_id, envelope
from chargeverse.topics import NOTIFICATIONS
from projections.base import SourcedEvent
from streams.stateful import Output

SOURCE = "processor:notifications"
AccountOf = Callable[[str], "str | None"]


def key_of(e: SourcedEvent) -> str:
    r = e.record
    return str(r.get("charge_point_id") or r.get("station_id") or "")


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value is not None else None)


def request(cause: dict[str, Any], account_id: str, kind: str, station_id: str, session_id: str | None,
            connector_id: int | None, data: dict[str, Any]) -> Output:
    event_id = derived_id(cause["event_id"], f"notification/{kind}/{session_id}")
    rec = envelope(source=SOURCE, correlation_id=cause.get("correlation_id") or cause["event_id"],
                   causation_id=cause["event_id"], occurred_at=cause["occurred_at"], event_id=event_id)
    rec.update(notification_id=event_id, account_id=account_id, kind=kind, station_id=station_id,
               session_id=session_id, connector_id=connector_id, data=json.dumps(data, sort_keys=True))
    return (NOTIFICATIONS.name, account_id, "NotificationRequested", rec)


#: how many faults and finished sessions a station's state remembers (for events of the other topic arriving late)
KEEP = 10


def _micros(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return int(datetime.fromisoformat(str(value)).timestamp() * 1_000_000)


def _matches(session_connector: Any, fault_connector: Any) -> bool:
    return fault_connector in (0, None) or session_connector in (None, fault_connector)


def _during(session: dict[str, Any], fault: dict[str, Any]) -> bool:
    return session["from"] <= fault["at"] and (session.get("to") is None or fault["at"] <= session["to"])


def _fault_outputs(sessions: dict[str, dict[str, Any]], faults: list[dict[str, Any]],
                   account_of: AccountOf) -> list[Output]:
    """Notify each session (not yet notified) of the first fault of its connector while it ran; marks them."""
    outputs: list[Output] = []
    for session_id in sorted(sessions):
        s = sessions[session_id]
        if s.get("fault_notified"):
            continue
        fault = next((f for f in sorted(faults, key=lambda f: f["at"])
                      if _matches(s.get("connector_id"), f["connector_id"]) and _during(s, f)), None)
        if fault is None:
            continue
        s["fault_notified"] = True
        account = account_of(s["id_token"]) if s.get("id_token") else None
        if account:
            cause = {"event_id": fault["event_id"], "occurred_at": datetime.fromisoformat(fault["occurred_at"]),
                     "correlation_id": fault["event_id"]}
            outputs.append(request(cause, account, "charger_fault", fault["station_id"], session_id,
                                   fault["connector_id"], {"error_code": fault["error_code"], "status": "Faulted"}))
    return outputs


def fold(state: dict[str, Any] | None, e: SourcedEvent, account_of: AccountOf) -> tuple[dict[str, Any] | None,
                                                                                        list[Output]]:
    """One event into a station's state.  Times are the events' `occurred_at` (when the OCPP edge received the
    frame behind them: one clock for both topics), so a fault is tied to a session by time, whichever of the two
    topics is processed first."""
    r = e.record
    if e.type not in ("SessionStarted", "SessionStopped") and not (
            e.type == "ConnectorStatusChanged" and r.get("status") == "Faulted"):
        return state, []
    st = json.loads(json.dumps(state or {}))  # a copy: the caller's state is never mutated
    active: dict[str, dict[str, Any]] = st.get("active", {})
    ended: dict[str, dict[str, Any]] = st.get("ended", {})
    faults: list[dict[str, Any]] = st.get("faults", [])
    outputs: list[Output] = []
    at = _micros(r["occurred_at"])
    if e.type == "SessionStarted":
        if r["session_id"] not in ended:
            active[r["session_id"]] = {"connector_id": r.get("connector_id"), "id_token": r.get("id_token"),
                                       "from": at, "to": None, "fault_notified": False}
            outputs += _fault_outputs({r["session_id"]: active[r["session_id"]]}, faults, account_of)
    elif e.type == "SessionStopped":
        if r["session_id"] in ended:
            return state, []  # a repeated stop: told once
        s = active.pop(r["session_id"], None) or {"connector_id": r.get("connector_id"), "from": at,
                                                  "fault_notified": False}
        s.update(to=at, id_token=r.get("id_token") or s.get("id_token"))
        ended[r["session_id"]] = s
        outputs += _fault_outputs({r["session_id"]: s}, faults, account_of)
        account = account_of(s["id_token"]) if s.get("id_token") else None
        if account:
            data = {"energy_kwh": round(float(r.get("energy_wh") or 0) / 1000, 3),
                    "started_at": _iso(r.get("started_at")), "stopped_at": _iso(r.get("stopped_at")),
                    "reason": r.get("reason")}
            outputs.append(request(r, account, "session_finished", r["charge_point_id"], r["session_id"],
                                   r.get("connector_id"), data))
    else:
        faults.append({"at": at, "occurred_at": _iso(r["occurred_at"]), "event_id": r["event_id"],
                       "station_id": r["station_id"], "connector_id": r.get("connector_id"),
                       "error_code": r.get("error_code")})
        outputs += _fault_outputs({**active, **ended}, faults, account_of)
    faults = sorted(faults, key=lambda f: f["at"])[-KEEP:]
    ended = dict(sorted(ended.items(), key=lambda kv: kv[1]["to"])[-KEEP:])
    return {"active": active, "ended": ended, "faults": faults}, outputs
