"""eMAID parsing, check digits and generation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeverse.pnc import emaid
from chargeverse.pnc.emaid import ALPHABET, CheckDigitPolicy
from chargeverse.pnc.errors import PncRejection, Reason

VECTORS_FILE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pki" / "emaid_vectors.txt"


def _vectors() -> list[tuple[str, str]]:
    out = []
    for line in VECTORS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            body, digit = line.split()
            out.append((body, digit))
    return out


VECTORS = _vectors()


def test_vector_file_is_read_whole() -> None:
    # The file lists ten vectors; a parser that silently dropped lines would pass the parametrised test.
    assert len(VECTORS) == 10


@pytest.mark.parametrize(("body", "digit"), VECTORS)
def test_published_vector(body: str, digit: str) -> None:
    assert emaid.check_digit(body) == digit
    assert emaid.parse(body + digit).normalised == body + digit
    spaced = f"{body[:2]}-{body[2:5]}-{body[5:]}-{digit}".lower()
    assert emaid.normalise(spaced) == body + digit


def test_documentation_example_with_wrong_digit_is_rejected_or_flagged() -> None:
    with pytest.raises(PncRejection) as info:
        emaid.parse("DE-8EO-C12345678-9")
    assert info.value.reason is Reason.BAD_CHECK_DIGIT
    flagged = emaid.parse("DE-8EO-C12345678-9", CheckDigitPolicy.FLAG)
    assert not flagged.check_digit_ok
    assert flagged.supplied_check == "9"
    assert flagged.normalised == "DE8EOC123456786"


def test_missing_check_digit_is_computed_unless_required() -> None:
    assert emaid.parse("DE-8EO-C12345678").normalised == "DE8EOC123456786"
    with pytest.raises(PncRejection):
        emaid.parse("DE-8EO-C12345678", require_check_digit=True)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "D1-8EO-C12345678-6",  # digit in country code
        "DE-8E-C12345678-6",  # provider too short
        "DE-8EO-C1234567",  # instance too short
        "DE-8EO-C12345678-66",  # trailing junk
        "DE-8EO-C123-45678-6",  # separator inside a field
        "DE-8EO-C12345678-",  # dangling separator
        "DE*8EO*C12345678*6",  # DIN-style separator is not an eMAID separator
        "DE-8EO-C12345678-ä",
        "X" * 1000,
    ],
)
def test_malformed_emaids_are_rejected(bad: str) -> None:
    with pytest.raises(PncRejection) as info:
        emaid.parse(bad)
    assert info.value.reason is Reason.INVALID_EMAID
    assert not emaid.is_valid(bad)


bodies = st.tuples(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(alphabet=ALPHABET, min_size=12, max_size=12),
).map("".join)


@given(country=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2), provider=st.text(alphabet=ALPHABET, min_size=3, max_size=3))
def test_generated_emaids_validate(country: str, provider: str) -> None:
    made = emaid.generate(country, provider)
    assert emaid.is_valid(made.normalised)
    assert emaid.is_valid(made.with_separators)
    assert made.instance.startswith("C") and len(made.normalised) == 15


@given(body=bodies, wrong=st.sampled_from(ALPHABET))
def test_any_other_check_digit_is_detected(body: str, wrong: str) -> None:
    right = emaid.check_digit(body)
    assert emaid.is_valid(body + right)
    if wrong != right:
        assert not emaid.is_valid(body + wrong)


@given(body=bodies, position=st.integers(0, 13), replacement=st.sampled_from(ALPHABET))
def test_single_character_errors_in_the_body_are_detected(body: str, position: int, replacement: str) -> None:
    if body[position] == replacement or (position < 2 and not replacement.isalpha()):
        return
    typo = body[:position] + replacement + body[position + 1 :]
    assert not emaid.is_valid(typo + emaid.check_digit(body))


@given(body=bodies, position=st.integers(2, 12))
def test_adjacent_transpositions_are_detected(body: str, position: int) -> None:
    if body[position] == body[position + 1]:
        return
    swapped = body[:position] + body[position + 1] + body[position] + body[position + 2 :]
    assert not emaid.is_valid(swapped + emaid.check_digit(body))


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parsed = emaid.parse(text, CheckDigitPolicy.FLAG)
    except PncRejection as rejection:
        assert rejection.reason in {Reason.INVALID_EMAID, Reason.BAD_CHECK_DIGIT}
    else:
        assert len(parsed.normalised) == 15
