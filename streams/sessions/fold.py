"""The session state machine: `ocpp.frames` events of one charge point -> `sessions` events.  Pure: no I/O.

`apply(state, frame) -> (new_state, [(event_type, record), ...])` folds one decoded `ocpp.frames` record into the
charge point's state.  The state is a plain JSON dict (see `new_state`), kept by the processor in a Faust table
keyed by charge point id, so it is co-partitioned with `ocpp.frames`.  The invariants are in the package docstring
(streams/sessions/__init__.py); the energy rules in energy.py; unit handling in meter.py.

Which frames count, and why:
- 1.6 StartTransaction is read from *our* CALLRESULT (OUT, `answers` = the charger's request): the transactionId
  exists only there, and so does the idTagInfo status the charger was told.  A non-Accepted status still starts
  the transaction (the charger has a transactionId and may charge until it stops the transaction): the session
  opens with that `authorization_status`, and the CSMS is expected to stop it.
- 1.6 MeterValues/StopTransaction and 2.0.1 TransactionEvent are read from the charger's CALL (IN): the edge
  puts it on the log *before* answering, so nothing a charger reported is lost, even when our answer could not be
  recorded or was a CALLERROR (the charger then retries; the retry is a duplicate and changes nothing).
- 2.0.1 TransactionEvent answers (OUT) carry idTokenInfo: the status is kept (by seqNo) and reported on
  SessionStopped.  2.0.1 SessionStarted is emitted at the charger's Started event, before we answer it, so its
  `authorization_status` is null.
- Invalid frames and CALLERRORs are ignored; they stay on `ocpp.frames` for the operator.  So are frames the edge
  marks `retransmission_of` (a retransmitted CALL it answered from memory: the original was folded).  A CALL the
  edge accepted leniently is read from its `normalized` payload, as the edge accepted it; `raw` stays verbatim.

Duplicates and late frames: a redelivered StartTransaction result (same transactionId), a StartTransaction the
charger re-sent and we answered with a second transactionId (same request: the second id becomes an alias of
the first session), a meterValue element already applied to the session (fingerprint), a 2.0.1 event already
applied (transactionId, seqNo), a StopTransaction/Ended for a stopped session: all change nothing.  A message for a
transaction we never saw start (its start result was not recorded) opens the session from that message
(`inferred_start`), so a lost start never loses a session's energy.  A stopped session is final.

Abandoned sessions: a charger that lost a stop message (a power cut, a swapped controller, a queue it discarded)
would leave its session open for ever, blocking the connector and the driver's token and never billing.  So a
session is closed with reason "Abandoned" (a) when a new transaction starts on its connector/EVSE, which OCPP allows
only after the old one ended, and (b) when the charger sends any frame after `abandon_after_s` without a word about
the session.  The clock is the edge's receipt time of the charger's frames, never the processor's wall clock, so a
replay closes the same sessions at the same point.  The stop time is the session's last activity, its energy is
what its readings showed, and meter_stop is null (no stop reading was reported).  A stop that arrives later finds
the session final and stays on `ocpp.frames` for the operator, like any late frame.

Bad input: a frame that is valid OCPP but lacks what a session needs (a StartTransaction result without the
request it answers, a missing transactionId) raises `SessionFrameError` naming the frame; the state is unchanged,
so the processor can dead-letter the frame and carry on.  An unparsable OCPP timestamp falls back to the time the
edge received the frame (`occurred_at`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from chargeverse.events import derive, derived_id
from streams.sessions import energy as E
from streams.sessions.meter import Sample, read_sample, register_in, verbatim

SOURCE = "streams.sessions"
STATE_VERSION = 1
#: stopped transactions remembered per charge point, so late or duplicate frames for them are recognised
CLOSED_KEPT = 64
EVENT_TYPES = ("SessionStarted", "SessionMeterSample", "SessionStopped")
#: the stop reason of a session the CSMS closed because the charger never will (not an OCPP value: ours)
ABANDONED = "Abandoned"
#: a session with no message for this long is abandoned at the charger's next frame (a weekend at a depot with
#: meter values switched off is the longest quiet session we have seen; settings.session_abandon_after_hours)
ABANDON_AFTER_S = 72 * 3600

Out = tuple[str, dict[str, Any]]
State = dict[str, Any]
_MILLI = Decimal("0.001")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SessionFrameError(ValueError):
    """A valid OCPP frame the session fold cannot use; the message names the frame and what is missing."""


def new_state() -> State:
    """The state of a charge point with no sessions.

    `open`: transaction id -> session; `aliases`: a second transaction id answered to a re-sent 1.6 start ->
    the first; `closed`: recently stopped transaction ids (and their aliases), oldest first."""
    return {"v": STATE_VERSION, "open": {}, "aliases": {}, "closed": []}


def session_id_for(charge_point_id: str, transaction_id: str | int) -> str:
    """The session id: deterministic in (charge point id, transaction id), so replays produce the same ids.

    Computed with chargeverse.events.derived_id (UUIDv5), as derived event ids are."""
    return derived_id(f"ocpp-session/{charge_point_id}", f"transaction/{transaction_id}")


# ---- time and numbers ------------------------------------------------------------------------------------------

def _us_of(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)


def _ts(text: Any, frame: Mapping[str, Any]) -> int:
    """An OCPP timestamp in microseconds since the epoch; the frame's receipt time when it does not parse."""
    if isinstance(text, str):
        try:
            return _us_of(datetime.fromisoformat(text.strip()))
        except ValueError:
            pass
    return _us_of(frame["occurred_at"])


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _num(d: Decimal | str | None) -> float | None:
    if d is None:
        return None
    return float(Decimal(d).quantize(_MILLI))


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return None
    return d if d.is_finite() and d >= 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _fingerprint(obj: Any) -> str:
    canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(canon.encode(), digest_size=6).hexdigest()


# ---- the working copy ------------------------------------------------------------------------------------------

class _Work:
    """Copy-on-write view of a state: apply() never mutates the state it was given."""

    def __init__(self, state: State) -> None:
        self.open: dict[str, dict[str, Any]] = dict(state["open"])
        self.aliases: dict[str, str] = dict(state["aliases"])
        self.closed: list[str] = list(state["closed"])
        self._touched: set[str] = set()

    def resolve(self, tx: str) -> str:
        return self.aliases.get(tx, tx)

    def touch(self, tx: str) -> dict[str, Any]:
        """The session of `tx`, copied once so it may be modified."""
        if tx not in self._touched:
            s = dict(self.open[tx])
            s["segments"] = [list(x) for x in s["segments"]]
            s["seen"] = list(s["seen"])
            s["seqs"] = [list(r) for r in s["seqs"]]
            self.open[tx] = s
            self._touched.add(tx)
        return self.open[tx]

    def add(self, session: dict[str, Any]) -> None:
        self.open[session["transaction_id"]] = session
        self._touched.add(session["transaction_id"])

    def close(self, tx: str) -> None:
        del self.open[tx]
        gone = [tx] + [a for a, target in self.aliases.items() if target == tx]
        for a in gone[1:]:
            del self.aliases[a]
        self.closed = (self.closed + gone)[-CLOSED_KEPT:]

    def touched_open(self) -> list[str]:
        """Open sessions this fold step copied (hence changed)."""
        return [tx for tx in self._touched if tx in self.open]

    def state(self) -> State:
        return {"v": STATE_VERSION, "open": self.open, "aliases": self.aliases, "closed": self.closed}


# ---- events ----------------------------------------------------------------------------------------------------

def _event(frame: Mapping[str, Any], s: Mapping[str, Any], tag: str, **payload: Any) -> dict[str, Any]:
    rec = derive(dict(frame), tag=f"session/{s['transaction_id']}/{tag}", source=SOURCE,
                 session_id=s["session_id"], charge_point_id=s["charge_point_id"],
                 transaction_id=s["transaction_id"], **payload)
    rec["correlation_id"] = s["session_id"]  # the conversation is the session; causation keeps the frame
    rec["raw"] = frame["raw"]
    return rec


def _started(frame: Mapping[str, Any], s: Mapping[str, Any], *, raw_request: str | None,
             reservation_id: int | None, remote_start_id: int | None, offline: bool) -> Out:
    return ("SessionStarted", _event(
        frame, s, "started", ocpp_version=s["ocpp_version"], evse_id=s["evse_id"], connector_id=s["connector_id"],
        id_token=s["id_token"], id_token_type=s["id_token_type"], authorization_status=s["authorization_status"],
        started_at=_dt(s["started_us"]), meter_start_wh=_num(s["meter_start_wh"]), reservation_id=reservation_id,
        remote_start_id=remote_start_id, trigger_reason=s["trigger_reason"], offline=offline,
        inferred_start=s["inferred_start"], raw_request=raw_request))


def _stopped(frame: Mapping[str, Any], s: Mapping[str, Any], *, stopped_us: int, meter_stop: Decimal | None,
             reason: str, rules: E.Rules) -> Out:
    start = s["start_reading"]
    return ("SessionStopped", _event(
        frame, s, "stopped", ocpp_version=s["ocpp_version"], evse_id=s["evse_id"], connector_id=s["connector_id"],
        started_at=_dt(s["started_us"]), stopped_at=_dt(stopped_us), meter_start_wh=_num(s["meter_start_wh"]),
        meter_stop_wh=_num(meter_stop), energy_wh=_num(E.energy_wh(s["segments"])), reason=reason,
        baseline_inferred=E.baseline_inferred(s["segments"], Decimal(start[1]) if start else None,
                                              start[0] if start else 0, rules),
        meter_segments=len(s["segments"]), id_token=s["id_token"], id_token_type=s["id_token_type"],
        authorization_status=s["authorization_status"], trigger_reason=s["trigger_reason"],
        inferred_start=s["inferred_start"]))


def _session(frame: Mapping[str, Any], tx: str, *, started_us: int, from_us: int, inferred: bool,
             evse_id: int | None = None, connector_id: int | None = None, id_token: str | None = None,
             id_token_type: str | None = None, authorization_status: str | None = None,
             trigger_reason: str | None = None) -> dict[str, Any]:
    cp = frame["charge_point_id"]
    return {
        "session_id": session_id_for(cp, tx), "transaction_id": tx, "charge_point_id": cp,
        "ocpp_version": frame["ocpp_version"], "evse_id": evse_id, "connector_id": connector_id,
        "id_token": id_token, "id_token_type": id_token_type, "authorization_status": authorization_status,
        "auth_seq": None, "started_us": started_us, "from_us": from_us, "meter_start_wh": None,
        "start_reading": None, "segments": [], "seen": [], "seqs": [], "last_seq": None, "charging_state": None,
        "trigger_reason": trigger_reason, "start_fp": None, "inferred_start": inferred,
        "last_us": _us_of(frame["occurred_at"]),
    }


def _set_start(s: dict[str, Any], t_us: int, wh: Decimal | None, rules: E.Rules) -> None:
    """Record the start reading of a session (1.6 meterStart, 2.0.1 Transaction.Begin) and count from it."""
    s["from_us"] = min(s["from_us"], t_us)
    if wh is None:
        return
    s["meter_start_wh"] = str(wh)
    s["start_reading"] = [t_us, str(wh)]
    s["segments"] = E.insert(s["segments"], t_us, wh, rules)


def _samples(w: _Work, frame: Mapping[str, Any], tx: str, elements: Iterable[Any], out: list[Out],
             rules: E.Rules, charging_state: str | None = None) -> bool:
    """Apply new meterValue elements to a session and emit a SessionMeterSample for each."""
    changed = False
    for i, el in enumerate(elements):
        if not isinstance(el, Mapping):
            continue
        fp = _fingerprint(el)
        if fp in w.open[tx]["seen"]:
            continue
        s = w.touch(tx)
        s["seen"].append(fp)
        changed = True
        sample: Sample = read_sample(el, s["ocpp_version"])
        at = _ts(el.get("timestamp"), frame)
        if sample.register_wh is not None and at >= s["from_us"]:
            s["segments"] = E.insert(s["segments"], at, sample.register_wh, rules)
        out.append(("SessionMeterSample", _event(
            frame, s, f"sample/{i}", at=_dt(at), energy_wh=_num(E.energy_wh(s["segments"])),
            register_wh=_num(sample.register_wh), power_w=_num(sample.power_w), current_a=_num(sample.current_a),
            soc_percent=_num(sample.soc_percent), voltage_v=_num(sample.voltage_v),
            charging_state=charging_state or s["charging_state"], context=sample.context,
            measurands=verbatim(sample.sampled))))
    return changed


def _call_payload(text: str, action: str, frame: Mapping[str, Any]) -> dict[str, Any]:
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise SessionFrameError(f"{_where(frame)}: the {action} request it answers is not JSON: {exc}") from exc
    if not (isinstance(msg, list) and len(msg) >= 4 and msg[0] == 2 and isinstance(msg[3], dict)):
        raise SessionFrameError(f"{_where(frame)}: `answers` is not a {action} CALL")
    return msg[3]


def _where(frame: Mapping[str, Any]) -> str:
    return (f"{frame.get('action')} {frame.get('direction')} frame {frame.get('message_id')!r} "
            f"of {frame.get('charge_point_id')} (event {frame.get('event_id')})")


# ---- abandoned sessions -----------------------------------------------------------------------------------------

def _last_activity(s: Mapping[str, Any]) -> int:
    """When the charger last said something about this session (receipt time; older states: its start)."""
    return int(s.get("last_us") or max(s["started_us"], s["from_us"]))


def _abandon(w: _Work, frame: Mapping[str, Any], out: list[Out], rules: E.Rules, victims: list[str]) -> bool:
    for tx in victims:
        s = w.touch(tx)
        out.append(_stopped(frame, s, stopped_us=max(_last_activity(s), s["started_us"]), meter_stop=None,
                            reason=ABANDONED, rules=rules))
        w.close(tx)
    return bool(victims)


def _abandon_on_connector(w: _Work, frame: Mapping[str, Any], out: list[Out], rules: E.Rules, new_tx: str,
                          *, connector: int | None = None, evse: int | None = None) -> None:
    """A new transaction on a connector (1.6) or EVSE (2.0.1) ends any other still open there."""
    if connector is None and evse is None:
        return
    victims = [tx for tx, s in w.open.items() if tx != new_tx and (
        (evse is not None and s["evse_id"] == evse) if s["ocpp_version"] != "ocpp1.6" or connector is None
        else s["connector_id"] == connector)]
    _abandon(w, frame, out, rules, victims)


def _abandon_stale(w: _Work, frame: Mapping[str, Any], out: list[Out], rules: E.Rules, after_s: float) -> bool:
    """Any frame of the charger closes its sessions that have been silent for longer than `after_s`."""
    if not w.open or after_s <= 0:
        return False
    now = _us_of(frame["occurred_at"])
    limit = now - int(after_s * 1_000_000)
    return _abandon(w, frame, out, rules, [tx for tx, s in w.open.items() if _last_activity(s) < limit])


# ---- OCPP 1.6 --------------------------------------------------------------------------------------------------

def _v16_start_result(w: _Work, frame: Mapping[str, Any], msg: list[Any], out: list[Out], rules: E.Rules) -> bool:
    if not frame.get("answers"):
        raise SessionFrameError(f"{_where(frame)}: a StartTransaction result without the request it answers")
    req = _call_payload(frame["answers"], "StartTransaction", frame)
    res = msg[2] if isinstance(msg[2], dict) else {}
    if res.get("transactionId") is None:
        raise SessionFrameError(f"{_where(frame)}: no transactionId in the StartTransaction result")
    tx = str(res["transactionId"])
    status = (res.get("idTagInfo") or {}).get("status")
    started = _ts(req.get("timestamp"), frame)
    meter_start = _dec(req.get("meterStart"))
    fp = _fingerprint(req)
    canonical = w.resolve(tx)
    if canonical in w.closed:
        return False
    if canonical in w.open:
        known = w.open[canonical]
        if known["start_fp"] is not None:
            return False  # this result again
        s = w.touch(canonical)  # opened by a later message: learn the start now (SessionStarted was sent)
        s.update(start_fp=fp, started_us=min(s["started_us"], started), id_token=req.get("idTag"),
                 authorization_status=status, connector_id=s["connector_id"] or _int(req.get("connectorId")))
        s["evse_id"] = s["evse_id"] or s["connector_id"]
        _set_start(s, started, meter_start, rules)
        return True
    for other in w.open.values():
        if other["start_fp"] == fp:  # the charger re-sent its start and got a second id: one session
            w.aliases[tx] = other["transaction_id"]
            return True
    connector = _int(req.get("connectorId"))
    _abandon_on_connector(w, frame, out, rules, tx, connector=connector)
    s = _session(frame, tx, started_us=started, from_us=started, inferred=False, evse_id=connector,
                 connector_id=connector, id_token=req.get("idTag"), authorization_status=status)
    s["start_fp"] = fp
    _set_start(s, started, meter_start, rules)
    w.add(s)
    out.append(_started(frame, s, raw_request=frame["answers"], reservation_id=_int(req.get("reservationId")),
                        remote_start_id=None, offline=False))
    return True


def _open_inferred(w: _Work, frame: Mapping[str, Any], tx: str, times: list[int], out: list[Out], *,
                   connector: int | None = None, id_token: str | None = None) -> None:
    """Open a session for a transaction whose start we never recorded, from a later message of it."""
    first = min(times) if times else _us_of(frame["occurred_at"])
    s = _session(frame, tx, started_us=first, from_us=first, inferred=True, evse_id=connector,
                 connector_id=connector, id_token=id_token)
    w.add(s)
    out.append(_started(frame, s, raw_request=None, reservation_id=None, remote_start_id=None, offline=False))


def _v16_meter_values(w: _Work, frame: Mapping[str, Any], msg: list[Any], out: list[Out], rules: E.Rules) -> bool:
    p = msg[3]
    if p.get("transactionId") is None:
        return False  # connector readings outside a transaction: not session data
    tx = w.resolve(str(p["transactionId"]))
    if tx in w.closed:
        return False
    elements = [el for el in p.get("meterValue") or [] if isinstance(el, Mapping)]
    opened = False
    if tx not in w.open:
        if not elements:
            return False
        _abandon_on_connector(w, frame, out, rules, tx, connector=_int(p.get("connectorId")))
        _open_inferred(w, frame, tx, [_ts(el.get("timestamp"), frame) for el in elements], out,
                       connector=_int(p.get("connectorId")))
        opened = True
    return _samples(w, frame, tx, elements, out, rules) or opened


def _v16_stop(w: _Work, frame: Mapping[str, Any], msg: list[Any], out: list[Out], rules: E.Rules) -> bool:
    p = msg[3]
    if p.get("transactionId") is None:
        raise SessionFrameError(f"{_where(frame)}: StopTransaction without a transactionId")
    tx = w.resolve(str(p["transactionId"]))
    if tx in w.closed:
        return False
    stopped = _ts(p.get("timestamp"), frame)
    elements = [el for el in p.get("transactionData") or [] if isinstance(el, Mapping)]
    if tx not in w.open:
        _open_inferred(w, frame, tx, [_ts(el.get("timestamp"), frame) for el in elements] + [stopped], out,
                       id_token=p.get("idTag"))
    _samples(w, frame, tx, elements, out, rules)
    s = w.touch(tx)
    meter_stop = _dec(p.get("meterStop"))
    if meter_stop is not None and stopped >= s["from_us"]:
        s["segments"] = E.insert(s["segments"], stopped, meter_stop, rules)
    if p.get("idTag"):
        s["id_token"] = p["idTag"]
    out.append(_stopped(frame, s, stopped_us=stopped, meter_stop=meter_stop, reason=p.get("reason") or "Local",
                        rules=rules))
    w.close(tx)
    return True


# ---- OCPP 2.0.1 ------------------------------------------------------------------------------------------------

def _seen_seq(ranges: list[list[int]], seq: int) -> bool:
    return any(lo <= seq <= hi for lo, hi in ranges)


def _add_seq(ranges: list[list[int]], seq: int) -> list[list[int]]:
    """Seen seqNos as sorted, merged [lo, hi] ranges: compact however long the session."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges + [[seq, seq]]):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def _first_register(elements: list[Mapping[str, Any]], frame: Mapping[str, Any], version: str,
                    context: str, earliest: bool) -> tuple[int, Decimal] | None:
    """(time, Wh) of the register with `context`, else the earliest (or latest) register reading."""
    tagged = [(el, register_in([el], version, context)) for el in elements]
    for el, wh in tagged:
        if wh is not None:
            return _ts(el.get("timestamp"), frame), wh
    readings = [(_ts(el.get("timestamp"), frame), read_sample(el, version).register_wh) for el in elements]
    readings = [(t, wh) for t, wh in readings if wh is not None]
    if not readings:
        return None
    return min(readings) if earliest else max(readings)


def _v201_event(w: _Work, frame: Mapping[str, Any], msg: list[Any], out: list[Out], rules: E.Rules) -> bool:
    p = msg[3]
    info = p.get("transactionInfo") or {}
    if info.get("transactionId") is None or _int(p.get("seqNo")) is None:
        raise SessionFrameError(f"{_where(frame)}: TransactionEvent without transactionId or seqNo")
    tx, seq, etype = str(info["transactionId"]), int(p["seqNo"]), p.get("eventType")
    if tx in w.closed:
        return False  # a stopped session is final
    if tx in w.open and _seen_seq(w.open[tx]["seqs"], seq):
        return False
    version = frame["ocpp_version"]
    at = _ts(p.get("timestamp"), frame)
    elements = [el for el in p.get("meterValue") or [] if isinstance(el, Mapping)]
    times = [at] + [_ts(el.get("timestamp"), frame) for el in elements]
    evse = p.get("evse") or {}
    token = p.get("idToken") or {}
    start = _first_register(elements, frame, version, "Transaction.Begin", True) if etype == "Started" else None
    if tx not in w.open:
        _abandon_on_connector(w, frame, out, rules, tx, evse=_int(evse.get("id")))
        s = _session(frame, tx, started_us=at, from_us=min(times), inferred=etype != "Started",
                     evse_id=_int(evse.get("id")), connector_id=_int(evse.get("connectorId")),
                     id_token=token.get("idToken"), id_token_type=token.get("type"),
                     trigger_reason=p.get("triggerReason"))
        if start is not None:
            _set_start(s, start[0], start[1], rules)
        w.add(s)
        out.append(_started(frame, s, raw_request=None, reservation_id=_int(p.get("reservationId")),
                            remote_start_id=_int(info.get("remoteStartId")), offline=bool(p.get("offline"))))
    else:
        s = w.touch(tx)
        if etype == "Started":  # the Started event arrived after a later one: learn the start now
            s["started_us"] = min(s["started_us"], at)
            s["from_us"] = min([s["from_us"]] + times)
            if start is not None and s["meter_start_wh"] is None:
                _set_start(s, start[0], start[1], rules)
    s = w.touch(tx)
    newest = s["last_seq"] is None or seq >= s["last_seq"]
    s["seqs"] = _add_seq(s["seqs"], seq)
    if newest:
        s["last_seq"] = seq
        s["trigger_reason"] = p.get("triggerReason") or s["trigger_reason"]
        if info.get("chargingState"):
            s["charging_state"] = info["chargingState"]
    if token.get("idToken") and (newest or s["id_token"] is None):
        s["id_token"], s["id_token_type"] = token["idToken"], token.get("type")
    if s["evse_id"] is None and evse.get("id") is not None:
        s["evse_id"], s["connector_id"] = _int(evse.get("id")), _int(evse.get("connectorId"))
    _samples(w, frame, tx, elements, out, rules, charging_state=info.get("chargingState"))
    if etype == "Ended":
        end = _first_register(elements, frame, version, "Transaction.End", False)
        out.append(_stopped(frame, w.open[tx], stopped_us=at, meter_stop=end[1] if end else None,
                            reason=info.get("stoppedReason") or "Local", rules=rules))
        w.close(tx)
    return True


def _v201_answer(w: _Work, frame: Mapping[str, Any], msg: list[Any], out: list[Out], rules: E.Rules) -> bool:
    res = msg[2] if isinstance(msg[2], dict) else {}
    status = (res.get("idTokenInfo") or {}).get("status")
    if status is None or not frame.get("answers"):
        return False
    req = _call_payload(frame["answers"], "TransactionEvent", frame)
    tx, seq = str((req.get("transactionInfo") or {}).get("transactionId")), _int(req.get("seqNo"))
    s = w.open.get(tx)
    if s is None or seq is None:
        return False
    if s["auth_seq"] is not None and (seq < s["auth_seq"] or (seq == s["auth_seq"]
                                                              and s["authorization_status"] == status)):
        return False
    s = w.touch(tx)
    s["authorization_status"], s["auth_seq"] = status, seq
    return True


# ---- the fold --------------------------------------------------------------------------------------------------

Handler = Callable[[_Work, Mapping[str, Any], list[Any], list[Out], E.Rules], bool]


def _handler(frame: Mapping[str, Any]) -> Handler | None:
    if "direction" not in frame or "raw" not in frame or not frame.get("valid"):
        return None  # OcppConnection events, invalid frames
    if frame.get("retransmission_of"):
        return None  # the edge answered a retransmitted CALL from memory: the original frame was folded
    kind = (frame["direction"], frame.get("message_type_id"), frame.get("action"))
    version = str(frame.get("ocpp_version") or "")
    if version.startswith("ocpp1.6"):
        return {("OUT", 3, "StartTransaction"): _v16_start_result,
                ("IN", 2, "MeterValues"): _v16_meter_values,
                ("IN", 2, "StopTransaction"): _v16_stop}.get(kind)  # type: ignore[return-value]
    if version.startswith("ocpp2"):
        return {("IN", 2, "TransactionEvent"): _v201_event,
                ("OUT", 3, "TransactionEvent"): _v201_answer}.get(kind)  # type: ignore[return-value]
    return None


def apply(state: State | None, frame: Mapping[str, Any], *,
          rules: E.Rules = E.DEFAULT_RULES, abandon_after_s: float = ABANDON_AFTER_S) -> tuple[State, list[Out]]:
    """Fold one `ocpp.frames` record (OcppFrame or OcppConnection) into a charge point's session state.

    Returns the new state (the given one, untouched, when nothing changed) and the `sessions` events to publish,
    in order, each keyed by its `session_id`.  Raises SessionFrameError for a frame it cannot use; the state
    passed in is never modified."""
    if state is None:
        state = new_state()
    if state.get("v") != STATE_VERSION:
        raise ValueError(f"session state version {state.get('v')!r}; this fold reads {STATE_VERSION}")
    w = _Work(state)
    out: list[Out] = []
    stale = (frame.get("direction") == "IN" and frame.get("valid", True) and frame.get("occurred_at") is not None
             and _abandon_stale(w, frame, out, rules, abandon_after_s))
    handler = _handler(frame)
    if handler is None:
        return (w.state() if stale else state), out
    try:
        msg = json.loads(frame["raw"])
    except ValueError:
        return state, []  # a frame marked valid always parses; nothing to learn from one that does not
    payload_at = 2 if frame["message_type_id"] == 3 else 3
    if not isinstance(msg, list) or len(msg) <= payload_at:
        raise SessionFrameError(f"{_where(frame)}: no payload object")
    if payload_at == 3 and frame.get("normalized"):  # a CALL accepted leniently: read it as accepted
        try:
            msg[3] = json.loads(frame["normalized"])
        except ValueError as exc:
            raise SessionFrameError(f"{_where(frame)}: `normalized` is not JSON: {exc}") from exc
    if not isinstance(msg[payload_at], dict):
        raise SessionFrameError(f"{_where(frame)}: no payload object")
    try:
        changed = handler(w, frame, msg, out, rules)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, SessionFrameError):
            raise
        raise SessionFrameError(f"{_where(frame)}: {type(exc).__name__}: {exc}") from exc
    if changed:
        now = _us_of(frame["occurred_at"])
        for tx in w.touched_open():  # the charger spoke about these sessions: they are alive
            s = w.open[tx]
            s["last_us"] = max(int(s.get("last_us") or 0), now)
    return (w.state() if changed or stale else state), out
