"""A machine its anomaly model cannot score (it never sends some of the model's signals) is named as such.

The audit's case: a type's model (current, spindle_temp, vibration_rms) serving a machine of the type
that sends press signals scored 0 rows in 3 hours and said nothing anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import orjson
import pytest
from prometheus_client import generate_latest

from models.anomaly.features import FeatureSpec
from models.anomaly.row_alignment import HELD_AT_LEAST_MS
from models.anomaly.scoring import (
    UNSCORED_AFTER_MS,
    UNSCORED_AFTER_READINGS,
    AnomalyModel,
    AnomalyWindow,
    score_batch,
)
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec
from service.metrics import build_registry
from service.plant_file import load_demo_plant
from service.web.routes import machine_view
from service.web.staleness import Silence
from streams.app import LinepulseStream
from streams.decode import Rejection
from streams.live import Counters, LiveMachines
from streams.processing import TelemetryProcessor
from streams.unscored_log import UnscoredLog

CNC = ("current", "spindle_temp", "vibration_rms")
PRESS = ("force", "stroke_rate", "oil_temp", "hydraulic_pressure")
START_MS = 1_767_564_000_000
Series = list[tuple[str, np.ndarray, np.ndarray]]


class _Constant:
    """A detector that finds nothing: these tests are about which rows exist, not their scores."""

    kind = "constant"

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.zeros(features.shape[0])

    def contributions(self, features: np.ndarray) -> np.ndarray:
        return np.zeros_like(features)

    def to_artifact(self) -> dict[str, Any]:
        return {}


def _model(
    version: str = "v1", signals: tuple[str, ...] = CNC, hold_ms: tuple[int, ...] | None = ()
) -> AnomalyModel:
    """``hold_ms`` (): what training learns of signals sent every second, the shortest bound."""
    features = FeatureSpec(signals)
    bounds = (HELD_AT_LEAST_MS,) * len(signals) if hold_ms == () else hold_ms
    detector = _Constant(len(features.names))
    return AnomalyModel("demo.cnc", version, features, detector, threshold=1.0, hold_ms=bounds)


def _batch(at_ms: int, signals: tuple[str, ...], readings: int = 1, step_ms: int = 1000) -> Series:
    times = at_ms + step_ms * np.arange(readings, dtype=np.int64)
    return [(name, times, np.full(readings, 1.0 + k)) for k, name in enumerate(signals)]


def _messages(signals: tuple[str, ...], minutes: float, every_s: int = 10) -> Iterator[tuple[int, Series]]:
    """One message per ``every_s`` seconds with that many 1 Hz readings of each of ``signals``."""
    for k in range(int(minutes * 60 / every_s)):
        at = START_MS + k * every_s * 1000
        yield at, _batch(at, signals, readings=every_s)


def _run(
    model: AnomalyModel, batches: Iterator[tuple[int, Series]]
) -> Iterator[tuple[int, AnomalyWindow, int]]:
    """The window after each batch, with the rows it scored in all."""
    window: AnomalyWindow | None = None
    rows = 0
    for at, series in batches:
        window, scored = score_batch(model, window, series)
        rows += scored.rows
        yield at, window, rows


def _first_unscored(model: AnomalyModel, batches: Iterator[tuple[int, Series]]) -> int | None:
    for at, window, _ in _run(model, batches):
        if window.unscored:
            return at
    return None


@pytest.mark.parametrize("failing", CNC)
def test_a_model_signal_that_stops_after_scoring_began_is_reported_not_silently_unscored(
    failing: str,
) -> None:
    """A model signal fails 10 minutes in. The first one's readings make the rows, so none is made
    from then on; another's last value stands in for it for at most its hold bound, then no row
    is made either (it was scored with that value for ever). Reported once it has been silent for
    the bound and the others passed both bounds (about 20 minutes after its last reading), not
    before; cleared when it is back."""
    model = _model()
    scored = list(_run(model, _messages(CNC, minutes=10)))
    assert scored[-1][2] > 0 and scored[-1][1].unscored == ()
    failed_at = START_MS + 10 * 60_000
    rest = tuple(name for name in CNC if name != failing)
    without = (
        (at + 10 * 60_000, _batch(at + 10 * 60_000, rest, readings=10)) for at, _ in _messages(rest, 30)
    )
    held_for = 0 if failing == CNC[0] else HELD_AT_LEAST_MS
    window = scored[-1][1]
    reported_at = None
    for at, series in without:
        window, batch = score_batch(model, window, series)
        if at - failed_at < held_for - 10_000:
            assert batch.rows == 10, at - failed_at
        elif at - failed_at >= held_for:
            assert batch.rows == 0, at - failed_at
        if window.unscored and reported_at is None:
            reported_at = at
    assert window.unscored == (failing,)
    assert reported_at is not None
    assert (
        failed_at + 2 * UNSCORED_AFTER_MS - 20_000
        <= reported_at
        <= failed_at + 2 * UNSCORED_AFTER_MS + 20_000
    )
    back = START_MS + 41 * 60_000
    window, batch = score_batch(model, window, _batch(back, CNC, readings=10))
    assert batch.rows > 0 and window.unscored == () and window.unseen_readings == 0


def test_a_signal_sent_every_15_minutes_is_held_between_its_readings_as_training_learnt() -> None:
    """Its hold bound, learnt from its rhythm (30 minutes), keeps every row; the shortest bound
    lost a third of them, never long enough in a row to be reported."""
    minute = 60_000

    def batches() -> Iterator[tuple[int, Series]]:
        for k in range(6 * 360):  # 6 hours of 10-second messages; spindle_temp every 15 minutes
            at = START_MS + k * 10_000
            sent = CNC if k % 90 == 0 else (CNC[0], CNC[2])
            yield at, _batch(at, sent, readings=10)

    # Each 15-minute cycle: spindle_temp's 10 readings, then clock readings past 10 minutes after
    # its last (610-899 s into the cycle) had no value of it under the shortest bound.
    for bounds, lost_per_cycle in [((HELD_AT_LEAST_MS, 30 * minute, HELD_AT_LEAST_MS), 0), ((), 290)]:
        runs = list(_run(_model(hold_ms=bounds), batches()))
        clock_readings = len(runs) * 10
        assert runs[-1][2] == clock_readings - 24 * lost_per_cycle, bounds
        assert all(window.unscored == () for _, window, _ in runs)


def test_a_model_registered_before_hold_bounds_holds_for_ever_and_still_reports_its_clock() -> None:
    """As it was trained (no bound): a silent second signal keeps its last value; a silent clock
    makes no row and is reported as before."""
    model = _model(hold_ms=None)
    later = START_MS + 10 * 60_000
    for failing, rows in [(CNC[1], True), (CNC[0], False)]:
        window = list(_run(model, _messages(CNC, minutes=10)))[-1][1]
        rest = tuple(name for name in CNC if name != failing)
        for at, _ in _messages(rest, 30):
            window, batch = score_batch(model, window, _batch(at + 10 * 60_000, rest, readings=10))
            assert (batch.rows > 0) == rows
        assert window.unscored == (() if rows else (failing,)), later
    # The clock and another signal both stop: both named, as before the bounds.
    window = list(_run(model, _messages(CNC, minutes=10)))[-1][1]
    for at, _ in _messages(CNC[1:2], 30):
        window, _ = score_batch(model, window, _batch(at + 10 * 60_000, CNC[1:2], readings=10))
    assert window.unscored == (CNC[0], CNC[2])


def test_a_machine_sending_other_signals_is_unscored_after_the_bounds() -> None:
    # The audit's machine: press signals only, 40 readings a message.
    model = _model()
    window = None
    for at, window, rows in _run(model, _messages(PRESS, minutes=30)):
        assert rows == 0
        if at - START_MS < UNSCORED_AFTER_MS - 10_000:
            assert window.unscored == (), "named before the bound"
    assert window is not None and window.unscored == CNC
    assert window.unseen_readings == 30 * 60 * len(PRESS) and window.unseen_from_ms == START_MS


def test_only_the_missing_signal_is_named() -> None:
    *_, (_, window, rows) = _run(_model(), _messages(("current", "vibration_rms"), minutes=20))
    assert rows == 0 and window.unscored == ("spindle_temp",)


def test_a_normal_machine_is_never_unscored() -> None:
    scored = 0
    for _, window, rows in _run(_model(), _messages((*CNC, "force"), minutes=30)):
        assert window.unscored == () and window.unseen_readings == 0
        scored = rows
    assert scored == 30 * 60


def test_a_start_with_each_signal_in_its_own_message_is_not_unscored() -> None:
    """One message per reading, the clock signal last; and a slow signal that first comes after 9
    minutes (more than UNSCORED_AFTER_READINGS readings of the others by then, but under the time)."""

    def separate(slow_from_s: int) -> Iterator[tuple[int, Series]]:
        for second in range(30 * 60):
            at = START_MS + second * 1000
            for name in ("spindle_temp", "vibration_rms", "current"):
                if name != "vibration_rms" or second >= slow_from_s:
                    yield at, _batch(at, (name,))

    assert _first_unscored(_model(), separate(0)) is None
    assert UNSCORED_AFTER_READINGS < 9 * 60 * 2
    assert _first_unscored(_model(), separate(9 * 60)) is None
    # The same machine, its slow signal 11 minutes late: named until it comes, then no more.
    states = [(at, window.unscored) for at, window, _ in _run(_model(), separate(11 * 60))]
    named = [at for at, unscored in states if unscored == ("vibration_rms",)]
    assert named and named[0] - START_MS >= UNSCORED_AFTER_MS and named[-1] <= START_MS + 11 * 60_000
    assert states[-1][1] == ()


def test_one_reading_then_an_hour_of_silence_is_not_unscored() -> None:
    model = _model()
    window, _ = score_batch(model, None, _batch(START_MS, ("force",)))
    window, _ = score_batch(model, window, _batch(START_MS + 3_600_000, ("force",)))
    assert window.unscored == () and window.unseen_readings == 2


def test_it_clears_when_the_machine_sends_the_signals() -> None:
    model = _model()
    *_, (_, window, _) = _run(model, _messages(PRESS, minutes=20))
    assert window.unscored == CNC
    later = START_MS + 20 * 60_000
    window, scored = score_batch(model, window, _batch(later, ("spindle_temp", "vibration_rms")))
    assert window.unscored == ("current",) and scored.rows == 0  # what is still missing
    window, scored = score_batch(model, window, _batch(later + 1000, ("current",)))
    assert scored.rows == 1 and window.unscored == () and window.unseen_readings == 0


def test_it_clears_when_the_model_version_changes_and_is_named_again_under_the_new_one() -> None:
    *_, (_, window, _) = _run(_model("v1"), _messages(PRESS, minutes=20))
    assert window.unscored == CNC and window.model == "demo.cnc@v1"
    v2 = _model("v2")
    later = START_MS + 20 * 60_000
    window, _ = score_batch(v2, window, _batch(later, PRESS))
    assert window.model == "demo.cnc@v2" and window.unscored == ()
    for _, series in _messages(PRESS, minutes=20):
        window, _ = score_batch(v2, window, [(n, t + (later - START_MS), v) for n, t, v in series])
    assert window.unscored == CNC


def test_the_count_survives_the_tables_json_and_old_states_load() -> None:
    *_, (_, window, _) = _run(_model(), _messages(PRESS, minutes=20))
    restored = AnomalyWindow.from_dict(orjson.loads(orjson.dumps(window.to_dict())))
    assert (restored.unscored, restored.unseen_readings, restored.unseen_from_ms) == (
        CNC,
        window.unseen_readings,
        START_MS,
    )
    old = window.to_dict()
    for key in ("unseen_readings", "unseen_from_ms", "unscored"):
        del old[key]
    loaded = AnomalyWindow.from_dict(old)
    assert loaded.unscored == () and loaded.unseen_readings == 0 and loaded.unseen_from_ms == -1


class _Serving:
    def __init__(self, model: AnomalyModel | None) -> None:
        self.model = model

    def model_for(self, machine: MachineSpec) -> AnomalyModel | None:
        return self.model

    def may_still_serve(self, label: str) -> bool:
        return False


def test_the_engine_keeps_it_in_the_machine_state_and_clears_it_when_no_model_serves() -> None:
    plant = load_demo_plant()
    spec = plant.machines[0]
    serving = _Serving(_model())
    engine = MachineEngine(plant, serving)
    state = engine.new_state(spec)
    for at, series in _messages(PRESS, minutes=20):
        engine.on_samples(state, spec, at, series)
    assert state.anomaly is not None and state.anomaly.unscored == CNC
    restored = MachineState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored.anomaly is not None and restored.anomaly.unscored == CNC
    serving.model = None
    engine.on_samples(state, spec, START_MS + 21 * 60_000, _batch(START_MS + 21 * 60_000, PRESS))
    assert state.anomaly is None  # no model, no view naming one: nothing is left unscored


def test_the_log_warns_once_per_machine_and_model_version(caplog: pytest.LogCaptureFixture) -> None:
    state = MachineState(tenant="demo", site="p1", line="L2", machine="M06")
    *_, (_, window, _) = _run(_model(), _messages(PRESS, minutes=20))
    state.anomaly = window
    log = UnscoredLog()
    with caplog.at_level(logging.INFO, logger="streams.unscored_log"):
        for _ in range(3):
            log.observe(state)
        window.model = "demo.cnc@v2"
        log.observe(state)
        window.clear_unseen()
        log.observe(state)
        log.observe(state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "anomaly model demo.cnc@v1 cannot score demo/M06: no reading of "
        f"{list(CNC)} since it began serving the machine or for 10 minutes, while 4800 "
        "readings of other signals came; the machine gets no anomaly alerts until it sends them",
        "anomaly model demo.cnc@v2 cannot score demo/M06: no reading of "
        f"{list(CNC)} since it began serving the machine or for 10 minutes, while 4800 "
        "readings of other signals came; the machine gets no anomaly alerts until it sends them",
    ]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["demo/M06 is no longer left unscored by anomaly model demo.cnc@v2"]


def press_unscored_cnc_scored() -> tuple[LinepulseStream, dict[str, MachineState]]:
    """M01 sends a press's signals to a CNC type model for 20 min (unscored), M02 a CNC's (scored);
    the stream is only what ``machine_view`` reads of one."""
    plant = load_demo_plant()
    processor = TelemetryProcessor(
        plant, max_payload_bytes=1 << 20, max_future_ms=3_600_000, anomaly_models=_Serving(_model())
    )
    press, cnc = plant.machine("demo", "M01"), plant.machine("demo", "M02")
    assert press is not None and cnc is not None
    states = {}
    for spec, signals in ((press, PRESS), (cnc, CNC)):
        state = processor.engine.new_state(spec)
        for at, series in _messages(signals, minutes=20):
            processor.engine.on_samples(state, spec, at, series)
        states[spec.id] = state
    return cast(LinepulseStream, SimpleNamespace(processor=processor)), states


def test_api_machines_and_metrics_show_the_unscored_machine_and_the_scored_one() -> None:
    stream, states = press_unscored_cnc_scored()
    processor, plant = stream.processor, stream.processor.plant
    silent = Silence(silent_s=0.0, received_ago_s=0.0, stale=False)
    assert machine_view(stream, states["M01"], silent, Counters.of(states["M01"]))["anomaly"] == {
        "model": "demo.cnc@v1",
        "unscored": {
            "missing_signals": list(CNC),
            "readings_without_them": 4800,
            "since": processor.engine.calendar.local_isoformat(START_MS),
        },
    }
    assert machine_view(stream, states["M02"], silent, Counters.of(states["M02"]))["anomaly"] == {
        "model": "demo.cnc@v1",
        "unscored": None,
    }
    live = LiveMachines({machine.key for machine in plant.machines})
    for state in states.values():
        live.update(state)
    registry, _ = build_registry(live, plant)
    exposed = generate_latest(registry).decode()
    labels = 'line="L1",machine="{}",model="demo.cnc@v1",site="p1",tenant="demo"'
    assert f"linepulse_anomaly_unscored{{{labels.format('M01')}}} 1.0" in exposed
    assert f"linepulse_anomaly_unscored{{{labels.format('M02')}}} 0.0" in exposed


def test_the_workers_batch_path_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """The worker applies runs of frames with ``process_samples`` (streams.batch), not ``process``."""
    plant = load_demo_plant()
    processor = TelemetryProcessor(
        plant, max_payload_bytes=1 << 20, max_future_ms=3_600_000, anomaly_models=_Serving(_model())
    )
    base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "kind": "samples"}
    states: dict[str, MachineState] = {}
    offset = 0
    with caplog.at_level(logging.WARNING, logger="streams.unscored_log"):
        for minute in range(20):
            run = []
            for first, series in _messages(PRESS, minutes=1):
                at = first + minute * 60_000
                signals = [
                    {"signal": name, "ts": (times + minute * 60_000).tolist(), "values": values.tolist()}
                    for name, times, values in series
                ]
                value = orjson.dumps({**base, "ts": at + 9_000, "signals": signals})
                decoded = processor.decode(b"demo/M01", value, timestamp_ms=at + 10_000)
                assert not isinstance(decoded, Rejection), decoded
                run.append((decoded, offset))
                offset += 1
            for outcome in processor.process_samples(run, load_state=states.get, source="telemetry:0"):
                states[outcome.state.key] = outcome.state
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"anomaly model demo.cnc@v1 cannot score demo/M01: no reading of {list(CNC)}"
    )
