"""Notification senders: how a NotificationRequested reaches a driver.  Pluggable by `CV_NOTIFICATIONS_CHANNEL`:

- `log` (default): one log line with the notification id, kind and account id -- never an address, a phone
  number, a token or the session's details (logs are read by many and kept long).
- `email`: SMTP via the standard library (host/port/STARTTLS/login from settings), to the account's email.
- `sms`: an HTTP webhook (httpx POST of {"to", "text"}) to an SMS gateway, to the account's phone.

A sender raises `SendError` with a reason that names no address or secret; the worker records it as
NotificationFailed.  `render()` (pure) writes the text a driver reads.
"""

from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from chargeverse.settings import Settings

log = logging.getLogger(__name__)


class SendError(Exception):
    """Delivery failed; the message is safe to record (no addresses, no secrets)."""


@dataclass(frozen=True)
class Notification:
    notification_id: str
    account_id: str
    kind: str
    station_id: str
    session_id: str | None
    data: dict[str, Any]

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> "Notification":
        try:
            data = json.loads(r.get("data") or "{}")
        except ValueError:
            data = {}
        return cls(r["notification_id"], r["account_id"], r["kind"], r["station_id"], r.get("session_id"),
                   data if isinstance(data, dict) else {})


@dataclass(frozen=True)
class Contact:
    email: str | None = None
    phone: str | None = None
    name: str | None = None


def render(n: Notification) -> tuple[str, str]:
    """(subject, text) of a notification."""
    if n.kind == "session_finished":
        kwh = n.data.get("energy_kwh")
        energy = f"{kwh} kWh" if kwh is not None else "your energy"
        return ("Charging finished", f"Your charging session at station {n.station_id} has finished: {energy} "
                                     "charged. The receipt follows in the app.")
    if n.kind == "charger_fault":
        code = n.data.get("error_code") or "unknown error"
        return ("Charger fault", f"The charger at station {n.station_id} reported a fault ({code}) during your "
                                 "session. Charging may have stopped; check the app.")
    return ("Notice", f"News about station {n.station_id}.")


class Sender(Protocol):
    channel: str
    needs_contact: bool

    def send(self, n: Notification, contact: Contact) -> None: ...


class LogSender:
    channel = "log"
    needs_contact = False

    def send(self, n: Notification, contact: Contact) -> None:
        log.info("notification %s kind=%s account=%s", n.notification_id, n.kind, n.account_id)


class EmailSender:
    channel = "email"
    needs_contact = True

    def __init__(self, host: str, port: int, sender: str, user: str = "", password: str = "",
                 starttls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout

    def send(self, n: Notification, contact: Contact) -> None:
        if not contact.email:
            raise SendError("the account has no email address")
        subject, text = render(n)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, contact.email, subject
        msg.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP delivery failed: {type(exc).__name__}") from None


class SmsSender:
    channel = "sms"
    needs_contact = True

    def __init__(self, webhook_url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url, self.timeout, self.transport = webhook_url, timeout, transport

    def send(self, n: Notification, contact: Contact) -> None:
        if not contact.phone:
            raise SendError("the account has no phone number")
        _, text = render(n)
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                r = client.post(self.url, json={"to": contact.phone, "text": text,
                                                "reference": n.notification_id})
        except httpx.HTTPError as exc:
            raise SendError(f"SMS webhook unreachable: {type(exc).__name__}") from None
        if r.status_code >= 300:
            raise SendError(f"SMS webhook answered HTTP {r.status_code}")


def make_sender(s: Settings) -> Sender:
    channel = s.notifications_channel
    if channel == "log":
        return LogSender()
    if channel == "email":
        return EmailSender(s.notifications_smtp_host, s.notifications_smtp_port, s.notifications_email_from,
                           s.notifications_smtp_user, s.notifications_smtp_password.get_secret_value(),
                           s.notifications_smtp_starttls)
    if channel == "sms":
        url = s.notifications_sms_webhook_url.get_secret_value()
        if not url:
            raise ValueError("CV_NOTIFICATIONS_CHANNEL=sms needs CV_NOTIFICATIONS_SMS_WEBHOOK_URL")
        return SmsSender(url)
    raise ValueError(f"CV_NOTIFICATIONS_CHANNEL={channel!r}: choose log, email or sms")
