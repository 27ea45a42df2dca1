"""A batch of telemetry messages applied to the machine states, each changed state staged once.

The Faust agent hands a batch here, then publishes the outcomes' records and writes the staged
states (:mod:`streams.app`). A processing error (a bug, not bad input) leaves its machine's state
half-changed; the machine is then rebuilt from the table's state and the batch's earlier messages
of that machine, so the batch ends with exactly the effects of the messages that succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.decode import Rejection
from streams.processing import Applied, Outcome, TelemetryProcessor
from streams.silence import SilenceClock
from streams.state_table import StateTable

__all__ = ["BatchApplier", "SourceMessage"]


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


class BatchApplier:
    def __init__(self, processor: TelemetryProcessor, table: StateTable, telemetry_topic: str) -> None:
        self.processor = processor
        self.table = table
        self.telemetry_topic = telemetry_topic
        close_after = processor.plant.close_silent_after_s
        self.silence = None if close_after is None else SilenceClock(int(close_after * 1000))

    def apply(self, messages: Sequence[SourceMessage], now_ms: int) -> list[Outcome]:
        """One outcome per message, in order; the changed states are staged in the table."""
        outcomes: list[Outcome] = []
        applied: dict[str, list[SourceMessage]] = {}  # per machine, for a replay
        for message in messages:
            outcome = self._apply(message, now_ms)
            if isinstance(outcome, Rejection):
                if outcome.machine_key is not None:
                    self._replay(outcome.machine_key, applied.get(outcome.machine_key, ()), now_ms)
            elif not outcome.duplicate:
                self.table.stage(outcome.state, message.partition)
                applied.setdefault(outcome.state.key, []).append(message)
                if self.silence is not None and outcome.newest_ms is not None:
                    self.silence.observe(message.partition, outcome.newest_ms)
            outcomes.append(outcome)
        return outcomes

    def tick_silent(self) -> list[Applied]:
        """Tick the machines that stream time left silent (:mod:`streams.silence`); their changed
        states are staged and the windows they close come back as outcomes to publish."""
        if self.silence is None:
            return []
        due = self.silence.due()
        if not due:
            return []
        ticked: list[Applied] = []
        sources = {f"{self.telemetry_topic}:{partition}": (partition, tick_ms) for partition, tick_ms in due}
        for raw_key in list(self.table.keys()):
            state = self.table.load(raw_key.decode())
            if state is None:
                continue
            for source, (partition, tick_ms) in sources.items():
                if source in state.applied:  # the machine's telemetry partition
                    outcome = self.processor.process_tick(state, tick_ms)
                    if outcome is not None:
                        self.table.stage(outcome.state, partition)
                        ticked.append(outcome)
                    break
        return ticked

    def _apply(self, message: SourceMessage, now_ms: int) -> Outcome:
        return self.processor.process(
            message.key,
            message.value,
            now_ms=now_ms,
            load_state=self.table.load,
            source=f"{message.topic}:{message.partition}",
            offset=message.offset,
        )

    def _replay(self, key: str, messages: Sequence[SourceMessage], now_ms: int) -> None:
        # The engine is deterministic: the same messages give the same state and the same records
        # (those are already among the batch's outcomes, so the replay's are dropped).
        self.table.forget(key)
        for message in messages:
            outcome = self._apply(message, now_ms)
            if isinstance(outcome, Applied) and not outcome.duplicate:
                self.table.stage(outcome.state, message.partition)
            elif isinstance(outcome, Rejection):
                self.table.forget(key)
