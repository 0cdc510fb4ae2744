"""Community input rules (edges/api/community.py): review text is plain, HTML-safe and tidy; photos are accepted
only as JPEG/PNG/WebP whose bytes match the declared type, within the size limit; ratings average as shown."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edges.api.community import (MAX_TEXT, PhotoRejected, ReviewIn, check_photo, rating_summary, sanitise_text,
                                 sniff_image)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64


def test_html_is_removed_and_what_remains_is_escaped() -> None:
    assert sanitise_text("<script>alert(1)</script>Great <b>fast</b> charger") == "alert(1)Great fast charger"
    assert sanitise_text('5 > 3 & "ok"') == "5 &gt; 3 &amp; &quot;ok&quot;"
    assert sanitise_text("<img src=x onerror=alert(1)") is None


def test_control_bidi_and_zero_width_characters_are_removed_line_breaks_kept() -> None:
    assert sanitise_text("a\x07b\x1bc\u202eevil\u200b") == "abcevil"
    assert sanitise_text("line one\r\n\r\n\r\n\r\nline two\tend") == "line one\n\nline two end"
    assert sanitise_text("   spaced    out   ") == "spaced out"


def test_nothing_left_is_none_and_too_long_is_refused() -> None:
    assert sanitise_text("   \n\t ") is None
    assert sanitise_text(None) is None
    assert sanitise_text("x" * MAX_TEXT) == "x" * MAX_TEXT
    with pytest.raises(ValueError):
        sanitise_text("x" * (MAX_TEXT + 1))


@given(st.text(max_size=300))
def test_sanitised_text_never_carries_markup_or_control_characters(raw: str) -> None:
    out = sanitise_text(raw)
    if out is not None:
        assert "<" not in out and ">" not in out and '"' not in out
        assert not any(ord(c) < 32 and c != "\n" for c in out)
        assert out == out.strip()


def test_rating_must_be_one_to_five() -> None:
    assert ReviewIn(rating=5, text="<i>nice</i>").text == "nice"
    for bad in (0, 6, -1):
        with pytest.raises(ValidationError):
            ReviewIn(rating=bad)


def test_image_types_are_found_by_their_signature() -> None:
    assert sniff_image(JPEG) == "image/jpeg"
    assert sniff_image(PNG) == "image/png"
    assert sniff_image(WEBP) == "image/webp"
    assert sniff_image(b"GIF89a" + b"\x00" * 20) is None
    assert sniff_image(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert sniff_image(b"") is None


def test_a_photo_is_accepted_only_as_what_its_bytes_are() -> None:
    assert check_photo(PNG, "image/png", 1000) == "image/png"
    assert check_photo(JPEG, "image/jpeg; charset=binary", 1000) == "image/jpeg"
    cases = [(PNG, "image/jpeg", 415),           # declared one type, bytes are another
             (b"<svg onload=x>", "image/png", 415),  # not an image at all
             (JPEG, "image/gif", 415),            # a type we do not store
             (JPEG, None, 415),
             (JPEG, "text/html", 415),
             (b"", "image/png", 415),
             (PNG + b"\x00" * 1000, "image/png", 413)]
    for data, ctype, code in cases:
        with pytest.raises(PhotoRejected) as exc:
            check_photo(data, ctype, 1000)
        assert exc.value.status_code == code, (ctype, exc.value.reason)


def test_rating_summary_rounds_half_up_to_one_decimal() -> None:
    assert rating_summary(0, 0) == (None, 0)
    assert rating_summary(9, 2) == (Decimal("4.5"), 2)
    assert rating_summary(14, 3) == (Decimal("4.7"), 3)
    assert rating_summary(7, 4) == (Decimal("1.8"), 4)  # 1.75 -> 1.8, not banker's 1.8/1.7 ambiguity
    assert rating_summary(5, 4) == (Decimal("1.3"), 4)  # 1.25 -> 1.3 (half up), where half-even would say 1.2
