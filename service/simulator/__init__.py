"""A deterministic plant simulator: contract-valid telemetry with injectable faults and ground truth.

``PlantSimulator(...).events(until_ms)`` is the pure generator; :func:`run` paces it against real time
and writes to a sink; ``linepulse simulate`` (:mod:`service.simulator.commands`) is the CLI.
``load_demo_plant`` (from :mod:`service.plant_file`) is re-exported as the plant to simulate by default.
"""

from __future__ import annotations

from service.plant_file import load_demo_plant

# Imported (and exported) so that `from service.simulator import commands` in service/cli.py type-checks
# inside the import cycle mypy sees between the CLI and this package.
from service.simulator import commands
from service.simulator.clock import Clock, Pacer, SystemClock
from service.simulator.engine import PlantSimulator, Record, SimOptions, TimestampFormat
from service.simulator.exceptions import SimulatorError, SpecError
from service.simulator.faults import (
    Fault,
    FaultKind,
    FaultSpec,
    parse_fault_spec,
    random_faults,
    resolve_faults,
)
from service.simulator.runner import RunStats, run
from service.simulator.sinks import JsonlSink, KafkaSink, Sink

__all__ = [
    "Clock",
    "Fault",
    "FaultKind",
    "FaultSpec",
    "JsonlSink",
    "KafkaSink",
    "Pacer",
    "PlantSimulator",
    "Record",
    "RunStats",
    "SimOptions",
    "SimulatorError",
    "Sink",
    "SpecError",
    "SystemClock",
    "TimestampFormat",
    "commands",
    "load_demo_plant",
    "parse_fault_spec",
    "random_faults",
    "resolve_faults",
    "run",
]
