"""The machines this worker currently owns, as the latest in-memory state: read by /metrics and pages.

Per-machine values are read at scrape time from here (the Prometheus custom-collector pattern)
instead of being pushed into gauges per event, which keeps the hot path free of metric updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from models.machine import MachineState

__all__ = ["LiveMachines"]


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
