"""No kernel state sinks to a subnormal float and stays there (models.finite: why it matters).

A decaying recurrence fed zeros (or a factor multiplied in every reading) reaches the smallest
subnormal, which times the factor rounds back to itself. On Intel cores every multiplication by it
takes a microcode assist: the drift monitor cost ~130 ns a reading instead of ~30, for good, once a
signal's EWMA decay had got there (~1,700 readings after its baseline). The checks are on the state
values, not on time, so they hold on any CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from models import expected_level as el
from models import signal_monitor as sm
from models import signal_stats as ss
from models.finite import NORMAL_MIN

T0 = 1_790_000_000_000


def _subnormal(state: np.ndarray) -> list[int]:
    return np.flatnonzero((state != 0.0) & (np.abs(state) < NORMAL_MIN)).tolist()


@pytest.mark.parametrize("batch", [1, 37, 500, 20_000])
def test_monitor_ewma_decay_settles_to_zero(batch: int) -> None:
    rng = np.random.default_rng(3)
    params = sm.MonitorParams(baseline_n=200)
    vector = params.vector()
    state = sm.new_state(params)
    readings = rng.normal(50.0, 5.0, 20_200)
    for start in range(0, readings.size, batch):
        sm.update(state, readings[start : start + batch].copy(), vector)
    assert _subnormal(state) == []
    assert state[sm.EWMA_AT + 1] == 0.0  # (1 - lam)**(2 i) below 2**-54: exactly settled


@pytest.mark.parametrize("batch", [37, 100_000])
def test_monitor_ewma_of_readings_back_at_the_baseline_mean(batch: int) -> None:
    # A quantised sensor: a constant baseline, a step away, then exactly the baseline value again,
    # so every z is exactly 0 and w decays geometrically towards 0.
    params = sm.MonitorParams(baseline_n=200)
    vector = params.vector()
    state = sm.new_state(params)
    readings = np.r_[np.full(200, 5.0), np.full(2_000, 5.5), np.full(100_000, 5.0)]
    for start in range(0, readings.size, batch):
        sm.update(state, readings[start : start + batch].copy(), vector)
    assert _subnormal(state) == []
    assert state[sm.EWMA_AT] == 0.0


def test_residual_reference_of_zero_readings_is_zero() -> None:
    params = sm.MonitorParams(baseline_n=200, mode="residual", reference_half_life=50.0)
    vector = params.vector()
    state = sm.new_state(params)
    rng = np.random.default_rng(4)
    sm.update(state, rng.normal(5.0, 1.0, 1_000), vector)
    sm.update(state, np.zeros(100_000), vector)
    assert _subnormal(state) == []


@pytest.mark.parametrize("batch", [1, 64, 1_000, 100_000])
def test_signal_statistics_of_a_signal_that_drops_to_zero(batch: int) -> None:
    # A motor current reads exactly 0.0 while the machine stands.
    values = np.r_[np.full(100, 5.0), np.zeros(100_000)]
    times = T0 + 1000 * np.arange(values.size, dtype=np.int64)
    state = ss.new_state()
    for start in range(0, values.size, batch):
        ss.update(state, times[start : start + batch], values[start : start + batch].copy())
    assert _subnormal(state) == []
    assert state[ss.EW_MEAN] == 0.0 and state[ss.EW_VAR] == 0.0


def test_signal_statistics_otherwise_unchanged_by_the_flush() -> None:
    # Readings that never decay to zero: the EW pair equals the plain recurrence bit for bit.
    rng = np.random.default_rng(5)
    values = rng.normal(20.0, 3.0, 5_000)
    times = T0 + 1000 * np.arange(values.size, dtype=np.int64)
    state = ss.new_state()
    ss.update(state, times, values)
    alpha, mean, var = ss.DEFAULT_ALPHA, values[0], 0.0
    for x in values.tolist():
        d = x - mean
        mean = (1.0 - alpha) * mean + alpha * x
        var = (1.0 - alpha) * (var + alpha * d * d)
    assert (state[ss.EW_MEAN], state[ss.EW_VAR]) == (mean, var)


def test_thermal_filter_of_a_machine_stopped_for_days() -> None:
    # Trained on a few running/stopped hours, then stopped for 6 days: x decays towards 0 (u = 0)
    # with the learnt tau (~600 s), into the subnormal range after ~708 tau (~5 days).
    params = el.ThermalParams(train_s=3_600.0, min_flips=0).vector()
    state = el.new_state()
    hours = 4 * 3_600
    times = T0 + 1000 * np.arange(hours, dtype=np.int64)
    running = (np.arange(hours) // 900) % 2 == 0
    target = np.where(running, 45.0, 30.0)
    level = np.empty(hours)
    x, keep = 30.0, float(np.exp(-1.0 / 600.0))  # a first-order lag of 600 s
    for k in range(hours):
        x = target[k] + keep * (x - target[k])
        level[k] = x
    for start in range(0, hours, 60):
        end = start + 60
        changes = np.flatnonzero(np.diff(running[:end])) + 1
        el.update(
            state,
            times[start:end],
            level[start:end],
            params,
            running_since_ms=int(times[changes[-1]]) if changes.size else T0,
            running=bool(running[end - 1]),
            utc_offset_ms=0,
        )
    fit = el.fit(state)
    assert fit is not None and 300.0 < fit.tau_s < 1_200.0
    stop_ms = int(times[-1]) + 1000
    stopped = stop_ms + 10_000 * np.arange(6 * 8_640, dtype=np.int64)  # every 10 s for 6 days
    for start in range(0, stopped.size, 1_000):
        chunk = stopped[start : start + 1_000]
        el.update(
            state,
            chunk,
            np.full(chunk.size, 30.0),
            params,
            running_since_ms=stop_ms,
            running=False,
            utc_offset_ms=0,
        )
    assert _subnormal(state) == []
