"""The suite stays collectable: pytest imports test modules by basename (no packages), so two test files with the
same name in different folders stop the whole run at collection."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_unique_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name not in ("__init__.py", "conftest.py"))
    assert [n for n, c in names.items() if c > 1] == []
