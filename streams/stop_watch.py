"""When a stopped machine's stop has lasted ``alerts.down_after_s`` on its clock's stream time.

PLCs often report only state changes: a machine that breaks down sends ``down`` and then nothing
until it runs again. Judged on its own event time, the stop would only be noticed when it is over.
Kafka Streams judges such timeouts on *stream time*, the newest event time seen on the partition,
here of the machine's tenant on it (its *clock*, :mod:`streams.silence`: another tenant's live
traffic must not judge a backfilled tenant's stops): while other machines report, stream time
moves, and when it reaches a stopped machine's deadline (the stop's start plus ``down_after_s``,
:meth:`models.machine.MachineEngine.stop_deadline`), the machine is judged
(:meth:`~models.machine.MachineEngine.on_stream_time`).

Deadlines wait in a heap per clock, so a message costs a comparison with the earliest one;
nothing iterates the worker's machines per message. Stream time is advanced message by message, in
the partition's order, and judged right after the message that moved it, so the alerts do not
depend on how messages were batched: the worker and ``analyze`` (the file as one partition) give
the same records. A deadline is scheduled when a machine's state may have changed (after each of
its messages that is not readings only; after its readings too once its stop came due while its
telemetry was too old to believe it, since a lagging reading can make it believed) and dropped
lazily: when it is due, the machine's state decides. A clock whose stream time stands
still (every machine on it silent) judges nothing; the Prometheus rule ``LinepulseMachineSilent``
covers that.
"""

from __future__ import annotations

import heapq

from streams.stream_time import Clock

__all__ = ["StopWatch"]


class StopWatch:
    def __init__(self) -> None:
        self._heaps: dict[Clock, list[tuple[int, str]]] = {}  # (deadline, machine key)
        self._deadlines: dict[str, int] = {}  # machine key -> its scheduled deadline

    def schedule(self, clock: Clock, key: str, deadline: int | None) -> None:
        """The machine's stop becomes an alert at ``deadline`` (None: it is not stopped, or alerted)."""
        if deadline is None:
            self._deadlines.pop(key, None)  # its heap entry is dropped when it comes up
            return
        if self._deadlines.get(key) == deadline:
            return
        self._deadlines[key] = deadline
        heapq.heappush(self._heaps.setdefault(clock, []), (deadline, key))

    def due(self, clock: Clock, stream_ms: int) -> list[str]:
        """A message of ``clock`` was applied, whose stream time (:mod:`streams.stream_time`) is
        now ``stream_ms``: the machines whose deadline it has reached (each returned once per
        schedule). Checked at every message, not only those that move stream time: a machine's own
        message may schedule a stop whose deadline stream time has already passed."""
        heap = self._heaps.get(clock)
        if not heap or heap[0][0] > stream_ms:
            return []  # the usual case
        due = []
        while heap and heap[0][0] <= stream_ms:
            deadline, key = heapq.heappop(heap)
            if self._deadlines.get(key) == deadline:  # else rescheduled or dropped since
                del self._deadlines[key]
                due.append(key)
        return due

    def forget(self) -> None:
        """After a rebalance this worker's partitions may have changed: learn them anew."""
        self._heaps.clear()
        self._deadlines.clear()
