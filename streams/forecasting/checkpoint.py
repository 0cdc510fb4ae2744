"""Checkpoint and resume: models plus the log offsets they have consumed, as bytes (pure: the caller stores them).

Why offsets travel with the models: a restart must resume exactly where the checkpointed state ends -- events at
or after the stored offset of each partition are replayed, earlier ones are skipped -- so no event is learned twice
or lost.  Rebuilding from the log is the same with an empty checkpoint (`Checkpoint({}, {})`): everything replays.

Format: a 4-byte magic + version, then a pickle of (models, offsets).  Pickle because river models are plain
Python objects designed to be pickled; only load checkpoints this platform wrote (pickle is not for untrusted
input).  `offsets` maps "topic/partition" to the NEXT offset to process (Kafka's committed-offset convention).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

MAGIC = b"CVF1"


@dataclass
class Checkpoint:
    models: dict[str, Any]
    offsets: dict[str, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return MAGIC + pickle.dumps((self.models, dict(self.offsets)), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Checkpoint":
        if data[:4] != MAGIC:
            raise ValueError("not a forecasting checkpoint (bad magic/version)")
        models, offsets = pickle.loads(data[4:])
        return cls(models, offsets)

    def advance(self, partition: str, offset: int) -> None:
        """Record that the event at `offset` has been applied."""
        self.offsets[partition] = max(self.offsets.get(partition, 0), offset + 1)


LogEvent = tuple[str, int, Any]  # (topic/partition, offset, event)


def unseen(log: Iterable[LogEvent], cp: Checkpoint) -> Iterator[LogEvent]:
    """The events of `log` not yet reflected in `cp` (offset >= the partition's stored next offset)."""
    for part, off, ev in log:
        if off >= cp.offsets.get(part, 0):
            yield part, off, ev


def replay(log: Iterable[LogEvent], cp: Checkpoint, apply: Callable[[dict[str, Any], Any], None]) -> Checkpoint:
    """Apply every unseen event to `cp.models` in log order and advance the offsets; returns `cp`."""
    for part, off, ev in unseen(log, cp):
        apply(cp.models, ev)
        cp.advance(part, off)
    return cp
