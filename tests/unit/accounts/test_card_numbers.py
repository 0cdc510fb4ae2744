"""Payment methods are references to the provider's tokenised ids; anything that looks like a card number is
refused (422) in every field, and the refusal never repeats the number."""

from __future__ import annotations

import pydantic
import pytest

from edges.api import identity as idm

# test card numbers published by payment providers, and their lengths 13-19
CARDS = ["4242424242424242", "4000056655665556", "5555555555554444", "378282246310005", "6011111111111117",
         "3056930009020004", "4222222222222", "6200000000000005"]


@pytest.mark.parametrize("number", CARDS)
def test_known_test_cards_pass_luhn_and_are_recognised_however_written(number: str) -> None:
    assert idm.luhn_ok(number)
    assert idm.looks_like_card_number(number)
    spaced = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    assert idm.looks_like_card_number(spaced)
    assert idm.looks_like_card_number(spaced.replace(" ", "-"))
    assert idm.looks_like_card_number(f"my card: {spaced}, exp 12/30")
    assert idm.looks_like_card_number(f"pm_{number}")


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if idm.luhn_ok(body + d))


@pytest.mark.parametrize("length", range(13, 20))
def test_every_card_length_from_13_to_19_digits_is_recognised(length: int) -> None:
    number = _with_check_digit("4" + "7" * (length - 2))
    assert len(number) == length and idm.looks_like_card_number(number)


def test_luhn_is_the_mod_10_check() -> None:
    assert idm.luhn_ok("79927398713")  # the textbook example
    assert not idm.luhn_ok("79927398710")
    assert not idm.luhn_ok("4242424242424241")  # one digit off
    assert not idm.luhn_ok("")
    assert not idm.luhn_ok("42x2")


@pytest.mark.parametrize("text", [
    "4242424242424241",  # fails Luhn
    "424242424242",  # 12 digits: too short
    "42424242424242424242",  # 20 digits: too long
    "pm_1NvHhL2eZvKYlo2CaBcDeFgH", "company card", "+31 20 123 4567", "2026-01-01",
])
def test_other_text_is_not_taken_for_a_card_number(text: str) -> None:
    assert not idm.looks_like_card_number(text)


@pytest.mark.parametrize("field", ["payment_method_id", "label", "provider"])
def test_a_card_number_in_any_field_is_refused_without_being_echoed(field: str) -> None:
    body = {"payment_method_id": "pm_1NvHhL2eZvKYlo2C", "label": "work", field: "4242 4242 4242 4242"}
    with pytest.raises(pydantic.ValidationError) as exc:
        idm.PaymentMethodBody.model_validate(body)
    err = exc.value.errors()[0]
    assert "card number" in err["msg"] and field in err["msg"]
    # what a client or a log sees (the API strips the input from 422 answers: edges/api/runtime.py)
    assert "4242" not in str(exc.value)
    assert "4242" not in repr(exc.value.errors(include_input=False, include_context=False))


def test_only_tokenised_references_are_accepted() -> None:
    ok = idm.PaymentMethodBody.model_validate({"payment_method_id": "pm_1NvHhL2eZvKYlo2C", "label": "work"})
    assert ok.provider == "stripe" and ok.label == "work"
    for bad in ("card_123456", "pm_", "pm_abc", "pm_abc def", "tok_visa", "pm_" + "a" * 65, "pm_abc123\x00x"):
        with pytest.raises(pydantic.ValidationError, match="payment_method_id"):
            idm.PaymentMethodBody.model_validate({"payment_method_id": bad})
    with pytest.raises(pydantic.ValidationError):
        idm.PaymentMethodBody.model_validate({"payment_method_id": 4242424242424242})
    with pytest.raises(pydantic.ValidationError):
        idm.PaymentMethodBody.model_validate({"payment_method_id": "pm_1NvHhL2eZvKYlo2C", "cvc": "123"})
