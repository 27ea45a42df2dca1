"""The machines this worker currently owns, as the latest in-memory state: read by /metrics and pages.

Per-machine values are read at scrape time from here (the Prometheus custom-collector pattern)
instead of being pushed into gauges per event, which keeps the hot path free of metric updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from models.machine import MachineState
from streams.records import LineKpiRecord

__all__ = ["LiveLines", "LiveMachines"]


class LiveMachines:
    def __init__(self) -> None:
        self._states: dict[str, MachineState] = {}

    def update(self, state: MachineState) -> None:
        self._states[state.key] = state

    def forget_all(self) -> None:
        """Called on rebalance: machines on revoked partitions now belong to another worker."""
        self._states.clear()

    def __contains__(self, key: str) -> bool:
        return key in self._states

    def __iter__(self) -> Iterator[MachineState]:
        return iter(
            sorted(self._states.values(), key=lambda state: (state.tenant, state.line, state.machine))
        )

    def __len__(self) -> int:
        return len(self._states)


class LiveLines:
    """The newest line record per line and window kind, for the lines this worker folds."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str], LineKpiRecord] = {}

    def update(self, record: LineKpiRecord) -> None:
        key = (record.tenant, record.line, record.window)
        current = self._records.get(key)
        if current is None or (record.start_ms, record.revision) >= (current.start_ms, current.revision):
            self._records[key] = record

    def forget_all(self) -> None:
        self._records.clear()

    def __iter__(self) -> Iterator[LineKpiRecord]:
        return iter(sorted(self._records.values(), key=lambda r: (r.tenant, r.line, r.window)))
