"""A run of frames in one engine call: each signal judged by one monitor call where that changes nothing.

:meth:`MachineEngine.on_samples_each` judges a signal's readings of all the run's frames in one
drift/SPC monitor call when that call detects nothing and the signal has no open alert, and frame
by frame otherwise. These tests check what that rests on (the monitor is a stream: one call over
concatenated readings leaves the state of one call per piece and detects what they detect
together) and that the outputs (alerts with kind, status, time and evidence; closed windows) and
states are those of one frame at a time, through shifts that open and resolve alerts inside runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from models import sample_runs, signal_monitor, signal_stats
from models.anomaly.scoring import AnomalyModel
from models.anomaly.training import default_config, fit_model
from models.machine import EngineOutput, MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig
from service.plant_file import load_demo_plant

PERIOD_MS = 1_000
PER_FRAME = 50
# The demo plant's M01: a temperature (expected level, judged as a residual) and plain signals.
SIGNALS = ("spindle_temp", "vibration_rms", "motor_current")


@pytest.fixture(scope="module")
def plant() -> PlantConfig:
    return load_demo_plant()


def test_one_monitor_call_over_concatenated_readings_is_one_call_per_piece(plant: PlantConfig) -> None:
    rng = np.random.default_rng(3)
    for signal in SIGNALS:
        params = plant.monitoring.settings_for("signals", signal, "M01").params().vector()
        for trial in range(6):
            # The baseline (1,800 or 7,200 readings) ends inside a piece; a shift starts after it
            # (some trials), so pieces with and without detections both occur.
            values = rng.normal(50.0, 2.0, 12_000)
            if trial % 2:
                values[rng.integers(8_000, 10_000) :] += rng.uniform(1.0, 8.0)
            cuts = np.sort(rng.choice(np.arange(1, values.shape[0]), size=40, replace=False))
            pieces = np.split(values, cuts)
            one = signal_monitor.new_state(signal_monitor.params_from_vector(params))
            each = one.copy()
            found_once = signal_monitor.update(one, values, params)
            counts: dict[str, int] = {}
            for piece in pieces:
                for found in signal_monitor.update(each, piece, params):
                    counts[found.detector] = counts.get(found.detector, 0) + found.count
            # As stored (to_list): ADWIN's unused ring slots may keep other stale numbers, never read.
            assert signal_monitor.to_list(one) == signal_monitor.to_list(each), (signal, trial)
            assert {found.detector: found.count for found in found_once} == counts, (signal, trial)
            if trial % 2:
                assert counts, "a shift of 0.5-4 sigma over 2,000+ readings must be detected"


def _frames(spec: MachineSpec, start_ms: int, count: int, seed: int) -> list[tuple[int, Any]]:
    """``count`` frames of :data:`SIGNALS`; vibration shifts up for a while, then back, so drift
    alerts open and resolve; the temperature follows a slow ramp (its expected level learns it)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        ts = start_ms + (i * PER_FRAME + np.arange(PER_FRAME, dtype=np.int64)) * PERIOD_MS
        shifted = count // 3 <= i < count // 2
        series = [
            ("spindle_temp", ts, 40.0 + 0.0001 * (ts - start_ms) / PERIOD_MS + rng.normal(0, 0.2, PER_FRAME)),
            ("vibration_rms", ts, rng.normal(2.0 + (1.5 if shifted else 0.0), 0.1, PER_FRAME)),
            ("motor_current", ts, rng.normal(12.0, 0.5, PER_FRAME)),
        ]
        out.append((int(ts[-1]), series))
    return out


def _alerts(outputs: list[EngineOutput]) -> list[list[tuple[Any, ...]]]:
    # Captured as each output is produced: later frames update the alert states they refer to.
    return [
        [(c.alert.kind, c.alert.subject, c.status, c.at_ms, c.alert.count, dict(c.alert.evidence))
         for c in out.alerts]
        for out in outputs
    ]  # fmt: skip


def _closed(outputs: list[EngineOutput]) -> list[list[tuple[Any, ...]]]:
    return [[(c.window.kind, c.window.start_ms, c.revision) for c in out.closed] for out in outputs]


class _CountingUpdate:
    def __init__(self) -> None:
        self.calls = 0
        self.update = signal_monitor.update
        self.values: list[np.ndarray] = []  # what each call judged

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        self.values.append(args[1])
        return self.update(*args)


class _JoinedStats:
    """signal_stats.update_runs and update_runs_side_by_side, remembering the joined values they were
    given."""

    def __init__(self) -> None:
        self.update_runs = signal_stats.update_runs
        self.side_by_side = signal_stats.update_runs_side_by_side
        self.values: list[np.ndarray] = []
        self.groups: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.values.append(args[2])
        self.update_runs(*args, **kwargs)

    def group(self, group: Any, *args: Any, **kwargs: Any) -> None:
        self.values += [values for _, _, values in group]
        self.groups.append(len(group))
        self.side_by_side(group, *args, **kwargs)


def _each(engine: MachineEngine, state: MachineState, spec: MachineSpec, batch: list[Any]) -> Iterator[Any]:
    for out in engine.on_samples_each(state, spec, batch):
        yield out, _alerts([out])[0]


class _OneModel:
    """The anomaly-model lookup the service implements over the registry, for one fitted model."""

    def __init__(self, model: AnomalyModel) -> None:
        self.model = model

    def model_for(self, machine: MachineSpec) -> AnomalyModel | None:
        return self.model

    def may_still_serve(self, label: str) -> bool:
        return False


def _anomaly_model() -> AnomalyModel:
    rng = np.random.default_rng(5)
    normal = np.column_stack(
        [rng.normal(40.0, 0.2, 5_000), rng.normal(2.0, 0.1, 5_000), rng.normal(12.0, 0.5, 5_000)]
    )
    return fit_model(normal, SIGNALS, default_config("pca_t2q"), name="runs").model


@pytest.mark.parametrize("with_model", [False, True], ids=["monitors", "monitors+anomaly-model"])
def test_runs_give_the_alerts_windows_and_states_of_one_frame_at_a_time(
    plant: PlantConfig, monkeypatch: pytest.MonkeyPatch, with_model: bool
) -> None:
    spec = plant.machines[0]
    start = 1_790_000_000_000
    frames = _frames(spec, start, 600, seed=8)
    counting = _CountingUpdate()
    monkeypatch.setattr(signal_monitor, "update", counting)
    stats = _JoinedStats()
    monkeypatch.setattr(signal_stats, "update_runs", stats)
    monkeypatch.setattr(signal_stats, "update_runs_side_by_side", stats.group)
    models = _OneModel(_anomaly_model()) if with_model else None

    def run(sizes: Iterator[int]) -> tuple[Any, MachineState, int]:
        engine = MachineEngine(plant, models)
        state = engine.new_state(spec)
        engine.on_state(state, spec, start - 600_000, "running", None)
        alerts, closed = [], []
        before = counting.calls
        i = 0
        while i < len(frames):
            batch = frames[i : i + next(sizes)]
            i += len(batch)
            for out, captured in _each(engine, state, spec, batch):
                alerts.append(captured)
                closed += _closed([out])
        return (alerts, closed), state, counting.calls - before

    single, single_state, single_calls = run(iter(lambda: 1, None))
    rng = np.random.default_rng(1)
    merged, merged_state, merged_calls = run(iter(lambda: int(rng.integers(2, 40)), None))

    assert merged == single
    assert merged_state.to_dict() == single_state.to_dict()
    opened = [a for frame in single[0] for a in frame if a[2] == "open"]
    resolved = [a for frame in single[0] for a in frame if a[2] == "resolved"]
    assert any(a[0] == "drift" and a[1] == "vibration_rms" for a in opened)
    assert any(a[0] == "drift" and a[1] == "vibration_rms" for a in resolved)
    assert any(single[1]), "the frames span hours: windows close inside runs"
    if with_model:
        # A machine with an anomaly model is applied one batch at a time (its feature windows follow
        # each batch), and raises its anomaly alerts exactly as one frame at a time.
        assert merged_calls == single_calls
        assert any(a[0] == "anomaly" for a in opened)
    else:
        # Quiet runs took one monitor call per signal: far fewer than one per frame and signal.
        assert merged_calls < single_calls / 3
        # Plain signals' runs were judged on the statistics' joined copy, not joined again; the
        # temperature's residuals never were (they are not the readings).
        joined = {id(values) for values in stats.values}
        shared = [values for values in counting.values if id(values) in joined]
        assert shared and len(shared) < len(stats.values)
        # The frames' signals have the same run lengths: their statistics were folded side by side.
        assert 3 in stats.groups


def test_a_run_is_joined_once_when_it_is_made_of_the_same_arrays() -> None:
    parts = [np.arange(3.0), np.arange(2.0)]
    copy = np.concatenate(parts)
    assert sample_runs.joined_values(list(parts), (parts, copy)) is copy
    for other in ([parts[0]], [parts[0], parts[1].copy()], [parts[1], parts[0]]):
        fresh = sample_runs.joined_values(other, (parts, copy))
        assert fresh is not copy
        np.testing.assert_array_equal(fresh, np.concatenate(other))
    np.testing.assert_array_equal(sample_runs.joined_values(parts, None), copy)
