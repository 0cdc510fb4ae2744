"""Hash chains of posting rows, one per ledger partition: the ledger's tamper evidence.

Each posting row (one entry of one posting set, with its set's fields) has a canonical byte encoding, and

    hash_0 = 32 zero bytes
    hash_n = SHA-256(hash_{n-1} || canonical(row_n))

per ledger partition (the log partition the rows came from, e.g. "ledger:3"), with n = the row's sequence number
1, 2, 3, ... in that partition.  Editing, inserting, deleting or reordering any row changes every later hash, so the
first row whose stored hash differs from the recomputed one is where the history was changed.

Why per partition: the log orders events only within a partition, so that is the order in which rows are appended
live and on a rebuild; chains of different partitions are independent and can be appended concurrently.

Canonical encoding (version 1): the magic `CVLP1` and then every field in a fixed order, each typed and
length-prefixed, so the encoding is injective (two different rows never encode alike, and no field can bleed into
the next): None -> 0x00; str -> 0x01 + u32 byte length + UTF-8; int -> 0x02 + 8-byte big-endian signed.  Times are
integer microseconds since the Unix epoch (UTC); amounts are integer minor units.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Iterable, NamedTuple

GENESIS = bytes(32)
MAGIC = b"CVLP1"

_I = struct.Struct(">q")
_L = struct.Struct(">I")


class PostingRow(NamedTuple):
    """Everything a posting's hash covers (the stored row joined with its posting set), in canonical order.
    A NamedTuple: one is made per posting on every append, and the tuple is what `canonical_values` encodes."""

    ledger_partition: str
    seq: int
    event_id: str
    causation_id: str | None
    ledger_key: str
    source_event_id: str
    kind: str
    occurred_at_us: int
    session_id: str | None
    hold_id: str | None
    reverses: str | None
    memo: str | None
    entry_index: int
    account: str
    direction: str  # 'D' | 'C'
    amount_minor: int
    currency: str


def encode_fields(magic: bytes, fields: Iterable[object]) -> bytes:
    """The typed, length-prefixed encoding used for posting rows and seal leaves."""
    out = [magic]
    for v in fields:
        if v is None:
            out.append(b"\x00")
        elif isinstance(v, bool):
            raise TypeError("booleans have no canonical form here")
        elif isinstance(v, int):
            out.append(b"\x02" + _I.pack(v))
        elif isinstance(v, str):
            b = v.encode()
            out.append(b"\x01" + _L.pack(len(b)) + b)
        elif isinstance(v, bytes):
            out.append(b"\x03" + _L.pack(len(v)) + v)
        else:
            raise TypeError(f"no canonical form for {type(v).__name__}")
    return b"".join(out)


ROW_FIELDS: tuple[str, ...] = PostingRow._fields

_NONE = b"\x00"
_INT = b"\x02"
_small: dict[str, bytes] = {}  # encodings of the few distinct short strings (partitions, kinds, accounts, ...)


def _s(v: str | None) -> bytes:
    if v is None:
        return _NONE
    b = v.encode()
    return b"\x01" + _L.pack(len(b)) + b


def _c(v: str) -> bytes:
    """_s for values that repeat a lot (bounded cache)."""
    b = _small.get(v)
    if b is None:
        b = _s(v)
        if len(_small) < 100_000:
            _small[v] = b
    return b


def set_block(event_id: str, causation_id: str | None, key: str, source: str, kind: str, t_us: int,
              session: str | None, hold: str | None, reverses: str | None, memo: str | None) -> bytes:
    """The encoding of the fields a posting shares with its posting set (the middle of `canonical`)."""
    return b"".join((_s(event_id), _s(causation_id), _c(key), _s(source), _c(kind), _INT, _I.pack(t_us),
                     _s(session), _s(hold), _s(reverses), _s(memo)))


def canonical_in_set(partition: str, seq: int, block: bytes, index: int, account: str, direction: str, amount: int,
                     currency: str) -> bytes:
    """canonical() of a posting whose set fields are already encoded as `block` (they repeat for every entry)."""
    return b"".join((MAGIC, _c(partition), _INT, _I.pack(seq), block, _INT, _I.pack(index), _c(account),
                     _c(direction), _INT, _I.pack(amount), _c(currency)))


def canonical_values(v: tuple) -> bytes:  # type: ignore[type-arg]
    """encode_fields(MAGIC, v) for the PostingRow fields `v` in order, written out for speed: it runs once per
    posting on every append and every verify.  tests/unit/ledger/test_ledger_chain.py checks the two agree."""
    (partition, seq, event_id, causation_id, key, source, kind, t_us, session, hold, reverses, memo, index,
     account, direction, amount, currency) = v
    return canonical_in_set(partition, seq, set_block(event_id, causation_id, key, source, kind, t_us, session,
                                                      hold, reverses, memo), index, account, direction, amount,
                            currency)


def canonical(row: PostingRow) -> bytes:
    return canonical_values(row)


def link(prev: bytes, row: PostingRow) -> bytes:
    """hash_n from hash_{n-1} and row n."""
    return hashlib.sha256(prev + canonical(row)).digest()


class ChainError(ValueError):
    pass


class Chain:
    """The head of one partition's chain; `append` hashes the next row (which must carry the next seq)."""

    def __init__(self, partition: str, seq: int = 0, head: bytes = GENESIS) -> None:
        self.partition = partition
        self.seq = seq
        self.head = head

    def append(self, row: PostingRow) -> bytes:
        if row.ledger_partition != self.partition:
            raise ChainError(f"row of {row.ledger_partition} appended to the chain of {self.partition}")
        if row.seq != self.seq + 1:
            raise ChainError(f"{self.partition}: row seq {row.seq} after {self.seq}")
        self.head = link(self.head, row)
        self.seq = row.seq
        return self.head


@dataclass(frozen=True)
class Break:
    """The first place a chain disagrees with its stored hashes."""

    partition: str
    seq: int
    expected: str
    found: str
    what: str

    def __str__(self) -> str:
        return f"{self.partition} seq {self.seq}: {self.what} (expected {self.expected}, found {self.found})"


def first_break(partition: str, rows: Iterable[tuple[PostingRow, bytes]], start_seq: int = 0,
                start_head: bytes = GENESIS) -> Break | None:
    """Walk (row, stored hash) pairs in seq order; the first missing/extra seq or hash mismatch, or None."""
    chain = Chain(partition, start_seq, start_head)
    for row, stored in rows:
        if row.seq != chain.seq + 1:
            return Break(partition, chain.seq + 1, f"seq {chain.seq + 1}", f"seq {row.seq}",
                         "a row is missing or out of order")
        got = link(chain.head, row)
        if got != stored:
            return Break(partition, row.seq, got.hex(), bytes(stored).hex(),
                         "row content does not match its hash (edited row or broken link)")
        chain.head, chain.seq = got, row.seq
    return None
