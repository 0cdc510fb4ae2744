"""Hash chains (ledger/chain.py): a canonical, injective encoding; hash_n = SHA-256(hash_{n-1} || row_n); the
first edited, missing or reordered row is found."""

from __future__ import annotations

import hashlib

import pytest

from ledger.chain import (GENESIS, MAGIC, ROW_FIELDS, Chain, ChainError, PostingRow, canonical, encode_fields,
                          first_break, link)

ROW = PostingRow("ledger:0", 1, "ev-1", None, "driver:u1", "src-1", "POSTING", 1740830400000000, "s-1", None, None,
                 "memo €", 0, "driver:u1:wallet", "C", 5000, "EUR")


def test_the_encoding_is_pinned_because_stored_hashes_depend_on_it() -> None:
    """Changing the canonical form would make every stored chain unverifiable: it needs a new version (magic)."""
    assert canonical(ROW).hex() == (
        "43564c503101000000086c65646765723a30020000000000000001010000000465762d310001000000096472697665723a7531"
        "01000000057372632d310100000007504f5354494e470200062f46a99b30000100000003732d31000001000000086d656d6f20"
        "e282ac02000000000000000001000000106472697665723a75313a77616c6c65740100000001430200000000000013880100"
        "000003455552")
    assert link(GENESIS, ROW).hex() == "7d6a607ed2bcc07d958651c04474a3de1a747835b189788e8b4a87fbdd88ca1b"


@pytest.mark.parametrize("row", [ROW, ROW._replace(causation_id="c", session_id=None, hold_id="h", reverses="r",
                                               memo=None, seq=2**40, amount_minor=10**15 - 1, occurred_at_us=-5)])
def test_the_fast_encoder_is_the_generic_one(row: PostingRow) -> None:
    assert canonical(row) == encode_fields(MAGIC, [getattr(row, n) for n in ROW_FIELDS])


def test_hash_n_is_sha256_of_the_previous_hash_and_the_canonical_row() -> None:
    prev = hashlib.sha256(b"x").digest()
    assert link(prev, ROW) == hashlib.sha256(prev + canonical(ROW)).digest()


@pytest.mark.parametrize("name", PostingRow._fields)
def test_every_field_is_covered(name: str) -> None:
    value = getattr(ROW, name)
    other = {int: lambda v: v + 1, str: lambda v: v + "x", type(None): lambda v: ""}[type(value)](value)
    assert canonical(ROW._replace(**{name: other})) != canonical(ROW)


def test_the_encoding_is_injective_across_field_boundaries_and_types() -> None:
    assert encode_fields(b"M", ["ab", "c"]) != encode_fields(b"M", ["a", "bc"])
    assert encode_fields(b"M", [None]) != encode_fields(b"M", [""])
    assert encode_fields(b"M", ["1"]) != encode_fields(b"M", [1])
    assert encode_fields(b"M", [b"\x01"]) != encode_fields(b"M", ["\x01"])
    assert encode_fields(b"M", [-1]) != encode_fields(b"M", [2**64 - 1 - 2**63])
    for bad in (True, 1.5, object()):
        with pytest.raises(TypeError):
            encode_fields(b"M", [bad])


def rows(n: int, part: str = "ledger:0") -> list[PostingRow]:
    return [ROW._replace(ledger_partition=part, seq=i, entry_index=i % 3, amount_minor=100 * i) for i in range(1, n + 1)]


def chained(rs: list[PostingRow]) -> list[tuple[PostingRow, bytes]]:
    c = Chain(rs[0].ledger_partition)
    return [(r, c.append(r)) for r in rs]


def test_a_chain_appends_consecutive_rows_of_its_own_partition_only() -> None:
    c = Chain("ledger:0")
    for r in rows(3):
        c.append(r)
    assert (c.seq, c.head) == (3, chained(rows(3))[-1][1])
    with pytest.raises(ChainError, match="seq 5 after 3"):
        c.append(ROW._replace(seq=5))
    with pytest.raises(ChainError, match="ledger:1"):
        c.append(ROW._replace(ledger_partition="ledger:1", seq=4))


def test_an_intact_chain_has_no_break() -> None:
    assert first_break("ledger:0", chained(rows(20))) is None
    assert first_break("ledger:0", []) is None


def test_an_edited_row_is_the_first_break_even_if_the_editor_rehashes_it() -> None:
    good = chained(rows(10))
    edited = list(good)
    edited[4] = (good[4][0]._replace(amount_minor=1), good[4][1])
    b = first_break("ledger:0", edited)
    assert (b.partition, b.seq) == ("ledger:0", 5) and b.found == good[4][1].hex()
    # the editor also rewrites row 5's stored hash: then row 6 no longer links to it
    prev = good[3][1]
    edited[4] = (edited[4][0], link(prev, edited[4][0]))
    b = first_break("ledger:0", edited)
    assert b.seq == 6 and "does not match" in b.what


def test_a_deleted_or_reordered_row_is_found_where_it_is_missing() -> None:
    good = chained(rows(10))
    b = first_break("ledger:0", good[:3] + good[4:])
    assert (b.seq, b.expected, b.found) == (4, "seq 4", "seq 5")
    b = first_break("ledger:0", good[:2] + [good[3], good[2]] + good[4:])
    assert b.seq == 3
    # a row inserted at the end with a made-up hash
    extra = good[-1][0]._replace(seq=11)
    b = first_break("ledger:0", good + [(extra, bytes(32))])
    assert b.seq == 11


def test_a_chain_can_be_checked_from_a_known_head() -> None:
    good = chained(rows(10))
    assert first_break("ledger:0", good[5:], start_seq=5, start_head=good[4][1]) is None
    assert first_break("ledger:0", good[5:], start_seq=5, start_head=GENESIS).seq == 6
