"""Shared inputs of the billing unit tests: the OCPI spec's CDR example and the tandemdrive CDR vectors, read in
place from the shared data directory (never copied into the repo)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ledger.billing.cdr_checks import parse_cdr_json

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
if not SHARED.exists():  # pragma: no cover - a checkout elsewhere
    SHARED = Path("/work/shared/data")
OCPI_EXAMPLES = SHARED / "ocpi" / "examples"
TANDEMDRIVE = SHARED / "tariffs" / "tandemdrive"


def load(path: Path) -> Any:
    return parse_cdr_json(path.read_text())


@pytest.fixture
def cdr_example() -> dict[str, Any]:
    """OCPI 2.2.1 cdr_example.json: TIME 2.00/h at 10 % VAT, 1.973 h, total 4.00 excl / 4.40 incl, tariff '12'
    embedded.  A fresh deep copy per test (tests mutate it)."""
    return copy.deepcopy(load(OCPI_EXAMPLES / "cdr_example.json"))
