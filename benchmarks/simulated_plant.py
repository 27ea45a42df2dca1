"""Machine states of a simulated plant, as a worker would hold them: the benchmarks' common input."""

from __future__ import annotations

import orjson

from models.machine_state import MachineState
from models.plant import PlantConfig
from service.simulator import PlantSimulator
from streams.processing import Applied, TelemetryProcessor

__all__ = ["simulated_states"]


def simulated_states(plant: PlantConfig, *, seed: int, start_ms: int, end_ms: int) -> dict[str, MachineState]:
    """Every machine's state after the simulator's telemetry from ``start_ms`` to ``end_ms``, applied
    in order through the worker's processor (one source partition, offsets in order)."""
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    for offset, record in enumerate(PlantSimulator(plant, seed=seed, start_ms=start_ms).events(end_ms)):
        key = f"{record['tenant']}/{record['machine']}".encode()
        outcome = processor.process(
            key, orjson.dumps(record), timestamp_ms=None, load_state=states.get, source="t:0", offset=offset
        )
        if isinstance(outcome, Applied):
            states[outcome.state.key] = outcome.state
    return states
