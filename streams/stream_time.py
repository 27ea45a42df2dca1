"""Stream time: the newest event time applied on each clock, a (partition, tenant) pair.

Kafka Streams judges timeouts on the newest event time seen on a partition rather than on a wall
clock. Here it is kept per partition and tenant (tenants share partitions, and one tenant's held-back
or backfilled telemetry must not be judged on another's live clock: :mod:`streams.silence`). Two
things are judged on it, each right after the message that moved it: stopped machines
(:mod:`streams.stop_watch`) and silent machines (:mod:`streams.silence`). This is the one record of
it both read, advanced once per message by :mod:`streams.stream_steps`, in the worker and ``analyze``.

Stream time never goes back. It is not stored: after a start or a rebalance each clock resumes
from the newest event time of its machines' states (:meth:`streams.stream_steps.StreamSteps.resume`), which is
where the first run had it.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["Clock", "StreamTime"]

Clock: TypeAlias = tuple[int, str]  # (partition, tenant): whose stream time a machine is judged on


class StreamTime:
    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms: dict[Clock, int] = {}  # newest event time applied

    def advance(self, clock: Clock, event_ms: int) -> int:
        """The clock's stream time once a message with newest event time ``event_ms`` is applied."""
        stream = self.ms.get(clock)
        if stream is not None and event_ms <= stream:
            return stream
        self.ms[clock] = event_ms
        return event_ms

    def forget(self) -> None:
        """After a rebalance this worker's partitions may have changed: learn stream time anew."""
        self.ms.clear()
