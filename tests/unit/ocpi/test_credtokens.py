"""Credentials tokens (edges/ocpi/credtokens.py): random, found by hash, sealed for the partner, carried in the
Authorization header in Base64 or (per partner) bare."""

from __future__ import annotations

import base64

import pytest

from edges.ocpi.credtokens import (SealError, TokenBox, authorization, is_printable_token, new_token,
                                   presented_tokens, token_hash)


def test_new_tokens_are_distinct_printable_and_fit_ocpi_string64() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(is_printable_token(t) and len(t) == 43 for t in tokens)


def test_the_hash_finds_the_token_and_does_not_reveal_it() -> None:
    t = new_token()
    assert token_hash(t) == token_hash(t)
    assert token_hash(t) != token_hash(t + "x")
    assert t not in token_hash(t)
    assert token_hash(t).startswith("sha256:") and len(token_hash(t)) == 7 + 64


def test_a_sealed_token_opens_only_with_the_key_and_for_the_partner_it_was_sealed_for() -> None:
    box = TokenBox("k" * 32)
    sealed = box.seal("their-token-C", "partner-1")
    assert "their-token-C" not in sealed
    assert box.open(sealed, "partner-1") == "their-token-C"
    assert box.seal("their-token-C", "partner-1") != sealed  # fresh nonce each time
    with pytest.raises(SealError):
        box.open(sealed, "partner-2")
    with pytest.raises(SealError):
        TokenBox("other-key-material").open(sealed, "partner-1")
    with pytest.raises(SealError):
        box.open(sealed[:-4] + "AAAA", "partner-1")
    with pytest.raises(ValueError):
        TokenBox("short")


def test_the_header_is_base64_unless_the_partner_uses_bare_tokens() -> None:
    assert authorization("example-token") == "Token ZXhhbXBsZS10b2tlbg=="
    assert authorization("example-token", plain=True) == "Token example-token"


def test_presented_tokens_decodes_base64_and_offers_the_bare_value_as_a_second_candidate() -> None:
    assert presented_tokens("Token ZXhhbXBsZS10b2tlbg==") == [("example-token", False),
                                                               ("ZXhhbXBsZS10b2tlbg==", True)]
    # the specification's own example encodes a trailing newline
    assert presented_tokens("Token ZXhhbXBsZS10b2tlbgo=")[0] == ("example-token", False)
    # a 2.1.1-style bare UUID is not Base64: only the bare candidate
    assert presented_tokens("Token ebf3b399-779f-4497-9b9d-ac6ad3cc44d2") == [
        ("ebf3b399-779f-4497-9b9d-ac6ad3cc44d2", True)]
    assert presented_tokens("token   ZXhhbXBsZS10b2tlbg==")[0] == ("example-token", False)  # scheme: any case


@pytest.mark.parametrize("header", [None, "", "Token", "Token ", "Bearer abc", "Basic dXNlcjpwYXNz",
                                    "Token " + "x" * 65, "Token a b"])
def test_no_usable_token_gives_no_candidate(header: str | None) -> None:
    got = presented_tokens(header)
    assert got == [] or all(" " not in t and len(t) <= 64 for t, _ in got)
    if header in (None, "", "Token", "Token ", "Bearer abc", "Basic dXNlcjpwYXNz", "Token " + "x" * 65):
        assert got == []


def test_a_token_that_decodes_to_binary_is_only_a_bare_candidate() -> None:
    header = "Token " + base64.b64encode(b"\x00\xff\x10").decode()
    assert presented_tokens(header) == [(header[6:], True)]
