"""Per-connection state of the OCPP edge, pure (no I/O): what one charger's socket knows about itself.

A `ChargerSession` is created at the handshake and lives as long as the socket.  It holds what the answers and
the (later) outbound command path need: the negotiated version, the security profile the charger really
connected with, its vendor/model (from the station projection at the handshake, then from its BootNotification),
the registration status it was told, its leniency rules, its rate limiter, the memory of recent answers, and the
CALLs we sent that await a result (`pending`, filled by the commands path, which is not built yet).

Invariants:
- a retransmitted CALL (same message id, same action and payload) on the same connection is answered with the
  identical text, without re-processing (`AnswerMemory`).  The memory dies with the socket on purpose: chargers
  that number their messages restart at 1 after a reboot, and a fresh BootNotification must never get a stale
  answer (its currentTime sets the charger's clock);
- the token bucket admits at most `burst` CALLs at once and `rate` per second sustained; a refused CALL is
  answered and recorded, and the socket keeps serving.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from edges.ocpp.versions import Version


class TokenBucket:
    """Classic token bucket; time is passed in (monotonic seconds) so it is testable without sleeping."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float) -> bool:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next CALL would be admitted."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass(slots=True)
class Remembered:
    action: str
    payload: Any
    reply: str
    in_event_id: str
    out_event_id: str | None


class AnswerMemory:
    """The last `size` answers on one connection, by message id."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._by_id: OrderedDict[str, Remembered] = OrderedDict()

    def remember(self, message_id: str, entry: Remembered) -> None:
        self._by_id[message_id] = entry
        self._by_id.move_to_end(message_id)
        while len(self._by_id) > self.size:
            self._by_id.popitem(last=False)

    def recall(self, message_id: str, action: str | None, payload: Any) -> Remembered | None:
        """The earlier answer when this CALL is a retransmission (same id, same action, same payload)."""
        entry = self._by_id.get(message_id)
        if entry is not None and entry.action == action and entry.payload == payload:
            return entry
        return None

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class PendingCall:
    """A CALL we sent to the charger, awaiting its CALLRESULT/CALLERROR (used by the commands path)."""

    action: str
    raw: str
    event_id: str
    future: asyncio.Future[Any] | None = None


@dataclass
class ChargerSession:
    charge_point_id: str
    connection_id: str
    version: Version
    security_profile: int
    bucket: TokenBucket
    memory: AnswerMemory
    registration_status: str = "Accepted"
    vendor: str | None = None
    model: str | None = None
    rules: frozenset[str] = frozenset()
    #: the status our last BootNotification answer on this socket gave (None: no boot on this socket)
    boot_status: str | None = None
    pending: dict[str, PendingCall] = field(default_factory=dict)
    #: actions the CSMS asked for with TriggerMessage while not Accepted (commands path; always empty for now)
    triggered: set[str] = field(default_factory=set)
    #: writes this connection's OcppFrame events (edges/ocpp/wire.py); None: the platform codec does
    writer: Any = None
