"""Stream time per partition, and when a machine has been silent long enough to close its windows.

A machine's windows close when its own event time passes their ends. A machine that is switched
off sends nothing, so without help its shift would stay open until it sends again (the next
morning) and its line's records would wait for it. Kafka Streams solves the same problem with
*stream time*: the newest event time seen on a partition. When a partition's stream time is
``close_silent_after_s`` past a machine's own time, the machine is *ticked* to stream time minus
that margin (:meth:`models.machine.MachineEngine.on_tick`): its time is accounted (``unknown``
after ``state_timeout_s``) and its ended windows are emitted.

Stream time is per partition, not per worker: while a worker catches up, one partition can be
hours ahead of another, and ticking a machine from another partition's clock would turn its own
still-unread events into late ones. The check runs every ``check_every_ms`` of stream time, so
its cost does not grow with the event rate.
"""

from __future__ import annotations

__all__ = ["SilenceClock"]


class SilenceClock:
    def __init__(self, close_after_ms: int, check_every_ms: int = 60_000) -> None:
        self.close_after_ms = close_after_ms
        self.check_every_ms = check_every_ms
        self.stream_ms: dict[int, int] = {}  # partition -> newest event time seen
        self._checked_ms: dict[int, int] = {}  # partition -> stream time at its last check

    def observe(self, partition: int, event_ms: int) -> None:
        if event_ms > self.stream_ms.get(partition, event_ms - 1):
            self.stream_ms[partition] = event_ms

    def due(self) -> list[tuple[int, int]]:
        """(partition, tick time) for each partition whose stream time moved a check interval on
        since its last check; a machine of it whose time is before the tick time gets ticked."""
        ticks = []
        for partition, stream_ms in self.stream_ms.items():
            checked = self._checked_ms.get(partition)
            if checked is None or stream_ms - checked >= self.check_every_ms:
                self._checked_ms[partition] = stream_ms
                ticks.append((partition, stream_ms - self.close_after_ms))
        return ticks

    def forget(self) -> None:
        """After a rebalance this worker's partitions may have changed: learn stream time anew."""
        self.stream_ms.clear()
        self._checked_ms.clear()
