"""The engine's per-batch shortcuts take the same decisions as the long way round.

Each shortcut skips work on the usual case (a whole batch past the settling time, no detection and
no open alert, an expected level known everywhere or nowhere); these pin the boundary cases next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from models import sample_runs, signal_monitor
from models.machine import MachineEngine
from models.plant import PlantConfig

T0 = 1_790_000_000_000


@pytest.fixture
def plant() -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10}],
            "monitoring": {"signals": {"baseline_n": 30, "settle_s": 30}},
        }
    )


def _batch(first_s: int, count: int, level: float = 40.0) -> tuple[int, np.ndarray, np.ndarray]:
    times = T0 + 1000 * np.arange(first_s, first_s + count, dtype=np.int64)
    values = level + 0.1 * np.sin(np.arange(count, dtype=np.float64))
    return int(times[-1]), times, values


def test_only_readings_from_the_end_of_settling_on_are_judged(plant: PlantConfig) -> None:
    engine, spec = MachineEngine(plant), plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    ts, times, values = _batch(20, 20)  # 20 s .. 39 s: the reading at 30 s is the first settled one
    engine.on_samples(state, spec, ts, [("vibration_rms", times, values)])
    vector = state.monitors["signals:vibration_rms"]
    assert vector[signal_monitor.N] == 10
    ts, times, values = _batch(40, 7)  # wholly settled: every reading
    engine.on_samples(state, spec, ts, [("vibration_rms", times, values)])
    assert vector[signal_monitor.N] == 17
    ts, times, values = _batch(5, 10)  # late readings from before the end of settling: none
    engine.on_samples(state, spec, ts, [("vibration_rms", times, values)])
    assert vector[signal_monitor.N] == 17


def test_an_open_alert_is_resolved_by_a_batch_without_detections(plant: PlantConfig) -> None:
    """No detection is the shortcut's case; an open alert of the series must still be resolved."""
    engine, spec = MachineEngine(plant), plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    changes = []
    second = 30
    for level in [40.0] * 10 + [42.0] * 30 + [40.0] * 400:
        ts, times, values = _batch(second, 10, level)
        second += 10
        changes.extend(engine.on_samples(state, spec, ts, [("vibration_rms", times, values)]).alerts)
    opened = [c for c in changes if c.status == "open"]
    resolved = [c for c in changes if c.status == "resolved"]
    assert opened, "a 20-sigma step must open an alert"
    assert {c.alert.id for c in resolved} == {c.alert.id for c in opened}
    assert not state.alerts


@pytest.mark.parametrize(
    "values",
    [
        np.array([], dtype=np.float64),
        np.full(7, np.nan),
        np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 0.0, -0.0]),
        np.arange(100, dtype=np.float64),
        np.array([np.finfo(np.float64).max, 5e-324, -np.finfo(np.float64).max]),
    ],
)
def test_finite_count_is_numpys(values: np.ndarray) -> None:
    assert sample_runs.finite_count(values) == int(np.isfinite(values).sum())
    values.setflags(write=False)
    assert sample_runs.finite_count(values) == int(np.isfinite(values).sum())
