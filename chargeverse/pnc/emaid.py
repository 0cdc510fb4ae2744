"""ISO 15118 / eMI3 e-mobility account identifiers (EMA-IDs, "eMAIDs").

Format (ISO 15118-2 Annex H, eMI3 EMA-ID):
``<Country Code 2 alpha> <S> <Provider ID 3 alnum> <S> <eMA Instance 9 alnum> [<S> <Check Digit>]``
with ``<S>`` an optional ``-``.  ``DE-8EO-C12345678-6`` and ``DE8EOC123456786``
are the same eMAID.  The normal form is upper case without separators because
that is what goes into the contract certificate's CN (ISO 15118-2 carries at most
15 characters between EV and charger).

Check digit: the eMI3 "Check Digit Calculation for Contract-IDs" algorithm.  Each
character is a value 0..35 (``0-9A-Z``) split as ``v = 9*q + r`` with
``q = 2*q1 + q2`` (a vector over Z/2) and ``r = 3*r1 + r2`` (a vector over Z/3).
Position ``i`` (1-based) is weighted by ``P1**i`` over Z/2 and ``P2**i`` over Z/3
with ``P1 = [[0,1],[1,1]]`` and ``P2 = [[0,1],[1,2]]``; the 15th character is
chosen so both weighted sums vanish.  Written here from the matrix definition
rather than from lookup tables, so the reasoning can be checked.

Why strictness is a setting: published examples (slides, specs, partner docs)
often carry wrong check digits (``DE-8EO-C12345678-9`` should end in 6), and
refusing a roaming partner's token because of a documentation typo breaks
charging.  ``CheckDigitPolicy.FLAG`` accepts such IDs but marks them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

from chargeverse.pnc.errors import PncRejection, Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
BODY_LENGTH = 14  # country 2 + provider 3 + instance 9
SEPARATOR = "-"
MAX_INPUT_LENGTH = 64  # anything longer is not an eMAID; refuse before parsing

Matrix = tuple[tuple[int, int], tuple[int, int]]
_P1: Matrix = ((0, 1), (1, 1))
_P2: Matrix = ((0, 1), (1, 2))


def _mat_mul(a: Matrix, b: Matrix, mod: int) -> Matrix:
    return (
        ((a[0][0] * b[0][0] + a[0][1] * b[1][0]) % mod, (a[0][0] * b[0][1] + a[0][1] * b[1][1]) % mod),
        ((a[1][0] * b[0][0] + a[1][1] * b[1][0]) % mod, (a[1][0] * b[0][1] + a[1][1] * b[1][1]) % mod),
    )


def _powers(base: Matrix, mod: int, count: int) -> list[Matrix]:
    """``[base**1, ..., base**count]`` modulo ``mod``."""
    out = [base]
    for _ in range(count - 1):
        out.append(_mat_mul(out[-1], base, mod))
    return out


def _vec_mul(v: tuple[int, int], m: Matrix, mod: int) -> tuple[int, int]:
    """Row vector times matrix, modulo ``mod``."""
    return ((v[0] * m[0][0] + v[1] * m[1][0]) % mod, (v[0] * m[0][1] + v[1] * m[1][1]) % mod)


def _inverse(m: Matrix, mod: int) -> Matrix:
    det = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) % mod
    inv_det = pow(det, -1, mod)
    return (
        ((m[1][1] * inv_det) % mod, (-m[0][1] * inv_det) % mod),
        ((-m[1][0] * inv_det) % mod, (m[0][0] * inv_det) % mod),
    )


_P1_POW = _powers(_P1, 2, BODY_LENGTH + 1)
_P2_POW = _powers(_P2, 3, BODY_LENGTH + 1)
_P1_LAST_INV = _inverse(_P1_POW[BODY_LENGTH], 2)
_P2_LAST_INV = _inverse(_P2_POW[BODY_LENGTH], 3)


def check_digit(body: str) -> str:
    """The check digit of a 14-character normalised eMAID body (``DE8EOC12345678`` -> ``6``)."""
    if len(body) != BODY_LENGTH or any(ch not in _VALUE for ch in body):
        raise PncRejection(Reason.INVALID_EMAID, "check digit needs 14 upper-case alphanumerics")
    q_sum = (0, 0)
    r_sum = (0, 0)
    for i, ch in enumerate(body):
        q, r = divmod(_VALUE[ch], 9)
        qv = _vec_mul((q // 2, q % 2), _P1_POW[i], 2)
        rv = _vec_mul((r // 3, r % 3), _P2_POW[i], 3)
        q_sum = ((q_sum[0] + qv[0]) % 2, (q_sum[1] + qv[1]) % 2)
        r_sum = ((r_sum[0] + rv[0]) % 3, (r_sum[1] + rv[1]) % 3)
    # Solve x15 * P**15 == -sum for the last character's two vectors.
    q15 = _vec_mul(((-q_sum[0]) % 2, (-q_sum[1]) % 2), _P1_LAST_INV, 2)
    r15 = _vec_mul(((-r_sum[0]) % 3, (-r_sum[1]) % 3), _P2_LAST_INV, 3)
    return ALPHABET[9 * (2 * q15[0] + q15[1]) + 3 * r15[0] + r15[1]]


class CheckDigitPolicy(StrEnum):
    """What to do with a present-but-wrong check digit (a deployment setting)."""

    REJECT = "reject"
    FLAG = "flag"


@dataclass(frozen=True, slots=True)
class Emaid:
    """A parsed eMAID.  ``str(e)`` is the normal form (no separators, with check digit)."""

    country: str
    provider: str
    instance: str
    check: str
    supplied_check: str | None  # what the input carried, None when absent
    check_digit_ok: bool  # False only under CheckDigitPolicy.FLAG with a wrong digit

    @property
    def body(self) -> str:
        return f"{self.country}{self.provider}{self.instance}"

    @property
    def normalised(self) -> str:
        """Upper case, no separators, correct check digit: the certificate CN form."""
        return f"{self.body}{self.check}"

    @property
    def with_separators(self) -> str:
        return f"{self.country}-{self.provider}-{self.instance}-{self.check}"

    @property
    def party_id(self) -> str:
        """OCPI ``country_code`` + ``party_id`` of the issuing eMSP (``DE`` + ``8EO``)."""
        return f"{self.country}{self.provider}"

    def __str__(self) -> str:
        return self.normalised


def parse(text: str, policy: CheckDigitPolicy = CheckDigitPolicy.REJECT, *, require_check_digit: bool = False) -> Emaid:
    """Parse and validate an eMAID in any accepted spelling.

    Separators ``-`` are optional but only at the field boundaries; lower case is
    accepted and normalised.  A missing check digit is computed unless
    ``require_check_digit``.  Raises ``PncRejection`` (``INVALID_EMAID`` or
    ``BAD_CHECK_DIGIT``).
    """
    if not isinstance(text, str):
        raise PncRejection(Reason.INVALID_EMAID, "not a string")
    if len(text) > MAX_INPUT_LENGTH:
        raise PncRejection(Reason.INVALID_EMAID, "too long")
    s = text.strip().upper()
    fields: list[str] = []
    pos = 0
    for width in (2, 3, 9):
        chunk = s[pos : pos + width]
        if len(chunk) != width or any(ch not in _VALUE for ch in chunk):
            raise PncRejection(Reason.INVALID_EMAID, f"{text!r}: expected {width} alphanumerics at {pos}")
        fields.append(chunk)
        pos += width
        if s[pos : pos + 1] == SEPARATOR:
            pos += 1
    country, provider, instance = fields
    if not country.isalpha():
        raise PncRejection(Reason.INVALID_EMAID, f"{text!r}: country code must be two letters")
    rest = s[pos:]
    if rest and (len(rest) != 1 or rest not in _VALUE):
        raise PncRejection(Reason.INVALID_EMAID, f"{text!r}: unexpected trailing {rest!r}")
    if s.endswith(SEPARATOR) or SEPARATOR * 2 in s:
        raise PncRejection(Reason.INVALID_EMAID, f"{text!r}: misplaced separator")
    supplied = rest or None
    if supplied is None and require_check_digit:
        raise PncRejection(Reason.INVALID_EMAID, f"{text!r}: check digit missing")
    expected = check_digit(country + provider + instance)
    ok = supplied is None or supplied == expected
    if not ok and policy is CheckDigitPolicy.REJECT:
        raise PncRejection(Reason.BAD_CHECK_DIGIT, f"{text!r}: check digit {supplied}, expected {expected}")
    return Emaid(country, provider, instance, expected, supplied, ok)


def normalise(text: str, policy: CheckDigitPolicy = CheckDigitPolicy.REJECT) -> str:
    """The canonical 15-character form of ``text`` (see ``parse``)."""
    return parse(text, policy).normalised


def is_valid(text: str) -> bool:
    """True when ``text`` is a well-formed eMAID whose check digit (if present) is right."""
    try:
        parse(text, CheckDigitPolicy.REJECT)
    except PncRejection:
        return False
    return True


def generate(country: str, provider: str, instance: str | None = None) -> Emaid:
    """A new eMAID for provider ``country``/``provider``.

    ``instance`` defaults to ``C`` + 8 random alphanumerics: the eMI3 "contract"
    ID type, random so that eMAIDs reveal nothing about account numbering.
    """
    if instance is None:
        instance = "C" + "".join(secrets.choice(ALPHABET) for _ in range(8))
    return parse(f"{country}{provider}{instance}", CheckDigitPolicy.REJECT)
