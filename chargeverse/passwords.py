"""Password and secret hashing: argon2id, always.  Only hashes are ever stored or put on the log.

Two cost profiles, because the threats differ:
- people's passwords (`hash_secret`): argon2-cffi's RFC 9106 low-memory profile (64 MiB, 3 passes), since
  people choose guessable passwords;
- chargers' HTTP Basic secrets (`hash_machine_secret`): random, at least 16 characters (OCPP security profile 1),
  so guessing is hopeless at any cost and a light profile (8 MiB, 1 pass, ~2 ms) is enough.  That keeps a
  reconnect storm of thousands of chargers from queueing behind 100 ms verifications.
`verify_secret` reads the parameters from the hash, so it checks either.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_machine_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def hash_machine_secret(secret: str) -> str:
    return _machine_hasher.hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
