"""Password and secret hashing: argon2id, always.  Only hashes are ever stored or put on the log.

Two cost profiles, because the threats differ:
- people's passwords (`hash_secret`): argon2-cffi's RFC 9106 low-memory profile (64 MiB, 3 passes), since
  people choose guessable passwords;
- chargers' HTTP Basic secrets (`hash_machine_secret`), at least 16 characters (OCPP security profile 1):
  - a secret an operator chose may be guessable, so it gets a light profile (8 MiB, 1 pass, ~3.5 ms here);
  - a secret we generated (`generated=True`: 144 random bits, `secrets.token_urlsafe(18)`) cannot be guessed at
    any cost, so the cost buys nothing and it gets the lightest profile (1 MiB, 1 pass, ~0.4 ms).  A reconnect storm
    of thousands of chargers then costs the edge a tenth of the CPU (measured: bench/RESULTS.md, OCPP edge).
`verify_secret` reads the parameters from the hash, so it checks all three.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_machine_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
_generated_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def hash_machine_secret(secret: str, *, generated: bool = False) -> str:
    """`generated`: the secret came from `secrets` with at least 128 random bits (see the module docstring)."""
    return (_generated_hasher if generated else _machine_hasher).hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
