"""Every committed version of every schema stays backward AND forward compatible with the current one, and its
fingerprint stays readable (kept in schemas/avro/history/).  Checked against git history with Apache Avro's own
compatibility checker."""

from __future__ import annotations

import json
import subprocess

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from chargeverse import ROOT
from chargeverse.avro import SCHEMA_DIR, SchemaStore, schema_fingerprint


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def _committed_versions(rel: str) -> list[tuple[str, dict]]:
    try:
        commits = _git("log", "--format=%H", "--", rel).split()
    except subprocess.CalledProcessError:
        return []
    out = []
    for c in commits:
        try:
            out.append((c[:10], json.loads(_git("show", f"{c}:{rel}"))))
        except subprocess.CalledProcessError:  # deleted in that commit
            continue
    return out


def _compatible(reader: dict, writer: dict) -> tuple[bool, str]:
    r = ReaderWriterCompatibilityChecker().get_compatibility(avro.schema.parse(json.dumps(reader)),
                                                             avro.schema.parse(json.dumps(writer)))
    return r.compatibility == SchemaCompatibilityType.compatible, "; ".join(r.messages)


def _in_git() -> bool:
    try:
        _git("rev-parse", "HEAD")
        return True
    except (subprocess.CalledProcessError, FileNotFoundError):
        return False


@pytest.mark.parametrize("path", sorted(p.name for p in SCHEMA_DIR.glob("*.avsc")))
def test_schema_is_compatible_both_ways_with_every_committed_version(path: str) -> None:
    if not _in_git():
        pytest.skip("not a git checkout: no schema history to compare with")
    current = json.loads((SCHEMA_DIR / path).read_text())
    store = SchemaStore()
    for commit, old in _committed_versions(f"schemas/avro/{path}"):
        ok, why = _compatible(current, old)
        assert ok, f"{path}: current cannot read data written by {commit} (backward): {why}"
        ok, why = _compatible(old, current)
        assert ok, f"{path}: {commit} readers cannot read data written now (forward): {why}"
        assert schema_fingerprint(old) in store.by_fingerprint, (
            f"{path} as of {commit} is not readable: keep it in schemas/avro/history/{current['name']}/")


def test_the_checker_catches_an_incompatible_change() -> None:
    """The guard above is only worth something if a breaking change fails it."""
    current = json.loads((SCHEMA_DIR / "StationHeartbeat.avsc").read_text())
    broken = json.loads(json.dumps(current))
    broken["fields"].append({"name": "must_have", "type": "string"})  # no default: old data unreadable
    assert not _compatible(broken, current)[0]
    renamed = json.loads(json.dumps(current))
    renamed["fields"][-1]["type"] = "long"
    assert not _compatible(renamed, current)[0]
