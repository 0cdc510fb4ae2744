"""One Mongo transaction, retried when the server says it was a transient conflict.

Why: our Mongo projections write documents and their offsets in one transaction.  Two of them committing at the
same moment can conflict (MongoDB labels that TransientTransactionError; the embedded nx-27017 answers "no such
savepoint"), and the right answer to a conflict is to run the whole transaction again from the start, not to fail
the batch.  The transaction body must therefore be a function of its session that can run more than once.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from pymongo.errors import OperationFailure

T = TypeVar("T")
ATTEMPTS = 12


def transient(exc: OperationFailure) -> bool:
    return exc.has_error_label("TransientTransactionError") or "savepoint" in str(exc).lower()


def in_transaction(client: Any, body: Callable[[Any], T]) -> T:
    """body(session) inside a transaction, committed; re-run from scratch on a transient conflict."""
    for attempt in range(ATTEMPTS):
        try:
            with client.start_session() as s, s.start_transaction():
                return body(s)
        except OperationFailure as exc:
            if attempt == ATTEMPTS - 1 or not transient(exc):
                raise
            time.sleep(min(1.0, 0.02 * 2 ** attempt))
    raise AssertionError("unreachable")
