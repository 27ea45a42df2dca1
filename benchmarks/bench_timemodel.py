"""The ISO 22400 time model: the numba kernel against the pure-Python reference, events/s.

The events are a simulated day of the demo plant's five machines (states, counts, cycles, and a
heartbeat for every sensor frame and quality check, as the worker feeds them), applied in each
machine's order to a fresh ledger per round. Three ways:

- ``batch``: ``LedgerAccounting.apply_many``, one kernel run between window rolls (``analyze``
  and late-event replays could use this; it is the kernel's own speed);
- ``per_event``: ``LedgerAccounting.apply``, one kernel call per event, as the worker calls it;
- the reference: ``ReferenceAccounting.apply``, the plain-Python definition the kernel is tested
  against (the accounting the worker ran before the kernel).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final, cast

from benchmarks.results import Figure, best_rates, rate_figure
from models.accounting_reference import ReferenceAccounting, ReferenceLedger
from models.calendar import PlantCalendar
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE
from models.ledger_accounting import LedgerAccounting
from models.plant import MachineSpec, PlantConfig
from models.time_ledger import TimeLedger
from service.plant_file import load_demo_plant
from service.simulator import PlantSimulator

__all__ = ["NOTES", "TITLE", "figures"]

TITLE: Final = "Time model (events/s, ISO 22400 accounting of one machine)"
NOTES: Final = (
    "A simulated day of the demo plant (states, counts, cycles, and a heartbeat per sensor frame or "
    "quality check), each machine's events in order into a fresh ledger. `columns` runs the kernel on "
    "events already encoded as its columns (`apply_encoded`, window rolls included), `batch` is "
    "`LedgerAccounting.apply_many` (one numba kernel run between window rolls), `per_event` is "
    "`LedgerAccounting.apply` as the worker calls it, both against `ReferenceAccounting`, the "
    "pure-Python reference the kernel is tested to match."
)
_START_MS: Final = 1_790_000_000_000
Event = tuple[int, int, tuple[Any, ...]]


def _simulated(plant: PlantConfig, hours: float) -> dict[str, list[Event]]:
    """Each machine's time-model events, as MachineEngine would pass them to the accounting."""
    simulator = PlantSimulator(plant, seed=3, start_ms=_START_MS)
    events: dict[str, list[Event]] = defaultdict(list)
    for record in simulator.events(_START_MS + int(hours * 3_600_000)):
        kind, ts_ms, machine = str(record["kind"]), cast(int, record["ts"]), str(record["machine"])
        if kind == "state":
            event: Event = (ts_ms, RANK_STATE, (record["state"], record.get("reason")))
        elif kind == "count":
            values = (record["good"], record["scrap"], record.get("product"), record.get("scrap_reason"))
            event = (ts_ms, RANK_COUNT, values)
        elif kind == "cycle":
            event = (ts_ms, RANK_CYCLE, (record["seconds"], record.get("product")))
        else:
            event = (ts_ms, RANK_HEARTBEAT, ())
        events[machine].append(event)
    return events


def figures(quick: bool) -> list[Figure]:
    plant = load_demo_plant()
    calendar = PlantCalendar.from_plant(plant)
    specs: dict[str, MachineSpec] = {spec.id: spec for spec in plant.machines}
    streams = _simulated(plant, 6.0 if quick else 24.0)
    total = sum(len(events) for events in streams.values())
    kernel = LedgerAccounting(plant, calendar)
    reference = ReferenceAccounting(plant, calendar)
    # Encoded once: the kernel's own speed, without turning Python tuples into columns.
    templates = {machine: TimeLedger() for machine in streams}
    encoded = {
        machine: kernel.encode(templates[machine], specs[machine], events)
        for machine, events in streams.items()
    }

    def columns() -> None:
        for machine, events in encoded.items():
            kernel.apply_encoded(templates[machine].copy(), specs[machine], events)

    def batch() -> None:
        for machine, events in streams.items():
            kernel.apply_many(TimeLedger(), specs[machine], events)

    def per_event() -> None:
        for machine, events in streams.items():
            ledger, spec = TimeLedger(), specs[machine]
            for ts_ms, rank, values in events:
                kernel.apply(ledger, spec, ts_ms, rank, values)

    def python() -> None:
        for machine, events in streams.items():
            ledger, spec = ReferenceLedger(), specs[machine]
            for ts_ms, rank, values in events:
                reference.apply(ledger, spec, ts_ms, rank, values)

    rates = best_rates(
        {"python": python, "columns": columns, "batch": batch, "per_event": per_event},
        total,
        min_time_s=0.2 if quick else 0.5,
        repeat=5 if quick else 7,
    )
    what = f"{total} events of {len(streams)} machines"
    vs = "ReferenceAccounting (pure Python)"
    calls = {
        "columns": "LedgerAccounting.apply_encoded (columns)",
        "batch": "LedgerAccounting.apply_many",
        "per_event": "LedgerAccounting.apply",
    }
    return [
        rate_figure(f"timemodel.{name}.vs_python", rates[name], rates["python"], "events/s",
                    what=f"{call}, {what}", vs=vs)
        for name, call in calls.items()
    ]  # fmt: skip
