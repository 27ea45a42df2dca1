"""A batch of telemetry messages applied to the machine states, each changed state staged once.

The Faust agent hands a batch here, then publishes the outcomes' records and writes the staged
states (:mod:`streams.app`). A processing error (a bug, not bad input) leaves its machine's state
half-changed; the machine is then rebuilt from the table's state and the batch's earlier messages
of that machine, with what stream time did to it between them (silence ticks, a stop judged), so
the batch ends with exactly the effects of the messages that succeeded and of the stream time they
made.

Consecutive messages of one machine that carry only readings (frames, ``samples`` records,
``sensor`` events) are applied together, in one engine call
(:meth:`~streams.processing.TelemetryProcessor.process_samples`), so each signal's statistics
take the run in one kernel call instead of one per message. The outcomes are the same as one by
one, message by message:
any other message of that machine (a state change, a count, ...) ends the run first, duplicates
are still skipped by offset, and a failing run is applied again one by one. A run that reaches
:data:`RUN_READINGS` readings is applied at once and the next message starts another (for cache
locality; the same outcomes, as any split of a run gives).

Stream time (:mod:`streams.stream_time`) moves message by message, in the partition's order, and
what it does (a stop judged, silent machines ticked) happens right after the message that moved
it, exactly as ``analyze`` does it line by line: the records do not depend on how the messages
were batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeAlias

from models.machine import MachineState
from streams.decode import Accepted, Rejection
from streams.processing import Applied, Outcome, TelemetryProcessor
from streams.silence import SilenceClock
from streams.state_table import StateTable
from streams.stop_watch import StopWatch
from streams.stream_time import Clock, StreamTime

__all__ = ["RUN_READINGS", "BatchApplier", "SourceMessage", "kafka_timestamp_ms"]

# A run is applied once it holds this many readings (a 5,000-reading frame: 7 frames), while the
# payloads it reads (16 bytes a reading) and the joined copies its kernels make of them (as much
# again) still fit in the core's 2 MB L2 cache. Uncapped, a batch of ~250 such frames made runs of
# ~50 frames per machine: each signal's joins were evicted before its monitor read them, and the
# same apply path cost ~25 % more (in one process, batches of 250; docs/drift-and-spc.md, "Speed").
RUN_READINGS: Final = 32_768


class SourceMessage(Protocol):
    """What is read of a consumed message (faust's ``Message`` has these attributes)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def timestamp(self) -> float | None:
        """The Kafka timestamp in seconds (Faust's unit): CreateTime or LogAppendTime."""


@dataclass(slots=True)
class _Run:
    """Consecutive readings-only messages of one machine from one source partition, not yet applied."""

    source: str
    indices: list[int] = field(default_factory=list)
    messages: list[SourceMessage] = field(default_factory=list)
    decoded: list[Accepted] = field(default_factory=list)
    readings: int = 0


@dataclass(frozen=True, slots=True)
class _StreamStep:
    """What stream time did to a machine between its messages in this batch, for a replay: ticked
    it to ``ms`` (``tick``), judged its stop at stream time ``ms`` (``stop``), recorded the
    check interval ``ms`` it joined its clock in (``join``), or applied its waiting baseline
    resets that were due (``reset``, ``ms`` unused)."""

    kind: Literal["tick", "stop", "join", "reset"]
    ms: int


# Per machine: its messages applied in this batch and the stream-time steps among them, in order.
_Applied: TypeAlias = dict[str, list["SourceMessage | _StreamStep"]]


class BatchApplier:
    def __init__(self, processor: TelemetryProcessor, table: StateTable, telemetry_topic: str) -> None:
        self.processor = processor
        self.table = table
        self.telemetry_topic = telemetry_topic
        close_after = processor.plant.close_silent_after_s
        self.silence = None if close_after is None else SilenceClock(int(close_after * 1000))
        self.stream_time = StreamTime()  # what the stop watch and the silence clock judge on
        self.stops = StopWatch()
        # The last batch's outcomes of stream time (stopped machines judged, silent machines
        # ticked): (index of the message whose event time got there, outcome); :meth:`in_order`
        # puts them among the batch's outcomes.
        self.judged: list[tuple[int, Applied]] = []

    def apply(self, messages: Sequence[SourceMessage]) -> list[Outcome]:
        """One outcome per message, in order; the changed states are staged in the table.

        A function of the messages (and the table) alone: each message's event time is judged
        against its own Kafka timestamp, never a clock, so a batch applied again after a restart
        gets the same outcomes.

        Stopped machines whose stop their clock's stream time has made an alert are judged after
        the message that moved it there (:mod:`streams.stop_watch`), and silent machines ticked
        (:mod:`streams.silence`); their outcomes are in :attr:`judged`.
        """
        self.judged = []
        stream_time, stops, silence = self.stream_time, self.stops, self.silence
        outcomes: list[Outcome | None] = [None] * len(messages)
        applied: _Applied = {}  # per machine, for a replay
        runs: dict[str, _Run] = {}  # per machine: its readings waiting to be applied together
        for index, message in enumerate(messages):
            decoded = self.processor.decode(
                message.key, message.value, timestamp_ms=kafka_timestamp_ms(message)
            )
            if isinstance(decoded, Rejection):
                outcomes[index] = decoded  # nothing was applied: no state to rebuild
                continue
            key, source = decoded.spec.key, _source(message)
            partition = message.partition
            clock = (partition, decoded.spec.tenant)
            if not stops.seeded(partition):  # before the message: its machine's stored state is read
                self._seed_stops(partition)
            samples = self.processor.is_samples(decoded)
            run = runs.get(key)
            if run is not None and (not samples or run.source != source):
                self._apply_run(runs.pop(key), outcomes, applied)
                run = None
            if samples:
                if run is None:
                    run = runs[key] = _Run(source)
                run.indices.append(index)
                run.messages.append(message)
                run.decoded.append(decoded)
                run.readings += self.processor.readings(decoded)
                if run.readings >= RUN_READINGS:
                    self._apply_run(runs.pop(key), outcomes, applied)
            else:
                outcome = outcomes[index] = self._apply_one(message, decoded, applied)
                if isinstance(outcome, Applied):  # readings only never change a stop
                    stops.schedule(clock, key, self.processor.stop_deadline(outcome.state))
            # Duplicates too: after a restart, re-read messages rebuild the stream time they made.
            stream_ms = stream_time.advance(clock, decoded.newest_ms)
            due = stops.due(clock, stream_ms)
            if due:  # rarely: the usual message costs the calls here (~0.5 us with the silence clock's)
                self._judge_stops(clock, stream_ms, due, index, runs, outcomes, applied)
            if silence is not None:
                if silence.join(clock, key):  # once per machine and clock, after a start
                    self._join_silence(clock, key, runs, outcomes, applied)
                tick_ms = silence.observe(clock, stream_ms)
                if tick_ms is not None:  # once a minute of the clock's stream time
                    self._tick_silent(clock, tick_ms, index, runs, outcomes, applied)
            # Last, as `analyze` applies its resets after a line's stream-time steps.
            state = self.table.load(key)
            if (
                state is not None
                and state.pending_resets
                and state.pending_resets[0].at_ms <= decoded.newest_ms
            ):
                self._apply_due_resets(clock, key, index, runs, outcomes, applied)
        for run in runs.values():
            self._apply_run(run, outcomes, applied)
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    def in_order(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """The batch's outcomes with the stream-time judgements (:attr:`judged`) of the last
        :meth:`apply` each after the message that caused it: the order the records are published in."""
        if not self.judged:
            return list(outcomes)
        merged: list[Outcome] = []
        judged = iter(self.judged)
        upcoming = next(judged, None)
        for index, outcome in enumerate(outcomes):
            merged.append(outcome)
            while upcoming is not None and upcoming[0] == index:
                merged.append(upcoming[1])
                upcoming = next(judged, None)
        return merged

    def _judge_stops(
        self,
        clock: Clock,
        stream_ms: int,
        due: list[str],
        index: int,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        """Judge the machines the clock's stream time made due (:mod:`streams.stop_watch`)."""
        for key in due:
            state = self._after_waiting_run(key, runs, outcomes, applied)
            if state is None:
                continue
            outcome = self.processor.process_stream_time(state, stream_ms)
            if outcome is not None:
                self.table.stage(outcome.state, clock[0])
                self.judged.append((index, outcome))
                applied.setdefault(key, []).append(_StreamStep("stop", stream_ms))

    def _after_waiting_run(
        self,
        key: str,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> MachineState | None:
        """The machine's state once the run of its readings waiting in ``runs`` is applied: they
        come before the judgement about to be made, as they did in the partition."""
        run = runs.pop(key, None)
        if run is not None:
            self._apply_run(run, outcomes, applied)
        return self.table.load(key)

    def _tick_silent(
        self,
        clock: Clock,
        tick_ms: int,
        index: int,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        """Tick the clock's machines whose time is before ``tick_ms`` (:mod:`streams.silence`)."""
        silence = self.silence
        assert silence is not None
        for key in silence.machines.get(clock, ()):
            state = self.table.load(key)
            if state is None or not silence.due(state, tick_ms):
                continue  # the usual machine: a run of its own waiting cannot take it back
            if key in runs:
                state = self._after_waiting_run(key, runs, outcomes, applied)
                if state is None:
                    continue
            outcome = self.processor.process_tick(state, tick_ms)
            if outcome is not None:
                silence.mark_ticked(outcome.state, tick_ms)
                self.table.stage(outcome.state, clock[0])
                self.judged.append((index, outcome))
                applied.setdefault(key, []).append(_StreamStep("tick", tick_ms))

    def _join_silence(
        self,
        clock: Clock,
        key: str,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        """A machine's first message on ``clock`` since the start: its state records the check
        interval under way (:meth:`~streams.silence.SilenceClock.mark_joined`), written with the
        message's effects so that a restart at any later message knows it."""
        assert self.silence is not None
        state = self._after_waiting_run(key, runs, outcomes, applied)  # once per machine
        if state is not None and self.silence.mark_joined(clock, state):
            self.table.stage(state, clock[0])
            assert state.silence_interval is not None
            applied.setdefault(key, []).append(_StreamStep("join", state.silence_interval))

    def _apply_due_resets(
        self,
        clock: Clock,
        key: str,
        index: int,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        """Apply the machine's waiting baseline resets (``baseline reset --at``) that its telemetry,
        up to and with message ``index``, has reached (:mod:`models.pending_resets`)."""
        state = self._after_waiting_run(key, runs, outcomes, applied)
        if state is None:
            return
        done = self.processor.apply_due_resets(state)
        if not done:
            return  # the message was a duplicate, or failed, or its event times were not the newest
        self.table.stage(state, clock[0])
        applied.setdefault(key, []).append(_StreamStep("reset", 0))
        for reset in done:
            if isinstance(reset.outcome, Applied):  # a Rejection: a bug, logged where it failed
                self.judged.append((index, reset.outcome))

    def _seed_stops(self, partition: int) -> None:
        """Schedule the stops of the partition's machines the table holds, let its clocks tick
        them, and resume each clock's stream time where the states say it was (after a start or a
        rebalance: once per partition, at its first message).

        Stream time is not stored, but it is the newest event time applied on the clock, which the
        machines' states keep: without it a restart whose first message is a lagging gateway's
        would judge stops and silence on a clock hours behind the one the first run had reached."""
        self.stops.mark_seeded(partition)
        source = f"{self.telemetry_topic}:{partition}"
        for raw_key in list(self.table.keys()):
            state = self.table.load(raw_key.decode())
            if state is not None and source in state.applied:
                clock = (partition, state.tenant)
                self.stops.schedule(clock, state.key, self.processor.stop_deadline(state))
                if state.last_seen_ms is not None:
                    self.stream_time.advance(clock, state.last_seen_ms)
                if self.silence is not None:
                    self.silence.join(clock, state.key)
        if self.silence is not None:
            for clock, stream_ms in self.stream_time.ms.items():
                if clock[0] == partition:
                    # The first run checked the interval this time is in when it got there.
                    self.silence.resume(clock, stream_ms)

    def _apply_run(
        self,
        run: _Run,
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        key = run.decoded[0].spec.key
        offsets = [message.offset for message in run.messages]
        try:
            results = self.processor.process_samples(
                list(zip(run.decoded, offsets, strict=True)), load_state=self.table.load, source=run.source
            )
        except Exception:
            # A bug, not bad input, and the state is half-changed: rebuild it, then apply the run
            # one by one, which dead-letters only the failing message (and logs why).
            self._replay(key, applied.get(key, ()), run.messages[0].partition)
            for index, message, decoded in zip(run.indices, run.messages, run.decoded, strict=True):
                outcomes[index] = self._apply_one(message, decoded, applied)
            return
        for index, message, outcome in zip(run.indices, run.messages, results, strict=True):
            if not outcome.duplicate:
                self.table.stage(outcome.state, message.partition)
                applied.setdefault(key, []).append(message)
            outcomes[index] = outcome

    def _apply_one(
        self,
        message: SourceMessage,
        decoded: Accepted,
        applied: _Applied,
    ) -> Outcome:
        outcome = self.processor.process_decoded(
            decoded, load_state=self.table.load, source=_source(message), offset=message.offset
        )
        if isinstance(outcome, Rejection):
            if outcome.machine_key is not None:
                key = outcome.machine_key
                self._replay(key, applied.get(key, ()), message.partition)
        elif not outcome.duplicate:
            self.table.stage(outcome.state, message.partition)
            applied.setdefault(outcome.state.key, []).append(message)
        return outcome

    def _apply(self, message: SourceMessage) -> Outcome:
        return self.processor.process(
            message.key,
            message.value,
            timestamp_ms=kafka_timestamp_ms(message),
            load_state=self.table.load,
            source=_source(message),
            offset=message.offset,
        )

    def _replay(self, key: str, steps: Sequence[SourceMessage | _StreamStep], partition: int) -> None:
        # The engine is deterministic: the same messages and stream-time steps give the same state
        # and the same records (those are already among the batch's outcomes, so the replay's are
        # dropped).
        self.table.forget(key)
        for step in steps:
            if isinstance(step, _StreamStep):
                state = self.table.load(key)
                if state is not None:
                    self._redo(step, state)
                    self.table.stage(state, partition)
                continue
            outcome = self._apply(step)
            if isinstance(outcome, Applied) and not outcome.duplicate:
                self.table.stage(outcome.state, step.partition)
            elif isinstance(outcome, Rejection):
                self.table.forget(key)
        # The watch may have dropped or moved the machine's deadline since (a stop judged, the
        # failing message): schedule the rebuilt state's.
        replayed = self.table.load(key)
        if replayed is not None:
            self.stops.schedule((partition, replayed.tenant), key, self.processor.stop_deadline(replayed))

    def _redo(self, step: _StreamStep, state: MachineState) -> None:
        if step.kind == "tick":
            assert self.silence is not None
            if self.processor.process_tick(state, step.ms) is not None:
                self.silence.mark_ticked(state, step.ms)
        elif step.kind == "stop":
            self.processor.process_stream_time(state, step.ms)
        elif step.kind == "reset":
            self.processor.apply_due_resets(state)
        else:
            state.silence_interval = step.ms


def _source(message: SourceMessage) -> str:
    return f"{message.topic}:{message.partition}"


def kafka_timestamp_ms(message: SourceMessage) -> int | None:
    """The message's Kafka timestamp in epoch milliseconds, or None if it has none.

    Faust hands it over in seconds (the broker's milliseconds / 1000, so rounding gives them back
    exactly); a record without one (message format v0) has None or -1.
    """
    seconds = message.timestamp
    if seconds is None or seconds < 0:
        return None
    return round(seconds * 1000)
