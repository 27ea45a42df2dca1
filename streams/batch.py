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
it, in the steps ``analyze`` runs line by line (:mod:`streams.stream_steps`): the records do not
depend on how the messages were batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeAlias

from models.machine_state import MachineState
from streams.decode import Accepted, Rejection
from streams.processing import Applied, AppliedReset, Outcome, TelemetryProcessor
from streams.state_table import StateTable
from streams.stream_steps import StepKind, StreamSteps
from streams.stream_time import Clock

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
    """What stream time did to a machine between its messages in this batch, for a replay
    (:meth:`~streams.stream_steps.StreamSteps.redo`)."""

    kind: StepKind
    ms: int


# Per machine: its messages applied in this batch and the stream-time steps among them, in order.
_Applied: TypeAlias = dict[str, list["SourceMessage | _StreamStep"]]


class BatchApplier:
    def __init__(self, processor: TelemetryProcessor, table: StateTable, telemetry_topic: str) -> None:
        self.processor = processor
        self.table = table
        self.telemetry_topic = telemetry_topic
        self.steps = StreamSteps(processor)  # stream time: the stops it judges, the silence clock
        # The last batch's outcomes of stream time (stopped machines judged, silent machines
        # ticked): (index of the message whose event time got there, outcome); :meth:`in_order`
        # puts them among the batch's outcomes.
        self.judged: list[tuple[int, Applied]] = []

    def apply(self, messages: Sequence[SourceMessage]) -> list[Outcome]:
        """One outcome per message, in order; the changed states are staged in the table.

        A function of the messages (and the table) alone: each message's event time is judged
        against its own Kafka timestamp, never a clock, so a batch applied again after a restart
        gets the same outcomes.

        After each message, stream time judges stopped machines and ticks silent ones
        (:meth:`~streams.stream_steps.StreamSteps.after_message`); their outcomes are in :attr:`judged`.
        """
        self.judged = []
        steps = self.steps
        resumed, schedule, after_message = steps.resumed, steps.schedule, steps.after_message
        unbelieved = steps.unbelieved
        outcomes: list[Outcome | None] = [None] * len(messages)
        applied: _Applied = {}  # per machine, for a replay
        runs: dict[str, _Run] = {}  # per machine: its readings waiting to be applied together
        batch = _Batch(self, runs, outcomes, applied)
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
            if partition not in resumed:  # before the message: its machine's stored state is read
                self._resume(partition)
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
                if key in unbelieved:  # rarely (StreamSteps.unbelieved); then as analyze does
                    # The stored state's deadline is the one after the run: readings change no stop.
                    state = self.table.load(key)
                    if state is not None:
                        schedule(clock, state)
            else:
                outcome = outcomes[index] = self._apply_one(message, decoded, applied)
                if isinstance(outcome, Applied):
                    schedule(clock, outcome.state)
            batch.index = index
            after_message(clock, key, decoded.newest_ms, batch)
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

    def _resume(self, partition: int) -> None:
        """Resume the partition's clocks from the states the table holds of its machines (after a
        start or a rebalance: once per partition, at its first message)."""
        source = f"{self.telemetry_topic}:{partition}"
        table = self.table
        states = (table.load(raw_key.decode()) for raw_key in list(table.keys()))
        self.steps.resume(
            partition, (state for state in states if state is not None and source in state.applied)
        )

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
            if isinstance(outcome, Applied) and not outcome.duplicate:
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
                    self.steps.redo(step.kind, step.ms, state)
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
            self.steps.schedule((partition, replayed.tenant), replayed)


class _Batch:
    """The machines of a batch being applied, as stream-time steps see them
    (:class:`~streams.stream_steps.StepMachines`): a step's change is staged and kept for a replay,
    and its outcome published after the message at ``index``."""

    __slots__ = ("applied", "applier", "index", "outcomes", "runs")

    def __init__(
        self,
        applier: BatchApplier,
        runs: dict[str, _Run],
        outcomes: list[Outcome | None],
        applied: _Applied,
    ) -> None:
        self.applier = applier
        self.runs = runs
        self.outcomes = outcomes
        self.applied = applied
        self.index = 0  # of the message applied last

    def load(self, key: str) -> MachineState | None:
        return self.applier.table.load(key)

    def settle(self, key: str) -> MachineState | None:
        """The run of the machine's readings still waiting is applied first: those messages came
        before the stream-time step about to be made, as they did in the partition."""
        run = self.runs.pop(key, None)
        if run is not None:
            self.applier._apply_run(run, self.outcomes, self.applied)
        return self.applier.table.load(key)

    def stepped(
        self, clock: Clock, kind: StepKind, ms: int, state: MachineState, outcome: Applied | None
    ) -> None:
        self.applier.table.stage(state, clock[0])
        if outcome is not None:
            self.applier.judged.append((self.index, outcome))
        self.applied.setdefault(state.key, []).append(_StreamStep(kind, ms))

    def reset(self, clock: Clock, state: MachineState, done: list[AppliedReset]) -> None:
        self.applier.table.stage(state, clock[0])
        for reset in done:
            if isinstance(reset.outcome, Applied):  # a Rejection: a bug, logged where it failed
                self.applier.judged.append((self.index, reset.outcome))
        self.applied.setdefault(state.key, []).append(_StreamStep("reset", 0))


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
