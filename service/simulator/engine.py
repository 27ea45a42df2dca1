"""The plant simulator: all machines merged into one event-time-ordered stream of contract records."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from models.plant import PlantConfig
from service.simulator.break_schedule import BreakSchedule
from service.simulator.faults import Fault
from service.simulator.machine import MachineOptions, MachineSim
from service.simulator.timeparse import format_rfc3339

__all__ = ["PlantSimulator", "Record", "SimOptions", "TimestampFormat"]

Record = dict[str, object]
TimestampFormat = Literal["epoch_ms", "rfc3339"]


@dataclass(frozen=True, slots=True)
class SimOptions:
    sample_period_ms: int = 1_000  # sensor readings at 1 Hz ...
    batch_ms: int = 10_000  # ... sent as one samples record per machine every 10 s
    heartbeat_ms: int = 300_000  # state re-sent after 5 min without a change (plant timeout: 15 min)
    ts_format: TimestampFormat = "epoch_ms"

    def __post_init__(self) -> None:
        if min(self.sample_period_ms, self.batch_ms, self.heartbeat_ms) <= 0:
            raise ValueError("sample_period_ms, batch_ms and heartbeat_ms must be positive")


class PlantSimulator:
    """Deterministic for a given (plant, seed, start, faults, options).

    :meth:`events` may be called repeatedly with growing ``until_ms``; each call continues where the
    previous one stopped, which is how the paced runner feeds a live stream.
    """

    def __init__(
        self,
        plant: PlantConfig,
        seed: int,
        start_ms: int,
        faults: Sequence[Fault] = (),
        options: SimOptions | None = None,
    ) -> None:
        self.plant = plant
        self.seed = seed
        self.start_ms = start_ms
        self.faults: tuple[Fault, ...] = tuple(sorted(faults, key=lambda f: (f.start_ms, f.key)))
        self.options = options or SimOptions()
        known = {machine.key for machine in plant.machines}
        stray = sorted({fault.key for fault in self.faults} - known)
        if stray:
            raise ValueError(f"faults name machines not in the plant: {stray}")
        # One schedule and zone per site: each site stops and stamps by its own calendar (plant.sites).
        schedules = {
            (spec.tenant, spec.site): BreakSchedule(plant, spec.tenant, spec.site) for spec in plant.machines
        }
        machine_options = MachineOptions(
            sample_period_ms=self.options.sample_period_ms,
            batch_ms=self.options.batch_ms,
            heartbeat_ms=self.options.heartbeat_ms,
        )
        self._machines = [
            MachineSim(
                spec,
                index=index,
                calendar=schedules[(spec.tenant, spec.site)],
                faults=self.faults,
                seed=seed,
                start_ms=start_ms,
                options=machine_options,
                zone=schedules[(spec.tenant, spec.site)].zone,
            )
            for index, spec in enumerate(plant.machines)
        ]
        self._zones = {machine.spec.key: machine.zone for machine in self._machines}
        # (next event time, machine index): ties go to the machine listed first, deterministically.
        self._heap = [(machine.next_ms, machine.index) for machine in self._machines]
        heapq.heapify(self._heap)
        # Records of a step not yet handed out (a consumer may stop mid-step, e.g. at --max-events).
        self._pending: deque[tuple[int, Record]] = deque()

    def zone_of(self, key: str) -> ZoneInfo:
        """The time zone of machine ``key`` (tenant/id): its site's."""
        return self._zones[key]

    def next_ms(self) -> int:
        """Event time of the next record :meth:`timed_events` would yield."""
        return self._pending[0][0] if self._pending else self._heap[0][0]

    def timed_events(self, until_ms: int) -> Iterator[tuple[int, Record]]:
        """``(epoch ms, record)`` for every record with event time before ``until_ms``, in time order."""
        while True:
            while self._pending:
                if self._pending[0][0] >= until_ms:
                    return
                yield self._pending.popleft()
            due, index = self._heap[0]
            if due >= until_ms:
                return
            machine = self._machines[index]
            stamp, records = machine.step()
            heapq.heapreplace(self._heap, (machine.next_ms, index))
            for record in records:
                self._pending.append((stamp, self._stamped(record, stamp, machine.zone)))

    def events(self, until_ms: int) -> Iterator[Record]:
        """Contract-valid telemetry records (``streams.contract.telemetry_adapter``) before ``until_ms``."""
        for _, record in self.timed_events(until_ms):
            yield record

    def _stamped(self, record: Record, millis: int, zone: ZoneInfo) -> Record:
        if self.options.ts_format == "rfc3339":
            record["ts"] = format_rfc3339(millis, zone)
        return record
