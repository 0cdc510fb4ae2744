"""The notifications decisions (streams/notifications/fold.py) and senders (senders.py): who is told what, once,
and what a sender may reveal."""

from __future__ import annotations

import json
import logging
import socket
from datetime import datetime, timezone

import httpx
import pytest

from projections.base import SourcedEvent
from streams.notifications.fold import fold, key_of
from streams.notifications.senders import (Contact, EmailSender, LogSender, Notification, SendError, SmsSender,
                                           render)
from streams.notifications.worker import outcome_record

from datetime import timedelta

T = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
ACCOUNTS = {"TOKEN-1": "acc-1", "TOKEN-2": "acc-2"}
account_of = ACCOUNTS.get


def ev(etype: str, offset: int, **r: object) -> SourcedEvent:
    """An event received by the edge `offset` minutes after T (times decide which fault belongs to a session)."""
    rec = {"event_id": f"e-{etype}-{offset}", "occurred_at": T + timedelta(minutes=offset), "correlation_id": "c",
           **r}
    return SourcedEvent("sessions" if etype.startswith("Session") else "stations", 0, offset, etype, rec)


def started(sid: str, token: str | None, connector: int | None = 1, off: int = 1) -> SourcedEvent:
    return ev("SessionStarted", off, session_id=sid, charge_point_id="CP1", connector_id=connector, id_token=token)


def stopped(sid: str, token: str | None, off: int = 9) -> SourcedEvent:
    return ev("SessionStopped", off, session_id=sid, charge_point_id="CP1", connector_id=1, id_token=token,
              energy_wh=12345.0, started_at=T, stopped_at=T, reason="Local")


def fault(connector: int, off: int = 5, status: str = "Faulted") -> SourcedEvent:
    return ev("ConnectorStatusChanged", off, station_id="CP1", connector_id=connector, status=status,
              error_code="GroundFailure")


def run(events: list[SourcedEvent]) -> tuple[dict | None, list]:
    state, outs = None, []
    for e in events:
        state, o = fold(state, e, account_of)
        outs += o
    return state, outs


def test_a_finished_session_notifies_its_account_once_with_the_energy() -> None:
    state, outs = run([started("s1", "TOKEN-1"), stopped("s1", "TOKEN-1")])
    assert state is not None and state["active"] == {}
    assert len(outs) == 1
    assert fold(state, stopped("s1", "TOKEN-1"), account_of)[1] == []  # a repeated stop is told once
    topic, key, etype, rec = outs[0]
    assert (topic, key, etype) == ("notifications", "acc-1", "NotificationRequested")
    assert rec["kind"] == "session_finished" and rec["session_id"] == "s1" and rec["account_id"] == "acc-1"
    assert json.loads(rec["data"])["energy_kwh"] == 12.345
    assert rec["notification_id"] == rec["event_id"]
    # re-processing the same stop derives the same notification id (sinks drop the copy)
    assert run([started("s1", "TOKEN-1"), stopped("s1", "TOKEN-1")])[1][0][3]["event_id"] == rec["event_id"]


def test_a_fault_during_a_session_notifies_its_driver_once() -> None:
    _, outs = run([started("s1", "TOKEN-1", 1), started("s2", "TOKEN-2", 2, off=2), fault(1, 5), fault(1, 6)])
    assert [(o[1], o[3]["kind"], o[3]["session_id"]) for o in outs] == [("acc-1", "charger_fault", "s1")]
    assert json.loads(outs[0][3]["data"])["error_code"] == "GroundFailure"


def test_a_fault_arriving_before_its_session_start_or_after_its_stop_still_reaches_the_driver() -> None:
    # the stations processor is usually faster: the fault (minute 5) is folded before the start (minute 1)
    _, outs = run([fault(1, 5), started("s1", "TOKEN-1", 1, off=1), stopped("s1", "TOKEN-1", off=9)])
    assert [o[3]["kind"] for o in outs] == ["charger_fault", "session_finished"]
    _, outs = run([started("s1", "TOKEN-1", 1, off=1), stopped("s1", "TOKEN-1", off=9), fault(1, 5)])
    assert [o[3]["kind"] for o in outs] == ["session_finished", "charger_fault"]
    # same notification id whichever order: the fault's event and the session decide it
    a = run([fault(1, 5), started("s1", "TOKEN-1", 1, off=1)])[1][0][3]["event_id"]
    b = run([started("s1", "TOKEN-1", 1, off=1), fault(1, 5)])[1][0][3]["event_id"]
    assert a == b


def test_a_fault_outside_the_sessions_time_is_not_the_drivers() -> None:
    _, outs = run([fault(1, 0), started("s1", "TOKEN-1", 1, off=1), stopped("s1", "TOKEN-1", off=9), fault(1, 12)])
    assert [o[3]["kind"] for o in outs] == ["session_finished"]


def test_a_whole_charger_fault_reaches_every_running_session() -> None:
    _, outs = run([started("s1", "TOKEN-1", 1), started("s2", "TOKEN-2", 2, off=2), fault(0)])
    assert sorted(o[1] for o in outs) == ["acc-1", "acc-2"]


def test_no_notification_without_a_session_an_account_or_a_fault() -> None:
    assert run([fault(1)])[1] == []                                            # nobody charging
    assert run([started("s1", "UNKNOWN"), fault(1), stopped("s1", "UNKNOWN")])[1] == []  # anonymous card
    assert run([started("s1", "TOKEN-1"), fault(1, status="Unavailable")])[1] == []
    assert [o[3]["kind"] for o in run([started("s1", "TOKEN-1"), stopped("s1", "TOKEN-1"), fault(1, off=10)])[1]] \
        == ["session_finished"]  # the fault after the stop is not the driver's business


def test_other_events_leave_the_state_alone_and_keys_are_stations() -> None:
    state, _ = run([started("s1", "TOKEN-1")])
    assert fold(state, ev("StationHeartbeat", 3, station_id="CP1"), account_of) == (state, [])
    assert key_of(started("s1", "T")) == "CP1" and key_of(fault(1)) == "CP1"


N = Notification("n-1", "acc-1", "session_finished", "CP1", "s1", {"energy_kwh": 12.3})


def test_texts_name_the_station_and_the_facts() -> None:
    assert "CP1" in render(N)[1] and "12.3 kWh" in render(N)[1]
    assert "GroundFailure" in render(Notification("n", "a", "charger_fault", "CP1", "s", {"error_code":
                                                                                            "GroundFailure"}))[1]


def test_the_log_sender_logs_the_account_id_and_nothing_personal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        LogSender().send(N, Contact(email="someone@example.org", phone="+31600000000", name="Someone"))
    text = caplog.text
    assert "acc-1" in text and "n-1" in text
    assert "example.org" not in text and "+316" not in text and "Someone" not in text


def test_the_sms_sender_posts_to_the_webhook_and_reports_failures_without_the_number() -> None:
    seen: list[dict] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    SmsSender("http://sms.invalid/send", transport=httpx.MockTransport(ok)).send(N, Contact(phone="+31611111111"))
    assert seen[0]["to"] == "+31611111111" and "CP1" in seen[0]["text"]
    with pytest.raises(SendError) as exc:
        SmsSender("http://sms.invalid/send", transport=httpx.MockTransport(lambda r: httpx.Response(503))).send(
            N, Contact(phone="+31611111111"))
    assert "503" in str(exc.value) and "+316" not in str(exc.value)
    with pytest.raises(SendError):
        SmsSender("http://sms.invalid/send").send(N, Contact())


def test_the_email_sender_fails_cleanly_when_smtp_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(SendError) as exc:
        EmailSender("127.0.0.1", port, "cv@localhost", timeout=2).send(N, Contact(email="someone@example.org"))
    assert "example.org" not in str(exc.value)
    with pytest.raises(SendError):
        EmailSender("127.0.0.1", port, "cv@localhost").send(N, Contact())


def test_outcomes_have_derived_ids_and_carry_the_reason_only_when_failed() -> None:
    et, rec = outcome_record(N, "log", None)
    assert et == "NotificationSent" and "error" not in rec and outcome_record(N, "log", None)[1]["event_id"] == \
        rec["event_id"]
    et, rec = outcome_record(N, "sms", "SMS webhook answered HTTP 503")
    assert et == "NotificationFailed" and rec["error"] == "SMS webhook answered HTTP 503"


def test_every_record_built_here_fits_its_avro_contract() -> None:
    from chargeverse.avro import default_codec

    codec = default_codec()
    _, outs = run([started("s1", "TOKEN-1"), fault(1), stopped("s1", "TOKEN-1")])
    records = [("NotificationRequested", o[3]) for o in outs] + [outcome_record(N, "log", None),
                                                                 outcome_record(N, "email", "x")]
    for etype, rec in records:
        assert codec.decode(codec.encode(etype, rec))[0] == etype
