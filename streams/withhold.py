"""Withholding a batch's acks, so Faust never commits an offset past a message that was not applied.

Faust's ``Stream.take_events`` acks the batch it yielded in a ``finally``: even when the agent
raised, or was cancelled at shutdown, and the offsets are committed a moment later. A batch whose
records could not be sent (:mod:`streams.outbox`) must instead stay uncommitted, so that the next
start (or the worker that takes the partition over) applies it again.

A message flagged ``acked`` is skipped by Faust's ``Message.ack`` (nothing reaches the consumer's
acked offsets, so the committed offset stays below it) and dropped from the consumer's unacked
set by ``Consumer._clean_unacked_messages`` (so a shutdown's ``wait_empty`` does not wait for it
forever). The consumer must then not go on past the gap in this process: the worker stops
(:func:`streams.app.create_stream`). Except for a batch fenced because the worker lost its
partitions (:mod:`streams.ownership`): that loss is a rebalance, after which Faust seeks every
partition still assigned back to its committed offset, so no gap is left to go past.
tests/unit/test_withhold.py fails when either Faust method changes (faust-streaming is pinned in
constraints.txt).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = ["FAUST_ACK_SHA256", "FAUST_CLEAN_UNACKED_SHA256", "withhold_acks"]

# sha256 of inspect.getsource(faust.types.tuples.Message.ack) and of
# faust.transport.consumer.Consumer._clean_unacked_messages: the behaviour relied on above.
FAUST_ACK_SHA256: Final = "4751b72c4ed84153a7b6c14fdfe41cc92e477b38a6c6089cb785532ef5771688"
FAUST_CLEAN_UNACKED_SHA256: Final = "11be2587e71c9162510ba634577e1da5122d734dfe04e3cb1374cbc884fd3d23"


def withhold_acks(messages: Iterable[Any]) -> None:
    """Make Faust's later ``ack`` of ``messages`` a no-op: their offsets are never committed here."""
    for message in messages:
        message.acked = True
