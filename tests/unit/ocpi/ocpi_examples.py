"""The OCPI 2.2.1 specification's example payloads, read in place (shared by the OCPI unit tests)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "ocpi" / "examples"


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()
