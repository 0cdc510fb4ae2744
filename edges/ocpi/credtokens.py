"""Credentials tokens: made, hashed, sealed, and carried in the Authorization header.  Pure: no I/O.

Two kinds of credentials token, two treatments - and neither is ever in clear on the log, in a store or in a log
line:
- **Tokens we issue** (token A for a partner that registers with us, C when it did, B when we register with it)
  are 256-bit random (`secrets.token_urlsafe(32)`: 43 printable ASCII characters, within OCPI's string(64)).  We
  only need to recognise them, so only a hash is stored: SHA-256 with a domain-separation prefix.  Why not argon2
  or a salted hash: a request's token must be *found* (an indexed equality lookup), which a per-token salt
  forbids, and slow hashing only protects guessable secrets - guessing a 256-bit random token is hopeless at any
  cost.  Why not a keyed HMAC: its key would protect nothing a 256-bit token does not, while every hash on the
  forever-kept log would depend on a key that could then never rotate.
- **Tokens partners issue to us** (their A, B or C) we must send back in clear, so they are sealed: AES-256-GCM
  with a key derived (HKDF-SHA256) from the configured secret, a fresh 96-bit nonce per seal, and the partner id as
  associated data, so a sealed token cannot be replayed as another partner's.

The Authorization header is `Token <base64(utf-8 token)>` (OCPI 2.2.1 §4.1.3).  Many 2.1.1/2.2 peers send and
expect the token un-encoded; a per-partner flag (`plain_token`) accepts and sends that form for that partner only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HASH_PREFIX = b"chargeverse/ocpi/credentials-token/v1\x00"
_SEAL_VERSION = "s1:"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(_HASH_PREFIX + token.encode()).hexdigest()


def is_printable_token(token: str) -> bool:
    """OCPI: printable non-whitespace ASCII (U+0021..U+007E), at most 64 characters."""
    return 0 < len(token) <= 64 and all("!" <= ch <= "~" for ch in token)


class SealError(ValueError):
    """A sealed token could not be opened (wrong key, wrong partner, or corrupt)."""


class TokenBox:
    """Seals and opens partner tokens (AES-256-GCM, partner id as associated data)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the OCPI token key material must be at least 16 characters (CV_OCPI_SECRET_KEY, "
                             "or CV_JWT_SECRET when that is unset)")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"chargeverse/ocpi/token-box/v1").derive(secret.encode())
        self._aead = AESGCM(key)

    def seal(self, token: str, partner_id: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, token.encode(), partner_id.encode())
        return _SEAL_VERSION + base64.urlsafe_b64encode(nonce + ct).decode()

    def open(self, sealed: str, partner_id: str) -> str:
        if not sealed.startswith(_SEAL_VERSION):
            raise SealError("not a sealed token")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_SEAL_VERSION):])
            return self._aead.decrypt(raw[:12], raw[12:], partner_id.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SealError("the sealed token does not open with this key for this partner") from exc


# ---- the Authorization header ----------------------------------------------------------------------------------


def authorization(token: str, plain: bool = False) -> str:
    """The header value to send: base64 per OCPI 2.2.1, or the bare token for a `plain_token` partner."""
    return "Token " + (token if plain else base64.b64encode(token.encode()).decode())


def presented_tokens(header: str | None) -> list[tuple[str, bool]]:
    """What a request's Authorization header may carry, as (token, sent_plain) candidates: the base64-decoded
    token when the value decodes to printable ASCII, and the value itself (accepted only from plain_token
    partners).  Empty when there is no `Token` header."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    out: list[tuple[str, bool]] = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
        # some encoders add the newline of `echo token | base64`; the spec's own example does
        decoded = decoded.rstrip("\n")
        if is_printable_token(decoded):
            out.append((decoded, False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    if is_printable_token(value):
        out.append((value, True))
    return out
