"""No commit past an event that was dropped rather than processed: faust's acks, made safe for at-least-once.

Why: faust-streaming 0.15.3 *skips* every event that reaches a stream while flow control is suspended (a stop, a
rebalance) or that was fetched under an older consumer generation -- and then *acks* it, "so the lag does not
grow" (`Stream.__aiter__`).  An ack is what lets the worker commit the offset.  On SIGTERM the app suspends flow,
then commits what is acked, so the frames that were in the stream's buffer at that moment were committed without
ever reaching the agent: the restarted worker began after them and a charger's BootNotification was never
translated (seen as a flaky `test_a_restarted_worker_resumes_and_carries_on`, about one restart in five).
Projections that keep their own offsets noticed the hole and read it back from the log; the stateless stations
processor, which trusts the group's committed offset, could not.

How: `install()` wraps `faust.Event.ack`.  While flow is suspended, or for an event of an older generation, the
ack is refused: the message keeps its reference, its offset never becomes committable, and whoever owns the
partition next re-reads it from the last real commit.  That includes an event an agent *finished* in that window;
re-processing it is harmless because every sink drops what it already has (deterministic event ids, stored
offsets).  Everything else is unchanged: a normal ack while flow is active works as before.

Invariant: an offset is committed only if every agent reading it acked it while its worker was live and in the
generation that fetched it -- so a stop or rebalance may repeat events, never lose them.

`install()` is idempotent; `uninstall()` restores faust's own ack (for tests).
"""

from __future__ import annotations

from typing import Any, Callable

_ORIGINAL_ATTR = "_cv_original_ack"


def ack_allowed(flow_active: bool, message_generation: int | None, app_generation: int) -> bool:
    """May this ack make the offset committable?  (Pure: the rule, unit-tested on its own.)  A message of no known
    generation (not fetched by the consumer) is judged by the flow alone."""
    return flow_active and (message_generation is None or message_generation == app_generation)


def installed() -> bool:
    from faust.events import Event

    return _ORIGINAL_ATTR in vars(Event)


def install() -> None:
    """Refuse acks of events faust dropped at a stop or a rebalance, in every faust app of this process."""
    from faust.events import Event

    if installed():
        return
    original: Callable[[Any], bool] = Event.ack

    def ack(self: Any) -> bool:
        app = self.app
        if not ack_allowed(app.flow_control.is_active(), getattr(self.message, "generation_id", None),
                           app.consumer_generation_id):
            return False
        return original(self)

    ack.__doc__ = original.__doc__
    setattr(Event, _ORIGINAL_ATTR, original)
    Event.ack = ack  # type: ignore[method-assign]


def uninstall() -> None:
    from faust.events import Event

    original = vars(Event).get(_ORIGINAL_ATTR)
    if original is not None:
        Event.ack = original  # type: ignore[method-assign]
        delattr(Event, _ORIGINAL_ATTR)
