"""JSON with exact decimal numbers: Decimal in, the same digits out as a JSON number, and back.

Money and energy are Decimal everywhere (never float); `json.dumps` cannot write a Decimal as a number, and
writing it as a string changes the OCPI document's types.  `dumps` writes each Decimal's own digits as a JSON
number; `loads` reads every non-integer number back as a Decimal.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

_MARK = "~~cv-exact-decimal~~"
_PATTERN = re.compile('"' + re.escape(_MARK) + r'([-+0-9.eE]+)"')


def _prepare(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"{obj} is not a JSON number")
        return f"{_MARK}{obj}"
    if isinstance(obj, dict):
        return {k: _prepare(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_prepare(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat().replace("+00:00", "Z")
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """JSON text of `obj`, Decimals written as numbers with their exact digits."""
    return _PATTERN.sub(r"\1", json.dumps(_prepare(obj), **kw))


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every fractional number exact (as Decimal)."""
    return json.loads(text, parse_float=Decimal)
