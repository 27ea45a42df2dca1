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
    def __init__(self, processor: TelemetryProcessor, table: StateTable) -> None:
        self.processor = processor
        self.table = table

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
            outcomes.append(outcome)
        return outcomes

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
