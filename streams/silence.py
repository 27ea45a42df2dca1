"""When a machine has been silent long enough on its clock's stream time to close its windows.

A machine's windows close when its own event time passes their ends. A machine that is switched
off sends nothing, so without help its shift would stay open until it sends again (the next
morning) and its line's records would wait for it. Kafka Streams solves the same problem with
*stream time*: the newest event time seen on a partition. When stream time is
``close_silent_after_s`` past a machine's own time, the machine is *ticked* to stream time minus
that margin (:meth:`models.machine.MachineEngine.on_tick`): its time is accounted (``unknown``
after ``state_timeout_s``) and its ended windows are emitted.

Stream time is per partition, not per worker: while a worker catches up, one partition can be
hours ahead of another, and ticking a machine from another partition's clock would turn its own
still-unread events into late ones. It is also per tenant within a partition, for the same
reason: tenants share partitions (a key's hash decides), and one tenant's gateway sending an
hour held back, or a tenant being backfilled, must not be judged on another tenant's live clock.
A *clock* is therefore a (partition, tenant) pair (:mod:`streams.stream_time` keeps its stream time).

Ticks depend only on the partition's message order, never on how the messages were batched: a
clock is checked as each message is applied, and when its stream time enters a new interval of
``check_every_ms`` it ticks its machines to the interval's start minus the margin, right after that
message, in the worker as in ``analyze`` (both run :mod:`streams.stream_steps`). Ticks on a fixed
grid also make a restarted worker tick to times the first run ticked to (or before): the states it
resumes from hold those ticks already. The check's cost does not grow with the event rate.

A restarted worker checks the interval it resumes in once more, at its first message, and ticks
every machine its table holds. A machine that joined the clock during that interval, after the
first run's check of it, waited there for the next interval; its state says so
(``MachineState.silence_interval``: the interval under way when it joined, or the last it was
ticked for), so the restarted worker lets it wait too.
"""

from __future__ import annotations

from models.machine_state import MachineState
from streams.stream_time import Clock

__all__ = ["SilenceClock"]


class SilenceClock:
    def __init__(self, close_after_ms: int, check_every_ms: int = 60_000) -> None:
        self.close_after_ms = close_after_ms
        self.check_every_ms = check_every_ms
        # Where the check interval a clock's stream time was in at its last check ends.
        self._next: dict[Clock, int] = {}
        # The machine keys each clock may tick, in the order they joined (a dict: a set's order
        # would differ from run to run, and so would the order of the records ticks give).
        self.machines: dict[Clock, dict[str, None]] = {}

    def join(self, clock: Clock, key: str) -> bool:
        """The machine is judged on ``clock`` (its messages are on that partition); True when it
        had not joined it before."""
        members = self.machines.get(clock)
        if members is None:
            self.machines[clock] = {key: None}
        elif key not in members:
            members[key] = None
        else:
            return False
        return True

    def mark_joined(self, clock: Clock, state: MachineState) -> bool:
        """Record in the state of a machine that has just joined ``clock`` that the check of the
        interval under way is behind it; True when the state changed (it is to be written).

        Only a machine that check would tick needs it (one that joins behind the clock by more than
        the margin): a machine's time never goes back, so no check of that interval ticks the others.
        """
        end = self._next.get(clock)
        if end is None:
            return False
        interval = end // self.check_every_ms - 1
        if state.silence_interval is not None and state.silence_interval >= interval:
            return False
        cursor = state.cursor_ms
        if cursor is None or cursor >= interval * self.check_every_ms - self.close_after_ms:
            return False
        state.silence_interval = interval
        return True

    def due(self, state: MachineState, tick_ms: int) -> bool:
        """Whether the check that ticks to ``tick_ms`` ticks the machine: it is behind that time,
        and its state has not been through that check (it was not ticked for it, nor joined after it)."""
        cursor = state.cursor_ms
        if cursor is None or cursor >= tick_ms:
            return False  # the usual machine
        decided = state.silence_interval
        return decided is None or decided < (tick_ms + self.close_after_ms) // self.check_every_ms

    def mark_ticked(self, state: MachineState, tick_ms: int) -> None:
        state.silence_interval = (tick_ms + self.close_after_ms) // self.check_every_ms

    def observe(self, clock: Clock, stream_ms: int) -> int | None:
        """A message was applied on ``clock``, whose stream time (:mod:`streams.stream_time`) is now
        ``stream_ms``: the time to tick the clock's machines to, when it has just entered a new
        check interval."""
        end = self._next.get(clock)
        if end is not None and stream_ms < end:
            return None  # the usual case
        interval = stream_ms // self.check_every_ms
        self._next[clock] = (interval + 1) * self.check_every_ms
        return interval * self.check_every_ms - self.close_after_ms

    def resume(self, clock: Clock, stream_ms: int) -> None:
        """Stream time restored after a start (:meth:`streams.stream_steps.StreamSteps.resume`): the check of
        the interval it is in was made when the first run got there, so the next check is the
        next interval's."""
        self._next[clock] = (stream_ms // self.check_every_ms + 1) * self.check_every_ms

    def forget(self) -> None:
        """After a rebalance this worker's partitions may have changed: learn them anew."""
        self._next.clear()
        self.machines.clear()
