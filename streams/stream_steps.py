"""What stream time does after each message: the one sequence the worker and ``analyze`` both run.

After a message of a machine on a clock (:mod:`streams.stream_time`), in this order: the clock's
stream time advances to the message's newest event time; the stopped machines whose deadline it
reached are judged (:mod:`streams.stop_watch`); the machine joins the clock's silence check
(:mod:`streams.silence`), recording the check interval under way when that is its first message
there; and when stream time has entered a new check interval, the clock's silent machines are
ticked; last, the machine's waiting baseline resets (``baseline reset --at``) that its telemetry
has reached are applied (:mod:`models.pending_resets`). The worker (:mod:`streams.batch`) and
``analyze`` (:mod:`service.analyze`) both call :meth:`StreamSteps.after_message`, so their records
cannot come to differ by the order of these steps. What each does with a step's effects (stage
it, write its records) is theirs (:class:`StepMachines`).

A restarted worker resumes the clocks of a partition from the machine states it holds
(:meth:`StreamSteps.resume`): stream time is not stored, but the states keep the newest event time
applied on each clock, which is where the first run had it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol, TypeAlias

from models.machine_state import MachineState
from streams.processing import Applied, AppliedReset, TelemetryProcessor
from streams.silence import SilenceClock
from streams.stop_watch import StopWatch
from streams.stream_time import Clock, StreamTime

__all__ = ["StepKind", "StepMachines", "StreamSteps"]

# Ticked to a time (``tick``), stop judged at a stream time (``stop``), check interval recorded on
# joining a clock (``join``), waiting baseline resets applied (``reset``; its ``ms`` unused).
StepKind: TypeAlias = Literal["tick", "stop", "join", "reset"]


class StepMachines(Protocol):
    """The machine states the steps read and change, as the caller keeps them."""

    def load(self, key: str) -> MachineState | None:
        """The machine's state as applied so far (None: none, or dropped after a processing error)."""

    def settle(self, key: str) -> MachineState | None:
        """Its state once what of its own messages is still waiting to be applied (a worker's run
        of readings) is applied: they came before the step about to change it."""

    def stepped(
        self, clock: Clock, kind: StepKind, ms: int, state: MachineState, outcome: Applied | None
    ) -> None:
        """A step changed ``state``: its outcome (records), if any, comes right after the message."""

    def reset(self, clock: Clock, state: MachineState, done: list[AppliedReset]) -> None:
        """Waiting baseline resets were applied to ``state`` (step ``reset``); their outcomes'
        records come right after the message."""


class StreamSteps:
    """Stream time per clock, the stops it judges and the silence clock it ticks (None: off)."""

    __slots__ = ("processor", "resumed", "silence", "stops", "stream_time", "unbelieved")

    def __init__(self, processor: TelemetryProcessor) -> None:
        self.processor = processor
        close_after = processor.plant.close_silent_after_s
        self.silence = None if close_after is None else SilenceClock(int(close_after * 1000))
        self.stream_time = StreamTime()
        self.stops = StopWatch()
        # The partitions whose clocks :meth:`resume` has resumed since the start or the last rebalance.
        self.resumed: set[int] = set()
        # Machines whose stop came due without an alert, its state not believed then (the machine's
        # telemetry was older than state_timeout_s): a lagging reading can make it believed, so the
        # worker schedules their stop again after their readings too, as after any other message
        # (readings change no deadline, so the other machines' readings need not).
        self.unbelieved: set[str] = set()

    def schedule(self, clock: Clock, state: MachineState) -> None:
        """The machine's state may have changed its stop: judge it when its deadline comes."""
        self.unbelieved.discard(state.key)
        self.stops.schedule(clock, state.key, self.processor.stop_deadline(state))

    def after_message(self, clock: Clock, key: str, newest_ms: int, machines: StepMachines) -> None:
        """A message of machine ``key`` with newest event time ``newest_ms`` was applied on ``clock``
        (or failed in processing: its event time is valid and still moves stream time).

        Duplicates too: after a restart, re-read messages rebuild the stream time they made."""
        stream_ms = self.stream_time.advance(clock, newest_ms)
        due = self.stops.due(clock, stream_ms)
        if due:  # rarely: the usual message costs the calls here (~0.5 us with the silence clock's)
            self._judge_stops(clock, stream_ms, due, machines)
        silence = self.silence
        if silence is not None:
            if silence.join(clock, key):  # once per machine and clock, after a start
                self._join_silence(silence, clock, key, machines)
            tick_ms = silence.observe(clock, stream_ms)
            if tick_ms is not None:  # once a minute of the clock's stream time
                self._tick_silent(silence, clock, tick_ms, machines)
        state = machines.load(key)
        if state is not None and state.pending_resets and state.pending_resets[0].at_ms <= newest_ms:
            self._apply_resets(clock, key, machines)

    def _judge_stops(self, clock: Clock, stream_ms: int, due: list[str], machines: StepMachines) -> None:
        for key in due:
            state = machines.settle(key)
            if state is None:
                continue
            outcome = self.processor.process_stream_time(state, stream_ms)
            if outcome is not None:
                machines.stepped(clock, "stop", stream_ms, outcome.state, outcome)
            else:
                self.unbelieved.add(key)

    def _join_silence(self, silence: SilenceClock, clock: Clock, key: str, machines: StepMachines) -> None:
        """The machine's state records the check interval under way (written with the message's
        effects, so that a restart at any later message knows it)."""
        state = machines.settle(key)
        if state is not None and silence.mark_joined(clock, state):
            assert state.silence_interval is not None
            machines.stepped(clock, "join", state.silence_interval, state, None)

    def _tick_silent(self, silence: SilenceClock, clock: Clock, tick_ms: int, machines: StepMachines) -> None:
        """Tick the clock's machines whose time is before ``tick_ms``."""
        for key in silence.machines.get(clock, ()):
            state = machines.load(key)
            if state is None or not silence.due(state, tick_ms):
                continue  # the usual machine: readings of its own waiting cannot take it back
            state = machines.settle(key)
            if state is None:
                continue
            outcome = self.processor.process_tick(state, tick_ms)
            if outcome is not None:
                silence.mark_ticked(outcome.state, tick_ms)
                machines.stepped(clock, "tick", tick_ms, outcome.state, outcome)

    def _apply_resets(self, clock: Clock, key: str, machines: StepMachines) -> None:
        """The machine's waiting resets its telemetry, up to and with this message, has reached."""
        state = machines.settle(key)
        if state is None:
            return
        done = self.processor.apply_due_resets(state)
        if done:  # none: the message was a duplicate, or its event times were not the machine's newest
            machines.reset(clock, state, done)

    def redo(self, kind: StepKind, ms: int, state: MachineState) -> None:
        """Apply a step again to a machine rebuilt after a processing error (its records dropped:
        they were published the first time)."""
        if kind == "tick":
            assert self.silence is not None
            if self.processor.process_tick(state, ms) is not None:
                self.silence.mark_ticked(state, ms)
        elif kind == "stop":
            self.processor.process_stream_time(state, ms)
        elif kind == "reset":
            self.processor.apply_due_resets(state, announce=False)
        else:
            state.silence_interval = ms

    def resume(self, partition: int, states: Iterable[MachineState]) -> None:
        """After a start or a rebalance, before the partition's first message is judged: schedule
        the stops of its machines (``states``), let its clocks tick them, and resume each clock's
        stream time where the states say it was.

        Without it a restart whose first message is a lagging gateway's would judge stops and
        silence on a clock hours behind the one the first run had reached."""
        self.resumed.add(partition)
        for state in states:
            clock = (partition, state.tenant)
            self.schedule(clock, state)
            if state.last_seen_ms is not None:
                self.stream_time.advance(clock, state.last_seen_ms)
            if self.silence is not None:
                self.silence.join(clock, state.key)
        if self.silence is not None:
            for clock, stream_ms in self.stream_time.ms.items():
                if clock[0] == partition:
                    # The first run checked the interval this time is in when it got there.
                    self.silence.resume(clock, stream_ms)

    def forget(self) -> None:
        """After a rebalance this worker's partitions may have changed: learn them anew."""
        self.resumed.clear()
        self.unbelieved.clear()
        self.stream_time.forget()
        self.stops.forget()
        if self.silence is not None:
            self.silence.forget()
