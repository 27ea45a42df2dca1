"""streams.withhold relies on two Faust methods: when faust changes them, review it."""

from __future__ import annotations

import hashlib
import inspect

from faust.transport.consumer import Consumer
from faust.types.tuples import Message

from streams.withhold import FAUST_ACK_SHA256, FAUST_CLEAN_UNACKED_SHA256, withhold_acks


def _sha(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()  # type: ignore[arg-type]


def test_faust_ack_and_unacked_cleanup_are_the_ones_relied_on() -> None:
    assert _sha(Message.ack) == FAUST_ACK_SHA256
    assert _sha(Consumer._clean_unacked_messages) == FAUST_CLEAN_UNACKED_SHA256


def test_a_withheld_message_is_never_acked_to_the_consumer() -> None:
    message = Message("telemetry", 0, 41, 0.0, 0, None, b"k", b"v", None)
    withhold_acks([message])
    acked: list[Message] = []

    class Recording:
        def ack(self, message: Message) -> bool:
            acked.append(message)
            return True

    assert message.ack(Recording()) is False  # type: ignore[arg-type]
    assert acked == []
