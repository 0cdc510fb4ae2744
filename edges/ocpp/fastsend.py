"""Writing an answer to a charger without websockets' per-message send coroutine, when nothing can go wrong by it.

Why: `Connection.send` (websockets 15+, asyncio implementation) enters an async context manager for every message:
it checks the connection's state, arms a close deadline when a close is expected, writes, then awaits flow
control.  The edge's answers are single small text frames on an open connection; for them all of that reduces to
framing the text (the Sans-I/O `protocol.send_text`) and writing the framed bytes to the transport
(`Connection.send_data`).  That coroutine machinery was a measurable share of the edge's main thread in
bench/ocpp_edge.py's throughput phase, where the main thread is the bottleneck.

Invariants:
- The fast path runs only when the protocol is OPEN, no fragmented message is being sent, and nothing is waiting in
  the transport's write buffer (so the drain `send` would do could not wait either); in every other case the
  library's own `send` runs, with its checks, its back-pressure and its ConnectionClosed.
- Order is kept: both paths frame and write synchronously before returning control to the loop.
- If websockets' connection does not have the shape this was written against, `fast_path_available()` is False
  and every answer goes through `send`.
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.connection import Connection
from websockets.protocol import State

_OPEN = State.OPEN


def fast_path_available() -> bool:
    """True when websockets' Connection has the members the fast path uses."""
    return callable(getattr(Connection, "send_data", None)) and hasattr(Connection, "send")


_AVAILABLE = fast_path_available()


async def send_text(ws: Any, text: str) -> None:
    """Send one text message on `ws` (a websockets asyncio Connection): framed and written at once when the
    connection is open and unburdened, else by `ws.send` (which may wait for the buffer to drain, or raise
    ConnectionClosed)."""
    if (_AVAILABLE and ws.protocol.state is _OPEN and ws.send_in_progress is None
            and not ws.transport.get_write_buffer_size()):
        ws.protocol.send_text(text.encode())
        ws.send_data()
        return
    await ws.send(text)
