"""The end-to-end benchmarks' messages exercise the full analytics, drift/SPC monitors included."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from benchmarks.messages import SIGNALS, Message, frames, samples_records, sensor_events
from models.machine_state import MachineState
from service.plant_file import load_demo_plant
from streams.processing import Applied, TelemetryProcessor


def _apply(messages: list[Message]) -> dict[str, MachineState]:
    processor = TelemetryProcessor(load_demo_plant(), max_payload_bytes=8 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    now = int(time.time() * 1000)
    for key, value in messages:
        outcome = processor.process(key, value, timestamp_ms=now, load_state=states.get)
        assert isinstance(outcome, Applied), outcome
        states[key.decode()] = outcome.state
    return states


@pytest.mark.parametrize(
    "build",
    [
        lambda running: sensor_events(400, running=running),
        lambda running: samples_records(40, running=running),
        lambda running: frames(40, running=running),
        lambda running: frames(10, per_signal=1_000, running=running),
    ],
    ids=["events", "samples", "frames", "frames5000"],
)
def test_running_machines_put_every_reading_through_the_monitors(
    build: Callable[[bool], list[Message]],
) -> None:
    levels = sorted(f"signals:{name}" for name in SIGNALS if not name.endswith("_temp"))
    running = _apply(build(True))
    assert len(running) == 5
    for state in running.values():
        assert state.state == "running"
        assert sorted(key for key in state.monitors if key.startswith("signals:")) == levels
        # A temperature is judged against its expected level, which first learns (hours).
        assert list(state.expected) == ["spindle_temp"]
    # Without the states the same readings skip the monitors (what the benchmark measured before).
    assert all(not state.monitors for state in _apply(build(False)).values())
