"""What every projection is: a function from an ordered batch of log events to store writes, plus its offsets.

Invariants every projection keeps (each named by a test in tests/integration/test_projections.py):
- **Offsets with rows.** The next offset per topic-partition is written in the same store transaction as the rows
  it produced; events below it are skipped.  At-least-once delivery therefore applies each event exactly once.
- **Deterministic.** Rows depend only on the events (timestamps come from the events), so a rebuild from offset 0
  into an empty namespace yields the same checksum as the live projection.
- **Never writes the log.** Projections only read it; decisions are made by processors in streams/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class SourcedEvent:
    """A decoded event and where it sits on the log."""

    topic: str
    partition: int
    offset: int
    type: str
    record: dict[str, Any]


#: the type of a placeholder for a message that went to the dead-letter topic: it writes nothing but advances
#: the projection's offsets, so a poison message is passed over exactly once and lag can reach zero
DEAD_LETTERED = "_dead_lettered"


def dead_lettered(topic: str, partition: int, offset: int) -> SourcedEvent:
    return SourcedEvent(topic, partition, offset, DEAD_LETTERED, {})


def real(events: Sequence[SourcedEvent]) -> list[SourcedEvent]:
    """The events that carry data (not dead-letter placeholders)."""
    return [e for e in events if e.type != DEAD_LETTERED]


class Projection(Protocol):
    #: stable name; the key of its offsets
    name: str
    #: the topics it reads
    topics: tuple[str, ...]

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        """Apply the events not yet applied, atomically with their offsets; return how many were new."""
        ...

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to apply per (topic, partition)."""
        ...

    def checksum(self) -> str:
        """A digest of the projection's content (not its offsets), for replay comparisons."""
        ...

    def reset(self) -> None:
        """Drop everything in this projection's namespace (used before a rebuild)."""
        ...


def unseen(events: Sequence[SourcedEvent], next_offsets: dict[tuple[str, int], int]) -> list[SourcedEvent]:
    """The events at or past their partition's stored next offset, in order."""
    return [e for e in events if e.offset >= next_offsets.get((e.topic, e.partition), 0)]


def advanced(events: Sequence[SourcedEvent]) -> dict[tuple[str, int], int]:
    """The next offsets after applying `events`."""
    out: dict[tuple[str, int], int] = {}
    for e in events:
        key = (e.topic, e.partition)
        if e.offset + 1 > out.get(key, -1):
            out[key] = e.offset + 1
    return out
