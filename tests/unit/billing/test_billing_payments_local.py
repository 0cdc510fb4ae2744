"""LocalProvider: hold at start, capture at CDR, release, refund; declines, expiry, idempotency; no card data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ledger.billing.money import NotRepresentable
from ledger.billing.payments import (
    ActionRequired, AmountAboveHold, HoldExpired, HoldStatus, IdempotencyConflict, InvalidHoldState,
    InvalidPaymentMethod, LocalProvider, PaymentDeclined, PaymentProvider, RefundExceedsCharge, UnknownHold,
    check_opaque_ref, looks_like_card_number,
)

D = Decimal


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(clock: Clock) -> LocalProvider:
    return LocalProvider(clock=clock, limits={"pm_small": D("20.00")})


def test_it_is_a_payment_provider(provider: LocalProvider) -> None:
    assert isinstance(provider, PaymentProvider)


async def test_hold_capture_less_than_the_hold_releases_the_rest_then_refund(provider: LocalProvider) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "start/s-1")
    assert hold.status is HoldStatus.AUTHORISED and hold.amount == D("30.00") and hold.hold_id.startswith("hold_")
    cap = await provider.capture(hold.hold_id, D("24.20"), "EUR", idempotency_key="cdr/s-1")
    assert (cap.amount, cap.released, cap.hold_id) == (D("24.20"), D("5.80"), hold.hold_id)
    assert provider.hold(hold.hold_id).status is HoldStatus.CAPTURED
    r1 = await provider.refund(cap.charge_id, D("4.20"), "EUR", idempotency_key="refund/1")
    assert (r1.amount, r1.status) == (D("4.20"), "succeeded")
    with pytest.raises(RefundExceedsCharge):
        await provider.refund(cap.charge_id, D("20.01"), "EUR", idempotency_key="refund/2")
    await provider.refund(cap.charge_id, D("20.00"), "EUR", idempotency_key="refund/3")


async def test_capture_above_the_hold_and_twice_are_refused(provider: LocalProvider) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "k1")
    with pytest.raises(AmountAboveHold):
        await provider.capture(hold.hold_id, D("30.01"), "EUR", idempotency_key="c1")
    await provider.capture(hold.hold_id, D("30.00"), "EUR", idempotency_key="c2")
    with pytest.raises(InvalidHoldState):
        await provider.capture(hold.hold_id, D("1.00"), "EUR", idempotency_key="c3")
    with pytest.raises(InvalidHoldState):
        await provider.release(hold.hold_id, idempotency_key="r1")


async def test_release_frees_the_whole_hold_once(provider: LocalProvider) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "k1")
    rel = await provider.release(hold.hold_id, idempotency_key="r1")
    assert rel.amount == D("30.00") and provider.hold(hold.hold_id).status is HoldStatus.RELEASED
    with pytest.raises(InvalidHoldState):
        await provider.capture(hold.hold_id, D("1.00"), "EUR", idempotency_key="c1")


async def test_holds_expire_by_the_clock(provider: LocalProvider, clock: Clock) -> None:
    hold = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "k1")
    clock.now += timedelta(days=7)
    with pytest.raises(HoldExpired) as e:
        await provider.capture(hold.hold_id, D("10.00"), "EUR", idempotency_key="c1")
    assert e.value.hold_id == hold.hold_id and not e.value.retryable


@pytest.mark.parametrize("ref, code", [("pm_decline_generic", "card_declined"),
                                       ("pm_insufficient_funds", "insufficient_funds")])
async def test_declines_carry_the_decline_code(provider: LocalProvider, ref: str, code: str) -> None:
    with pytest.raises(PaymentDeclined) as e:
        await provider.authorize_hold(D("30.00"), "EUR", ref, "k1")
    assert e.value.provider_code == code and e.value.code == "declined"


async def test_a_limit_declines_larger_holds(provider: LocalProvider) -> None:
    await provider.authorize_hold(D("20.00"), "EUR", "pm_small", "k1")
    with pytest.raises(PaymentDeclined):
        await provider.authorize_hold(D("20.01"), "EUR", "pm_small", "k2")


async def test_sca_is_action_required(provider: LocalProvider) -> None:
    with pytest.raises(ActionRequired):
        await provider.authorize_hold(D("30.00"), "EUR", "pm_sca_required", "k1")


async def test_same_key_same_request_replays_the_result_different_request_conflicts(provider: LocalProvider) -> None:
    a = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "start/s-1")
    b = await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "start/s-1")
    assert a == b
    with pytest.raises(IdempotencyConflict):
        await provider.authorize_hold(D("31.00"), "EUR", "pm_visa", "start/s-1")
    cap1 = await provider.capture(a.hold_id, D("10.00"), "EUR", idempotency_key="cdr/s-1")
    cap2 = await provider.capture(a.hold_id, D("10.00"), "EUR", idempotency_key="cdr/s-1")
    assert cap1 == cap2  # a redelivered CDR does not capture twice


async def test_a_replayed_decline_stays_a_decline(provider: LocalProvider) -> None:
    for _ in range(2):
        with pytest.raises(PaymentDeclined):
            await provider.authorize_hold(D("30.00"), "EUR", "pm_decline_x", "same-key")


async def test_unknown_holds_and_charges(provider: LocalProvider) -> None:
    with pytest.raises(UnknownHold):
        await provider.capture("hold_nope", D("1.00"), "EUR", idempotency_key="k")
    with pytest.raises(UnknownHold):
        await provider.refund("ch_nope", D("1.00"), "EUR", idempotency_key="k2")


async def test_amounts_must_be_positive_and_exact_in_minor_units(provider: LocalProvider) -> None:
    with pytest.raises(NotRepresentable):
        await provider.authorize_hold(D("30.005"), "EUR", "pm_visa", "k1")
    with pytest.raises(ValueError):
        await provider.authorize_hold(D("0"), "EUR", "pm_visa", "k2")
    with pytest.raises(ValueError):
        await provider.authorize_hold(30.0, "EUR", "pm_visa", "k3")  # type: ignore[arg-type]


@pytest.mark.parametrize("ref", ["4242424242424242", "pm_4242424242424242", "4242 4242 4242 4242", "card_visa", ""])
async def test_card_numbers_and_non_opaque_refs_are_refused_without_being_echoed(provider: LocalProvider,
                                                                                 ref: str) -> None:
    with pytest.raises(InvalidPaymentMethod) as e:
        await provider.authorize_hold(D("30.00"), "EUR", ref, "k1")
    assert "4242" not in str(e.value)


async def test_card_numbers_in_metadata_are_refused(provider: LocalProvider) -> None:
    with pytest.raises(InvalidPaymentMethod):
        await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "k1", metadata={"note": "4000 0566 5566 5556"})
    await provider.authorize_hold(D("30.00"), "EUR", "pm_visa", "k2", metadata={"session_id": "s-1"})


def test_card_number_shapes() -> None:
    assert looks_like_card_number("5555555555554444")
    assert not looks_like_card_number("5555555555554445")  # fails Luhn
    assert not looks_like_card_number("123456789012")  # 12 digits
    assert not looks_like_card_number("01234567890123456789012")  # a longer digit run is not a PAN
    check_opaque_ref("pm_1NqXyz2eZvKYlo2C")
