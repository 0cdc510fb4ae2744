"""The payment provider, synchronously, for a fold that runs inside `StatefulProcessor.apply` (a worker thread).

Why a loop of its own: the providers are async (httpx for Stripe), `apply` is synchronous and may be called from
a thread of a running event loop (the Faust agents) or from plain code (replay, tests).  Every call is run on
one private event loop in a daemon thread, so an httpx client always lives on the loop that created it.

Retryable failures (`ProviderUnavailable`: timeouts, 429, 5xx) are retried a few times with the SAME
idempotency key (a retry can never charge twice); what still fails is raised to the fold, which records it as a
FAILED payment event for review.  Nothing here logs a request, a key or a secret.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from ledger.billing.payments import (Capture, Hold, PaymentError, PaymentProvider, ProviderUnavailable, Refund,
                                     Release)

T = TypeVar("T")


class SyncPayments:
    """`streams.payments.fold.Payments` over an async `PaymentProvider`."""

    def __init__(self, provider: PaymentProvider, *, retries: int = 2, backoff_seconds: float = 0.5,
                 timeout_seconds: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.provider = provider
        self.name = provider.name
        self._retries, self._backoff, self._timeout, self._sleep = retries, backoff_seconds, timeout_seconds, sleep
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"payments-{self.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"SyncPayments({self.provider!r})"  # the providers' reprs never show a secret

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            fut = asyncio.run_coroutine_threadsafe(make(), self._loop)  # type: ignore[arg-type]
            try:
                return fut.result(self._timeout)
            except concurrent.futures.TimeoutError:
                fut.cancel()
                err: PaymentError = ProviderUnavailable(f"{self.name}: no answer within {self._timeout:g}s")
            except PaymentError as exc:
                err = exc
            if not err.retryable or attempt >= self._retries:
                raise err
            self._sleep(self._backoff * (2 ** attempt))
            attempt += 1

    def authorize_hold(self, amount: Decimal, currency: str, payment_method_ref: str, idempotency_key: str, *,
                       metadata: Mapping[str, str] | None = None) -> Hold:
        return self._call(lambda: self.provider.authorize_hold(amount, currency, payment_method_ref, idempotency_key,
                                                               metadata=metadata))

    def capture(self, hold_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Capture:
        return self._call(lambda: self.provider.capture(hold_id, amount, currency, idempotency_key=idempotency_key))

    def release(self, hold_id: str, *, idempotency_key: str) -> Release:
        return self._call(lambda: self.provider.release(hold_id, idempotency_key=idempotency_key))

    def refund(self, charge_id: str, amount: Decimal, currency: str, *, idempotency_key: str) -> Refund:
        return self._call(lambda: self.provider.refund(charge_id, amount, currency, idempotency_key=idempotency_key))

    def close(self) -> None:
        closer: Any = getattr(self.provider, "aclose", None)
        if closer is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(closer(), self._loop).result(10)
            except Exception:  # noqa: BLE001 - closing a client must not hide the reason we stop
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()
