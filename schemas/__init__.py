"""The event contracts, shipped with the package: `schemas/avro/*.avsc` (one per event type) and
`schemas/avro/history/<Name>/<fingerprint>.avsc` (every earlier version, so old events stay readable)."""

from pathlib import Path

AVRO_DIR = Path(__file__).resolve().parent / "avro"
