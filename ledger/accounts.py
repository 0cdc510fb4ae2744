"""Ledger accounts: one naming scheme from which an account's kind, normal side, flags and writer key follow.

An account name is `<owner type>:<owner id>:<purpose>`, for example

    driver:u-42:wallet        prepaid money we hold for driver u-42 (liability, may not go below zero)
    driver:u-42:receivable    what driver u-42 owes us (asset)
    cpo:NL-GFX:payable        what we owe charge point operator NL*GFX (liability)
    supplier:eneco:receivable charges forwarded to an energy supplier's customer bill (asset)
    tax:NL:vat_payable        VAT collected for the Dutch tax office (liability)
    psp:stripe:clearing       money the payment provider collected for us and has not paid out (asset)
    platform:charging:revenue our revenue from charging (revenue)

Nothing about an account is configured anywhere else: its kind and flags are a pure function of the purpose, so a
rebuild from the log can never disagree with the live ledger about what an account is.  An account holds one
currency; the same name in two currencies is two accounts (balances are kept per (name, currency)).

Invariants (each named by a test in tests/unit/ledger/test_ledger_accounts.py):
- **Kinds and normal sides.** Assets and expenses have a debit normal balance; liabilities, equity and revenue a
  credit normal balance.  `Balance.normal(kind)` is posted debits minus credits, or credits minus debits.
- **Limits are flags.** `DEBITS_MUST_NOT_EXCEED_CREDITS`: debits_posted + debits_pending <= credits_posted (a
  prepaid wallet never goes below zero, counting reserved holds).  `CREDITS_MUST_NOT_EXCEED_DEBITS`: the mirror.
  An account never has both.
- **A flagged account has one writer.** Its key (`<owner type>:<owner id>`) is the Kafka key every posting set
  touching it must be published under, so all its postings sit in one log partition in one order, and a rebuild
  takes exactly the same accept/reject decisions (see ledger/engine.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, IntFlag
from typing import NamedTuple


class Direction(str, Enum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"

    def __init__(self, value: str) -> None:
        #: one-letter form stored in Postgres and hashed: 'D' or 'C' (a plain attribute: read once per posting)
        self.code = value[0]

    @property
    def opposite(self) -> "Direction":
        return Direction.CREDIT if self is Direction.DEBIT else Direction.DEBIT

    @classmethod
    def from_code(cls, code: str) -> "Direction":
        return {"D": cls.DEBIT, "C": cls.CREDIT}[code]


class Kind(str, Enum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def normal_side(self) -> Direction:
        return Direction.DEBIT if self in (Kind.ASSET, Kind.EXPENSE) else Direction.CREDIT


class Flags(IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


@dataclass(frozen=True)
class Purpose:
    kind: Kind
    flags: Flags
    owners: frozenset[str]
    what: str


OWNER_TYPES: tuple[str, ...] = ("driver", "fleet", "cpo", "emsp", "psp", "tax", "supplier", "platform")

PURPOSES: dict[str, Purpose] = {
    "receivable": Purpose(Kind.ASSET, Flags.NONE, frozenset({"driver", "fleet", "cpo", "emsp", "supplier"}),
                          "what the owner owes us (supplier: charges forwarded to an energy supplier's bill)"),
    "wallet": Purpose(Kind.LIABILITY, Flags.DEBITS_MUST_NOT_EXCEED_CREDITS, frozenset({"driver", "fleet"}),
                      "prepaid money we hold for the owner; never below zero"),
    "payable": Purpose(Kind.LIABILITY, Flags.NONE, frozenset({"driver", "fleet", "cpo", "emsp"}),
                       "what we owe the owner"),
    "advance": Purpose(Kind.ASSET, Flags.CREDITS_MUST_NOT_EXCEED_DEBITS, frozenset({"cpo", "emsp", "fleet"}),
                       "money paid to the owner ahead of settlement; settlement consumes at most what was advanced"),
    "vat_payable": Purpose(Kind.LIABILITY, Flags.NONE, frozenset({"tax"}),
                           "VAT collected for the tax authority of the owner (a country code)"),
    "clearing": Purpose(Kind.ASSET, Flags.NONE, frozenset({"psp"}),
                        "money the payment provider collected for us and has not paid out"),
    "bank": Purpose(Kind.ASSET, Flags.NONE, frozenset({"platform"}), "our bank account"),
    "suspense": Purpose(Kind.LIABILITY, Flags.NONE, frozenset({"platform"}),
                        "counterpart of holds and money not yet allocated"),
    "revenue": Purpose(Kind.REVENUE, Flags.NONE, frozenset({"platform"}), "our income"),
    "expense": Purpose(Kind.EXPENSE, Flags.NONE, frozenset({"platform"}), "our costs (e.g. provider fees)"),
    "equity": Purpose(Kind.EQUITY, Flags.NONE, frozenset({"platform"}), "owners' equity"),
}

_OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+*\-]{0,99}$")


class InvalidAccount(ValueError):
    """An account name outside the naming scheme; the message says which part is wrong."""


@dataclass(frozen=True)
class Account:
    """What an account name means."""

    name: str
    owner_type: str
    owner_id: str
    purpose: str
    kind: Kind
    flags: Flags

    @property
    def key(self) -> str:
        """The writer key: every posting set touching a flagged account is published under it."""
        return f"{self.owner_type}:{self.owner_id}"

    @property
    def limited(self) -> bool:
        return self.flags != Flags.NONE

    @property
    def normal_side(self) -> Direction:
        return self.kind.normal_side


_cache: dict[str, Account] = {}


def parse(name: str) -> Account:
    """The account `name` denotes; InvalidAccount if it is not `<owner type>:<owner id>:<purpose>`."""
    hit = _cache.get(name) if isinstance(name, str) else None
    if hit is not None:
        return hit
    if not isinstance(name, str):
        raise InvalidAccount(f"account name must be a string, got {type(name).__name__}")
    parts = name.split(":")
    if len(parts) != 3:
        raise InvalidAccount(f"account {name!r} is not '<owner type>:<owner id>:<purpose>'")
    owner_type, owner_id, purpose = parts
    if owner_type not in OWNER_TYPES:
        raise InvalidAccount(f"account {name!r}: unknown owner type {owner_type!r}; one of {', '.join(OWNER_TYPES)}")
    if not _OWNER_ID.match(owner_id):
        raise InvalidAccount(f"account {name!r}: owner id {owner_id!r} must be 1-100 of A-Z a-z 0-9 . _ @ + * -, "
                             "starting with a letter or digit")
    p = PURPOSES.get(purpose)
    if p is None:
        raise InvalidAccount(f"account {name!r}: unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if owner_type not in p.owners:
        raise InvalidAccount(f"account {name!r}: a {purpose} account belongs to "
                             f"{' or '.join(sorted(p.owners))}, not {owner_type}")
    acc = Account(name, owner_type, owner_id, purpose, p.kind, p.flags)
    if len(_cache) < 100_000:
        _cache[name] = acc
    return acc


def name(owner_type: str, owner_id: str, purpose: str) -> str:
    """The account name for an owner and purpose (validated)."""
    n = f"{owner_type}:{owner_id}:{purpose}"
    parse(n)
    return n


# the accounts the billing processor uses most, spelled once
def driver_wallet(user_id: str) -> str:
    return name("driver", user_id, "wallet")


def driver_receivable(user_id: str) -> str:
    return name("driver", user_id, "receivable")


def cpo_payable(party: str) -> str:
    return name("cpo", party, "payable")


def vat_payable(country: str) -> str:
    return name("tax", country, "vat_payable")


def psp_clearing(provider: str) -> str:
    return name("psp", provider, "clearing")


def revenue(stream: str = "charging") -> str:
    return name("platform", stream, "revenue")


def suspense(what: str = "holds") -> str:
    return name("platform", what, "suspense")


class Balance(NamedTuple):
    """An account's totals in minor units (TigerBeetle's four: pending amounts are reserved by open holds).
    Immutable; a NamedTuple because one is made per entry applied."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def normal(self, kind: Kind) -> int:
        """Posted balance on the account's normal side (positive = the usual state of such an account)."""
        if kind.normal_side is Direction.DEBIT:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    def available(self, kind: Kind) -> int:
        """Normal-side balance after open holds take their reservation (what a new debit/credit may use)."""
        if kind.normal_side is Direction.DEBIT:
            return self.debits_posted - self.credits_posted - self.credits_pending
        return self.credits_posted - self.debits_posted - self.debits_pending

    def plus(self, direction: Direction, amount: int, *, pending: bool) -> "Balance":
        """This balance with `amount` added on one side (negative `amount` releases)."""
        d, c, dp, cp = self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending
        if direction is Direction.DEBIT:
            if pending:
                dp += amount
            else:
                d += amount
        elif pending:
            cp += amount
        else:
            c += amount
        return Balance(d, c, dp, cp)

    def violation(self, flags: Flags) -> str | None:
        """Why this balance breaks `flags`, or None."""
        f = int(flags)
        if not f:
            return None
        if f & 1 and self.debits_posted + self.debits_pending > self.credits_posted:
            return (f"debits ({self.debits_posted} posted + {self.debits_pending} held) would exceed credits "
                    f"({self.credits_posted})")
        if f & 2 and self.credits_posted + self.credits_pending > self.debits_posted:
            return (f"credits ({self.credits_posted} posted + {self.credits_pending} held) would exceed debits "
                    f"({self.debits_posted})")
        return None
