"""The Quix + river peer's drift detectors: linepulse's sensor defaults, and they work.

The peer (benchmarks/peers.py) must judge what linepulse's sensor monitors judge, or the end-to-end
ratio against it means less than it says: its river detectors get the parameters linepulse's
kernels get (read back from MonitorParams.vector(), what models.signal_monitor runs on), and its
plain-Python CUSUM and EWMA chart detect at the same readings as linepulse's monitor.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("river.drift")

from benchmarks.peer_drift import drift_by_signal, drift_json
from benchmarks.peers import DriftMonitor, DriftParams, RiverSignalStats
from models import signal_monitor as sm
from models.drift import page_hinkley
from models.monitoring_config import MonitoringConfig, MonitorSettings

SENSOR = MonitorSettings()
ALPHA = 0.05


def _peer(settings: MonitorSettings = SENSOR) -> DriftMonitor:
    return DriftMonitor(DriftParams.from_settings(settings))


def _in_control(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(50.0, 5.0, n).round(3)


def _with_step(seed: int, sigmas: float, after: int = 3_000) -> np.ndarray:
    """A baseline and ``after`` in-control readings, then 3,000 shifted by ``sigmas`` (sigma 5)."""
    values = _in_control(SENSOR.baseline_n + after + 3_000, seed)
    values[SENSOR.baseline_n + after :] += 5.0 * sigmas
    return values


def test_river_detectors_get_the_parameters_linepulse_kernels_run_with() -> None:
    vector = SENSOR.params().vector()
    modes = {code: name for name, code in page_hinkley.MODES.items()}
    peer = _peer()
    assert peer.page_hinkley._get_params() == {
        "min_instances": vector[sm.P_PH_MIN],
        "delta": vector[sm.P_PH_DELTA],
        "threshold": vector[sm.P_PH_THRESHOLD],
        "alpha": vector[sm.P_PH_ALPHA],
        "mode": modes[int(vector[sm.P_PH_MODE])],
    }
    assert peer.adwin._get_params() == {
        "delta": vector[sm.P_ADWIN_DELTA],
        "clock": vector[sm.P_ADWIN_CLOCK],
        "max_buckets": vector[sm.P_ADWIN_BUCKETS],
        "min_window_length": vector[sm.P_ADWIN_MIN_LEN],
        "grace_period": vector[sm.P_ADWIN_GRACE],
    }
    p = peer.params
    assert (p.baseline_n, p.cusum_k, p.cusum_h, p.ewma_lambda, p.ewma_L) == (
        vector[sm.P_BASELINE_N],
        vector[sm.P_CUSUM_K],
        vector[sm.P_CUSUM_H],
        vector[sm.P_EWMA_LAMBDA],
        vector[sm.P_EWMA_L],
    )


@pytest.mark.parametrize("sigmas", [3.0, -3.0])
def test_every_detector_fires_on_a_clear_step(sigmas: float) -> None:
    peer = _peer()
    peer.update_many(_with_step(0, sigmas).tolist())
    step_at = SENSOR.baseline_n + 3_000
    assert set(peer.detections) == {"page_hinkley", "cusum", "ewma", "adwin"}
    for name, count in peer.detections.items():
        assert count > 0, name
        assert peer.last_detection[name] > step_at, name


def test_no_detector_fires_on_in_control_noise() -> None:
    peer = _peer()
    values = _in_control(SENSOR.baseline_n + 30_000, 1).tolist()
    for start in range(0, len(values), 500):  # in frames, as the pipeline feeds it
        peer.update_many(values[start : start + 500])
    assert peer.n == len(values)
    assert peer.detections == dict.fromkeys(peer.detections, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("after", [0, 3_000])
def test_page_hinkley_cusum_and_ewma_detect_where_linepulse_does(seed: int, after: int) -> None:
    # ADWIN is left out: linepulse caps its window's rows (state size), river's window keeps growing.
    # A step right after the baseline is where the EWMA chart's exact (narrower) early limits matter.
    values = _with_step(seed, 1.5, after)
    settings = SENSOR.model_copy(update={"detectors": ("page_hinkley", "cusum", "ewma")})
    state = sm.new_state(settings.params())
    found = {d.detector: d for d in sm.update(state, values, settings.params().vector())}
    peer = _peer(settings)
    for start in range(0, values.shape[0], 700):
        peer.update_many(values[start : start + 700].tolist())
    # Page-Hinkley learns its mean from the shifted readings when the step comes first: no detection.
    assert set(found) == ({"page_hinkley", "cusum", "ewma"} if after else {"cusum", "ewma"})
    for name in ("page_hinkley", "cusum", "ewma"):
        ours = found.get(name)
        expected = (0, -1) if ours is None else (ours.count, ours.last + 1)
        assert (peer.detections[name], peer.last_detection[name]) == expected, name


def test_a_constant_baseline_does_not_divide_by_zero() -> None:
    peer = _peer()
    peer.update_many([7.0] * SENSOR.baseline_n + [7.5] * 100)
    assert peer.detections["cusum"] > 0


def test_temperatures_keep_statistics_only_and_the_rest_get_the_sensor_settings() -> None:
    config = MonitoringConfig(overrides={"vibration": {"cusum_h": 30.0}})
    found = drift_by_signal(config, ["spindle_temp", "vibration", "pressure"])
    assert found["spindle_temp"] is None  # judged against the thermal expected level: no river peer
    assert found["pressure"] == DriftParams.from_settings(config.signals)
    vibration = found["vibration"]
    assert vibration is not None and vibration.cusum_h == 30.0
    carried = json.loads(json.dumps(drift_json(config, ["spindle_temp", "vibration"])))
    assert carried["spindle_temp"] is None
    assert DriftParams.from_dict(carried["vibration"]) == vibration


def test_a_configuration_the_peer_cannot_follow_is_refused() -> None:
    config = MonitoringConfig(overrides={"pressure": {"detectors": ["cusum", "rule1"]}})
    with pytest.raises(ValueError, match="rule1"):
        drift_by_signal(config, ["pressure"])


def test_signal_stats_run_the_monitor_on_the_same_readings() -> None:
    values = _with_step(3, 3.0)
    ts = np.arange(values.shape[0], dtype=np.int64)
    stats = RiverSignalStats(ALPHA, drift=DriftParams.from_settings(SENSOR))
    stats.update_many(ts[:1000], values[:1000])
    for t, x in zip(ts[1000:].tolist(), values[1000:].tolist(), strict=True):
        stats.update(t, x)
    alone = _peer()
    alone.update_many(values.tolist())
    assert stats.drift is not None
    assert stats.var.n == alone.n == values.shape[0]
    assert stats.drift.detections == alone.detections
    assert stats.drift.last_detection == alone.last_detection
    assert RiverSignalStats(ALPHA).drift is None  # the kernels benchmark compares statistics only


def test_peer_settles_the_ewma_decay_where_linepulse_does() -> None:
    from benchmarks import peers
    from models.drift import ewma_chart

    assert peers._SETTLED == ewma_chart.SETTLED
