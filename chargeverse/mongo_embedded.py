"""Run the embedded Mongo wire-protocol server (nx-27017) with transactions that are actually isolated.

Why this exists: nx-27017 0.8 keeps every client's transaction on one shared SQLite connection.  A second
client's transaction becomes a SAVEPOINT inside the first one, so whichever commits first also commits (or rolls
back) the other's half-done writes, and the second then fails with "no such savepoint".  Under the platform's
steady load (several projections committing documents together with their offsets) that broke atomicity and, in
CI, outlasted any client-side retry.

The fix is a gate in front of the server's command handler: while one session has a transaction open, every
command from any other session waits until that transaction commits or aborts.  Transactions on the embedded
stack are therefore serialised (they are short: one projection batch).  A waiter gives up after
`WAIT_SECONDS` with a `TransientTransactionError`, which drivers and `projections.mongo_tx` retry; a transaction
whose client has gone quiet for `IDLE_ABORT_SECONDS` (a crashed worker) is aborted so it cannot hold the gate.

A real MongoDB (`CV_MONGO_URL`) does not go through this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from typing import Any, Callable

from nx_27017 import server as nx_server
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.wire_protocol import _extract_session_id

WAIT_SECONDS = 10.0
IDLE_ABORT_SECONDS = 30.0
# Waiting commands hold a thread each; the server's default pool (cpu + 4) would let a handful of waiters starve
# the gate owner's own next command.
THREADS = 128


def _command_doc(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        return {}
    for kind, data in msg.get("sections", ()):
        if kind == "body" and isinstance(data, dict):
            return data
    return {}


def _session_of(doc: dict[str, Any]) -> str | None:
    lsid = doc.get("lsid")
    try:
        return _extract_session_id(lsid) if lsid else None
    except Exception:  # noqa: BLE001 - an odd lsid is the handler's business, not the gate's
        return None


class TransactionGate:
    """At most one open transaction at a time; other sessions' commands wait for it to finish."""

    def __init__(self, handler: NeoSQLiteHandler) -> None:
        self.handler = handler
        self.cond = threading.Condition()
        self.owner: str | None = None
        self.owner_busy = 0  # the owner's commands in flight: its transaction may be starting right now
        self.last_seen = 0.0

    def _owner_still_open(self) -> bool:
        return bool(self.owner and (self.owner_busy or self.handler._tx_sessions(self.owner)))

    def _abort_idle_owner(self) -> None:
        """Abort the open transaction of a client that stopped talking (called with `cond` held)."""
        owner = self.owner
        for sess in self.handler._tx_sessions(owner) if owner else ():
            try:
                sess.abort_transaction()
            except Exception:  # noqa: BLE001 - already gone is as good as aborted
                pass
        self.owner = None
        self.owner_busy = 0
        self.cond.notify_all()

    def enter(self, sid: str | None, starts: bool) -> bool:
        """Wait for our turn; True if the caller may run, False if it waited too long."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self.cond:
            while self.owner is not None and self.owner != sid:
                if not self._owner_still_open():
                    self.owner = None
                    break
                now = time.monotonic()
                if not self.owner_busy and now - self.last_seen > IDLE_ABORT_SECONDS:
                    self._abort_idle_owner()
                    break
                if now >= deadline:
                    return False
                self.cond.wait(min(0.5, deadline - now))
            if starts and sid is not None and self.owner is None:
                self.owner = sid
            if self.owner is not None and self.owner == sid:
                self.owner_busy += 1
                self.last_seen = time.monotonic()
            return True

    def leave(self, sid: str | None) -> None:
        with self.cond:
            if self.owner is None or self.owner != sid:
                return
            self.owner_busy = max(0, self.owner_busy - 1)
            self.last_seen = time.monotonic()
            if not self._owner_still_open():
                self.owner = None
                self.cond.notify_all()

    def wrap(self, method: Callable[..., tuple[int, dict[str, Any]]]) -> Callable[..., tuple[int, dict[str, Any]]]:
        @functools.wraps(method)
        def gated(msg: dict[str, Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
            doc = _command_doc(msg)
            sid = _session_of(doc)
            if not self.enter(sid, bool(doc.get("startTransaction"))):
                return msg.get("request_id", 0), {
                    "ok": 0, "code": 112, "codeName": "WriteConflict",
                    "errmsg": "another transaction is open on the embedded store; retry",
                    "errorLabels": ["TransientTransactionError"]}
            try:
                return method(msg, *args, **kwargs)
            finally:
                self.leave(sid)

        return gated


def install() -> None:
    """Patch nx-27017 so every handler it creates is gated and its thread pool is large enough to wait in."""
    original_init = NeoSQLiteHandler.__init__

    def init(self: NeoSQLiteHandler, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        gate = TransactionGate(self)
        self.handle_command = gate.wrap(self.handle_command)  # type: ignore[method-assign]
        self.handle_insert = gate.wrap(self.handle_insert)  # type: ignore[method-assign]

    NeoSQLiteHandler.__init__ = init  # type: ignore[method-assign]

    original_run = nx_server.run_server

    async def run_server(host: str, port: int, handler: NeoSQLiteHandler) -> None:
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="nx"))
        await original_run(host, port, handler)

    nx_server.run_server = run_server  # type: ignore[assignment]


def main() -> None:
    install()
    from nx_27017.nx_27017 import main as nx_main

    nx_main()


if __name__ == "__main__":
    main()
