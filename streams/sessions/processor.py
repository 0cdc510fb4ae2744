"""The sessions processor: `ocpp.frames` -> `sessions`, run as a stateful processor (streams/stateful.py).

The fold (streams/sessions/fold.py) is pure; this module only adapts it: the state key is the charge point id
(the key of `ocpp.frames`, so one charger's frames are folded in order by one worker), non-frame events
(connections) pass through untouched, and each output goes to `sessions` keyed by its session id.  A frame the
fold cannot use raises SessionFrameError; the agent retries it alone and then sends it to the dead-letter topic.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from chargeverse.kafka import EventProducer
from chargeverse.settings import get_settings
from chargeverse.topics import OCPP_FRAMES, SESSIONS
from projections.base import SourcedEvent
from streams.sessions.fold import ABANDON_AFTER_S, apply, new_state
from streams.stateful import Output, StatefulProcessor

NAME = "sessions"


def fold(state: dict[str, Any] | None, e: SourcedEvent,
         abandon_after_s: float = ABANDON_AFTER_S) -> tuple[dict[str, Any] | None, list[Output]]:
    if e.type != "OcppFrame":
        return state, []
    new, outs = apply(state if state is not None else new_state(), e.record, abandon_after_s=abandon_after_s)
    return new, [(SESSIONS.name, rec["session_id"], etype, rec) for etype, rec in outs]


def key_of(e: SourcedEvent) -> str:
    return str(e.record.get("charge_point_id", ""))


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None) -> StatefulProcessor:
    """The processor, with the abandonment limit from settings (`CV_SESSION_ABANDON_AFTER_HOURS`, 0 = never)."""
    after = get_settings().session_abandon_after_hours * 3600
    return StatefulProcessor(NAME, (OCPP_FRAMES.name,), dsn, partial(fold, abandon_after_s=after), key_of,
                             producer=producer, schema=schema)
