"""A rebalance cannot write the states of a batch in flight after ``StateTable.clear()``.

The worker clears its cached and staged states in ``app.on_partitions_revoked`` (streams/app.py).
A batch still inside ``publish_then_write`` (a send retrying in streams.outbox) holds unacked
messages, and Faust sends that signal only after ``consumer.wait_empty()`` (every delivered message
acked, so the batch wrote its states or forgot them) and a producer flush: the batch ends, on the
partitions this worker still holds in the eager protocol, before the clear. Nothing is staged
between the clear and the next assignment (flow is suspended and the agents' queues cleared).
These tests fail when faust changes that order or linepulse turns ``stream_wait_empty`` off.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import faust

import streams.app
from streams.fetch_wait import app_with_fetch_wait


def test_revoked_signal_is_sent_after_every_message_in_flight_is_acked() -> None:
    source = inspect.getsource(faust.App._on_partitions_revoked)
    wait_empty = source.index("self._consumer_wait_empty")
    flush = source.index("self._producer_flush")
    signal = source.index("self.on_partitions_revoked.send")
    assert wait_empty < flush < signal


def test_the_worker_keeps_faust_waiting_for_streams_on_revocation(tmp_path: Path) -> None:
    app = app_with_fetch_wait(0.05, "revocation-order", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert app.conf.stream_wait_empty
    assert "stream_wait_empty" not in inspect.getsource(streams.app)
