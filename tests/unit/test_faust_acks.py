"""chargeverse/faust_acks.py: an event faust drops at a stop or a rebalance never becomes committable."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.events import Event
from faust.types.tuples import Message

from chargeverse import faust_acks


@pytest.mark.parametrize(("flow", "msg_gen", "app_gen", "allowed"), [
    (True, 3, 3, True),      # live, same generation: the normal ack
    (True, None, 3, True),   # not fetched by the consumer (no generation): judged by the flow alone
    (False, 3, 3, False),    # flow suspended: a stop or a rebalance is under way
    (False, None, 3, False),
    (True, 2, 3, False),     # fetched before the last rebalance: its partition may belong to another worker now
    (False, 2, 3, False),
])
def test_the_rule(flow: bool, msg_gen: int | None, app_gen: int, allowed: bool) -> None:
    assert faust_acks.ack_allowed(flow, msg_gen, app_gen) is allowed


class _Flow:
    def __init__(self, active: bool) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


def _event(flow_active: bool, msg_gen: int | None, app_gen: int) -> Event:
    app = SimpleNamespace(flow_control=_Flow(flow_active), consumer_generation_id=app_gen, consumer=object())
    msg = Message("ocpp.frames", 0, 41, 0.0, 0, None, b"k", b"v", None, generation_id=msg_gen)
    msg.incref()  # one stream holds it, as the conductor counts
    return Event(app, b"k", b"v", None, msg)  # type: ignore[arg-type]


@pytest.fixture()
def installed():  # noqa: ANN201
    was = faust_acks.installed()
    faust_acks.install()
    faust_acks.install()  # idempotent: one wrapper, not two
    yield
    if not was:
        faust_acks.uninstall()


def test_a_live_ack_still_makes_the_offset_committable(installed) -> None:  # noqa: ANN001
    ev = _event(True, 5, 5)
    assert ev.ack() is True and ev.message.acked and ev.message.refcount == 0


def test_an_ack_while_flow_is_suspended_is_refused_and_the_message_stays_pending(installed) -> None:  # noqa: ANN001
    ev = _event(False, 5, 5)
    assert ev.ack() is False
    assert not ev.message.acked and ev.message.refcount == 1  # its offset can never be committed by this worker


def test_an_ack_of_an_older_generation_is_refused(installed) -> None:  # noqa: ANN001
    ev = _event(True, 4, 5)
    assert ev.ack() is False and not ev.message.acked


def test_uninstall_restores_faust_own_ack() -> None:
    was = faust_acks.installed()
    faust_acks.install()
    faust_acks.uninstall()
    try:
        assert not faust_acks.installed()
        ev = _event(False, 5, 5)
        assert ev.ack() is True  # faust's own behaviour: the dropped event counts as done
    finally:
        if was:
            faust_acks.install()
