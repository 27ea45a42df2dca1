"""The machines this worker currently owns, as the latest in-memory state: read by /metrics and pages.

Per-machine values are read at scrape time from here (the Prometheus custom-collector pattern)
instead of being pushed into gauges per event, which keeps the hot path free of metric updates.

Only machines of the plant configuration are kept: a machine removed from the plant file keeps its
state in the machine-state table (a re-added machine goes on from it), but a restarted worker must
not export it, frozen, from there forever (its silence alert would never end).

Each machine also remembers when (wall clock) this worker last received an event that moved its
event time, so pages can tell "no data for X seconds" from "a replay far behind the wall clock"
(:mod:`service.web.staleness`), and its :class:`Counters` as of its newest state on the changelog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from models import signal_stats
from models.machine_state import LifetimeTotals, MachineState
from streams.lines import supersedes
from streams.records import LineKpiRecord
from streams.state_table import StateTable

__all__ = ["Counters", "LiveLines", "LiveMachines", "Receipt", "show_recovered_machines"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """When this worker got a machine's newest event time ``last_seen_ms`` (epoch ms)."""

    last_seen_ms: int | None
    received_ms: int  # wall clock when it was applied, or when the state was recovered
    recovered: bool  # from the table at start or rebalance; nothing received since


@dataclass(frozen=True, slots=True)
class Counters:
    """A machine's ever-rising figures (lifetime totals, readings per signal) as of the state this
    worker last wrote to the changelog or recovered from it: what Prometheus counters and the API's
    totals show.

    The state object itself is the working copy: the next batch changes it before that batch's
    changelog write is acknowledged, and a ``kill -9`` then restores the state before it. A counter
    read from the working copy would go back after the restart, which ``rate()`` reads as a reset:
    a spike of the machine's whole total on a units-per-minute graph."""

    totals: LifetimeTotals
    signal_readings: Mapping[str, int]

    @classmethod
    def of(cls, state: MachineState) -> Counters:
        readings = {name: int(vector[signal_stats.COUNT]) for name, vector in state.signals.items()}
        return cls(replace(state.totals), readings)


class LiveMachines:
    def __init__(self, configured: Collection[str], clock: Callable[[], float] = time.time) -> None:
        """``configured``: the plant's machine keys (``tenant/machine``); others are never shown."""
        self._configured = frozenset(configured)
        self._clock = clock
        self._states: dict[str, MachineState] = {}
        self._receipts: dict[str, Receipt] = {}
        self._counters: dict[str, Counters] = {}

    def is_configured(self, key: str) -> bool:
        return key in self._configured

    def update(self, state: MachineState) -> None:
        """A state this worker applied (or ticked) and whose changelog record the broker acknowledged:
        shown, its receipt moved if its event time did."""
        if state.key not in self._configured:
            return
        self._states[state.key] = state
        self._counters[state.key] = Counters.of(state)
        receipt = self._receipts.get(state.key)
        # A tick (stream time) changes the state but brings no data: the receipt stays.
        if receipt is None or state.last_seen_ms != receipt.last_seen_ms:
            self._receipts[state.key] = Receipt(state.last_seen_ms, self._now_ms(), recovered=False)

    def show_recovered(self, state: MachineState) -> bool:
        """Show a state recovered from the table that this worker has not shown yet; False when
        its machine is not configured (it stays in the table, unshown)."""
        if state.key not in self._configured:
            return False
        if state.key not in self._states:
            self._states[state.key] = state
            self._counters[state.key] = Counters.of(state)
            self._receipts[state.key] = Receipt(state.last_seen_ms, self._now_ms(), recovered=True)
        return True

    def receipt(self, key: str) -> Receipt | None:
        return self._receipts.get(key)

    def counters(self, key: str) -> Counters:
        """The counters of a shown machine (:class:`Counters`: why not its state's own)."""
        return self._counters[key]

    def forget_all(self) -> None:
        """Called on rebalance: machines on revoked partitions now belong to another worker."""
        self._states.clear()
        self._receipts.clear()
        self._counters.clear()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __contains__(self, key: str) -> bool:
        return key in self._states

    def __iter__(self) -> Iterator[MachineState]:
        return iter(
            sorted(self._states.values(), key=lambda state: (state.tenant, state.line, state.machine))
        )

    def __len__(self) -> int:
        return len(self._states)


class LiveLines:
    """The line record shown per line and window kind (the newest complete one, until there is one
    the newest: :func:`streams.lines.supersedes`), for the lines this worker folds.

    After a restart or rebalance nothing new may come for a line for up to a window's length, so
    the lines recovered from the line-view table are shown again from their stored newest records
    (:meth:`show_recovered`, :func:`streams.lines.newest_records`), as machines are.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str], LineKpiRecord] = {}
        # Table keys (tenant/line) whose recovered state was shown since the last rebalance: each
        # is read once, not at every pass of the refill.
        self._recovered: set[bytes] = set()

    def update(self, record: LineKpiRecord) -> None:
        key = (record.tenant, record.line, record.window)
        current = self._records.get(key)
        if current is None or supersedes(record, current):
            self._records[key] = record

    def was_recovered(self, key: bytes) -> bool:
        return key in self._recovered

    def show_recovered(self, key: bytes, records: Iterable[LineKpiRecord]) -> None:
        """Show the recovered state of table key ``key``: its newest records, unless one this
        worker folded since is newer (the same choice as :meth:`update`)."""
        self._recovered.add(key)
        for record in records:
            self.update(record)

    def forget_all(self) -> None:
        """Called on rebalance: lines on revoked partitions now belong to another worker."""
        self._records.clear()
        self._recovered.clear()

    def __iter__(self) -> Iterator[LineKpiRecord]:
        return iter(sorted(self._records.values(), key=lambda r: (r.tenant, r.line, r.window)))


async def show_recovered_machines(
    table: StateTable, live: LiveMachines, applying: asyncio.Lock, ready: Callable[[], bool]
) -> list[str]:
    """Show the table's machines this worker has not shown yet (recovered after a start or a
    rebalance, sending nothing yet); returns the keys not in the plant configuration (not shown).

    Between batches only (``applying``: the lock a batch holds from applying to writing its states):
    during one, a state is the batch's working copy, ahead of its changelog record until the broker
    acknowledges it, and a machine first seen in the batch has no record at all yet. And only while
    ``ready`` once the lock is taken: a rebalance may have begun while a batch held it, and the table
    then holds revoked machines or is being recovered."""
    async with applying:
        if not ready():
            return []
        not_configured = []
        for raw_key in list(table.keys()):
            key = raw_key.decode()
            if key in live:
                continue
            if not live.is_configured(key):  # not decoded: it is never shown
                not_configured.append(key)
                continue
            state = table.load(key)
            if state is not None:
                live.show_recovered(state)
        return not_configured
