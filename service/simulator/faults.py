"""Injected faults: parsing ``KIND@MACHINE@START+DURATION``, placing random ones, and their ground truth."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from models.plant import MachineSpec, PlantConfig
from service.machine_refs import UnknownMachine, find_machine
from service.simulator.exceptions import SpecError
from service.simulator.profiles import profile_for
from service.simulator.randomness import derive_rng
from service.simulator.timeparse import format_rfc3339, parse_duration_ms

__all__ = ["Fault", "FaultKind", "FaultSpec", "parse_fault_spec", "random_faults", "resolve_faults"]


class FaultKind(StrEnum):
    STOPPAGE = "stoppage"  # machine down, reason "breakdown", for the whole window
    SLOW_CYCLES = "slow_cycles"  # cycle times x1.5
    SENSOR_DRIFT = "sensor_drift"  # one signal's mean drifts linearly by several sigma
    ANOMALY_BURST = "anomaly_burst"  # joint outliers across the machine's signals
    SCRAP_SPIKE = "scrap_spike"  # scrap ratio jumps


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault as typed on the command line, before the plant is known."""

    kind: FaultKind
    machine: str  # machine id, or "tenant/id" when ids repeat across tenants
    signal: str | None
    offset_ms: int  # from the simulation start
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault resolved against the plant, in absolute event time ``[start_ms, end_ms)``."""

    kind: FaultKind
    tenant: str
    site: str
    line: str
    machine: str
    start_ms: int
    end_ms: int
    signal: str | None = None

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.machine}"

    def active(self, millis: int) -> bool:
        return self.start_ms <= millis < self.end_ms

    def truth_record(self, zone: ZoneInfo) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "tenant": self.tenant,
            "site": self.site,
            "line": self.line,
            "machine": self.machine,
            "signal": self.signal,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "start": format_rfc3339(self.start_ms, zone),
            "end": format_rfc3339(self.end_ms, zone),
        }


def parse_fault_spec(text: str) -> FaultSpec:
    """``stoppage@M02@2h+30m``; for ``sensor_drift`` optionally ``sensor_drift@M02:spindle_temp@2h+30m``."""
    parts = text.split("@")
    if len(parts) != 3 or "+" not in parts[2]:
        raise SpecError(f"{text!r} is not KIND@MACHINE@START+DURATION, e.g. stoppage@M02@2h+30m")
    kind_text, machine_text, window = parts
    try:
        kind = FaultKind(kind_text)
    except ValueError:
        known = ", ".join(kind.value for kind in FaultKind)
        raise SpecError(f"unknown fault kind {kind_text!r}; known: {known}") from None
    machine, _, signal = machine_text.partition(":")
    if not machine:
        raise SpecError(f"{text!r} names no machine")
    if signal and kind is not FaultKind.SENSOR_DRIFT:
        raise SpecError(f"only sensor_drift takes a signal (MACHINE:SIGNAL), got {machine_text!r}")
    start_text, _, duration_text = window.partition("+")
    return FaultSpec(
        kind=kind,
        machine=machine,
        signal=signal or None,
        offset_ms=parse_duration_ms(start_text, allow_zero=True),
        duration_ms=parse_duration_ms(duration_text),
    )


def _find_machine(plant: PlantConfig, ref: str) -> MachineSpec:
    try:
        return find_machine(plant, ref)
    except UnknownMachine as exc:
        raise SpecError(str(exc)) from None


def _resolve(kind: FaultKind, machine: MachineSpec, signal: str | None, start_ms: int, end_ms: int) -> Fault:
    return Fault(kind, machine.tenant, machine.site, machine.line, machine.id, start_ms, end_ms, signal)


def resolve_faults(specs: Sequence[FaultSpec], plant: PlantConfig, start_ms: int) -> list[Fault]:
    faults: list[Fault] = []
    for spec in specs:
        machine = _find_machine(plant, spec.machine)
        signal = spec.signal
        if spec.kind is FaultKind.SENSOR_DRIFT:
            names = [s.name for s in profile_for(machine).signals]
            if signal is None:
                signal = names[0]
            elif signal not in names:
                raise SpecError(f"machine {machine.id} has no signal {signal!r}; it has {', '.join(names)}")
        begin = start_ms + spec.offset_ms
        faults.append(_resolve(spec.kind, machine, signal, begin, begin + spec.duration_ms))
    return sorted(faults, key=lambda fault: (fault.start_ms, fault.key))


# Plausible lengths per kind, in minutes: long enough for a detector to see, short enough to end.
_LENGTH_MIN: Mapping[FaultKind, tuple[int, int]] = MappingProxyType(
    {
        FaultKind.STOPPAGE: (15, 60),
        FaultKind.SLOW_CYCLES: (30, 120),
        FaultKind.SENSOR_DRIFT: (60, 180),
        FaultKind.ANOMALY_BURST: (5, 20),
        FaultKind.SCRAP_SPIKE: (20, 60),
    }
)


def random_faults(plant: PlantConfig, seed: int, start_ms: int, horizon_ms: int, count: int) -> list[Fault]:
    """``count`` faults of random kinds on random machines, all inside ``[start, start + horizon)``."""
    rng: random.Random = derive_rng(seed, "faults")
    kinds = list(FaultKind)
    faults: list[Fault] = []
    for _ in range(count):
        kind = rng.choice(kinds)
        machine = rng.choice(plant.machines)
        low, high = _LENGTH_MIN[kind]
        length = min(rng.randint(low, high) * 60_000, max(horizon_ms // 2, 60_000))
        # Leave the first tenth of the run clean, so detectors have a baseline to learn.
        earliest = start_ms + horizon_ms // 10
        latest = max(earliest, start_ms + horizon_ms - length)
        begin = rng.randint(earliest, latest) // 1000 * 1000
        signal = rng.choice(profile_for(machine).signals).name if kind is FaultKind.SENSOR_DRIFT else None
        faults.append(_resolve(kind, machine, signal, begin, begin + length))
    return sorted(faults, key=lambda fault: (fault.start_ms, fault.key))
