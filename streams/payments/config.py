"""Settings of the payments worker, read from `CV_PAYMENTS_*` (and the local stack's env file).

Kept beside the worker until chargeverse/settings.py absorbs them (the fields below, prefixed `payments_`, are
the proposed additions there), as edges/ocpi/config.py does for OCPI.

- `provider`: `local` (default; the in-memory LocalProvider: dev, demo, tests), `stripe`, or `none` (no card
  payments at all: the worker passes every event over; drivers' receivables are settled by invoice);
- `stripe_api_key`: the Stripe secret or restricted key (sk_... / rk_...); a SecretStr, never logged, never in
  a repr or an error message;
- `stripe_base_url`: Stripe, or a Stripe-compatible server;
- `hold_amount`: the pre-authorisation at a session's start, in the tariff's currency (a Decimal string);
- `default_currency`: when the station has no tariff at the start;
- `retries` / `timeout_seconds`: provider calls that time out or are refused as unavailable are retried with the
  same idempotency key, then recorded as FAILED (retryable) for review.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeverse.settings import _stack_env_file
from ledger.billing.payments import LocalProvider, PaymentProvider, StripeCompatibleProvider


class PaymentSettings(BaseSettings):
    """Field `x` is read from `CV_PAYMENTS_X`."""

    model_config = SettingsConfigDict(env_prefix="CV_PAYMENTS_", env_file=None, extra="ignore")

    provider: str = "local"
    stripe_api_key: SecretStr = SecretStr("")
    stripe_base_url: str = "https://api.stripe.com"
    stripe_version: str | None = None
    hold_amount: Decimal = Decimal("50.00")
    default_currency: str = "EUR"
    retries: int = 2
    timeout_seconds: float = 20.0

    @field_validator("provider")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ("local", "stripe", "none"):
            raise ValueError("CV_PAYMENTS_PROVIDER is 'local', 'stripe' or 'none'")
        return v

    @field_validator("hold_amount")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("CV_PAYMENTS_HOLD_AMOUNT must be positive")
        return v


def get_payment_settings() -> PaymentSettings:
    env_file = _stack_env_file()
    return PaymentSettings(_env_file=env_file if env_file.exists() else None)  # type: ignore[call-arg]


def make_provider(s: PaymentSettings) -> PaymentProvider:
    """The configured provider.  Stripe without a key is a configuration error, said without echoing anything."""
    if s.provider == "stripe":
        key = s.stripe_api_key.get_secret_value()
        if not key:
            raise ValueError("CV_PAYMENTS_PROVIDER=stripe needs CV_PAYMENTS_STRIPE_API_KEY")
        return StripeCompatibleProvider(key, base_url=s.stripe_base_url, timeout=s.timeout_seconds,
                                        stripe_version=s.stripe_version)
    return LocalProvider()
