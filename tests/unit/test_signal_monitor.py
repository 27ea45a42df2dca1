"""The combined per-signal monitor: restart safety, batch invariance, reference detectors, engine alerts."""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import pytest

from models import signal_monitor as sm
from models.machine import MAX_PRODUCT_MONITORS, MachineEngine
from models.machine_state import MachineState
from models.plant import PlantConfig

PARAMS = sm.MonitorParams(baseline_n=100, cusum_h=8.0, ph_threshold=30.0, adwin_delta=0.01, adwin_clock=8)


def _stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 2.0, 6000)
    x[2000:3500] += 3.0  # step
    x[4000:] += np.linspace(0.0, 8.0, 2000)  # ramp
    return x


def _absolute(dets: list[sm.Detection], offset: int) -> dict[str, tuple[int, int, int, float]]:
    return {d.detector: (d.count, d.first + offset, d.last + offset, d.value) for d in dets}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[int, int, int, float]]:
    out = dict(a)
    for name, (count, first, last, value) in b.items():
        if name in out:
            c0, f0, _, _ = out[name]
            out[name] = (c0 + count, f0, last, value)
        else:
            out[name] = (count, first, last, value)
    return out


@pytest.mark.parametrize("cut", [50, 100, 1999, 3001, 5000])
def test_json_round_trip_mid_stream_gives_identical_detections(cut: int) -> None:
    values = _stream(3)
    pv = PARAMS.vector()
    whole = _absolute(sm.update(sm.new_state(PARAMS), values, pv), 0)
    assert {"cusum", "ewma", "page_hinkley", "adwin", "rule1"} <= set(whole)
    state = sm.new_state(PARAMS)
    first = _absolute(sm.update(state, values[:cut].copy(), pv), 0)
    restored = sm.from_list(orjson.loads(orjson.dumps(sm.to_list(state))))
    # Same logical state (ring buffers may sit at other offsets, so compare the canonical form).
    assert sm.to_list(restored) == sm.to_list(state)
    second = _absolute(sm.update(restored, values[cut:].copy(), pv), cut)
    assert _merge(first, second) == whole


def test_batch_size_does_not_change_detections() -> None:
    values = _stream(4)
    pv = PARAMS.vector()
    whole = _absolute(sm.update(sm.new_state(PARAMS), values, pv), 0)
    state = sm.new_state(PARAMS)
    merged: dict[str, Any] = {}
    for lo in range(0, values.shape[0], 37):
        merged = _merge(merged, _absolute(sm.update(state, values[lo : lo + 37].copy(), pv), lo))
    assert merged == whole


def test_threads_updating_their_own_states_at_once_get_their_own_detections() -> None:
    # The kernel releases the GIL and update() reuses an output buffer: one per thread, or a
    # thread would read another's detections.
    pv = PARAMS.vector()
    streams = [_stream(seed) for seed in range(4)]

    def detections(values: np.ndarray) -> list[list[sm.Detection]]:
        state = sm.new_state(PARAMS)
        return [sm.update(state, values[lo : lo + 50].copy(), pv) for lo in range(0, values.shape[0], 50)]

    expected = [detections(values) for values in streams]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            assert list(pool.map(detections, streams)) == expected


def _naive_cusum(z: np.ndarray, k: float, h: float) -> list[int]:
    hi = lo = 0.0
    hits = []
    for i, v in enumerate(z):
        hi, lo = max(0.0, hi + v - k), max(0.0, lo - v - k)
        if hi > h:
            hits.append(i)
            hi = 0.0
        elif lo > h:
            hits.append(i)
            lo = 0.0
    return hits


def _naive_ewma(z: np.ndarray, lam: float, limit: float) -> list[int]:
    w, hits = 0.0, []
    for i, v in enumerate(z, start=1):
        w = lam * v + (1 - lam) * w
        s = np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        if abs(w) > limit * s:
            hits.append(i - 1)
    return hits


def test_cusum_and_ewma_match_naive_references() -> None:
    from models.drift import Cusum, EwmaChart

    values = _stream(5)
    z = (values - 5.0) / 2.0
    assert Cusum(k=0.5, h=8.0, mu0=5.0, sigma=2.0).detect(values).tolist() == _naive_cusum(z, 0.5, 8.0)
    assert EwmaChart(lam=0.1, L=3.0, mu0=5.0, sigma=2.0).detect(values).tolist() == _naive_ewma(z, 0.1, 3.0)


def test_rebaseline_learns_new_limits() -> None:
    pv = PARAMS.vector()
    state = sm.new_state(PARAMS)
    sm.update(state, np.random.default_rng(0).normal(0.0, 1.0, 500), pv)
    base = sm.baseline(state)
    assert base is not None and abs(base[0]) < 0.5
    sm.rebaseline(state)
    assert sm.baseline(state) is None
    sm.update(state, np.random.default_rng(1).normal(10.0, 1.0, 100), pv)
    base = sm.baseline(state)
    assert base is not None and abs(base[0] - 10.0) < 0.5


def test_bad_input_is_rejected() -> None:
    state = sm.new_state(PARAMS)
    with pytest.raises(ValueError):
        sm.update(state, np.array([1.0, np.nan]), PARAMS.vector())
    with pytest.raises(ValueError):
        sm.update(state, np.array([1, 2]), PARAMS.vector())
    with pytest.raises(ValueError):
        sm.update(state, np.ones(3), sm.MonitorParams(adwin_max_buckets=7).vector())
    # Checks done in the kernel (wrong parameter vector, wrong state size) and in the wrapper.
    before = state.copy()
    with pytest.raises(ValueError, match="params"):
        sm.update(state, np.ones(3), PARAMS.vector()[:-1])
    with pytest.raises(ValueError, match="params"):
        sm.update(state, np.ones(3), PARAMS.vector().astype(np.float32))
    with pytest.raises(ValueError, match="state"):
        sm.update(state[:-1].copy(), np.ones(3), PARAMS.vector())
    with pytest.raises(ValueError, match="state"):
        sm.update(state[:10].copy(), np.ones(3), PARAMS.vector())
    frozen = state.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="state"):
        sm.update(frozen, np.ones(3), PARAMS.vector())
    with pytest.raises(ValueError, match="values"):
        sm.update(state, np.ones((2, 3)), PARAMS.vector())
    with pytest.raises(ValueError, match="values"):
        sm.update(state, np.ones(6)[::2], PARAMS.vector())
    with pytest.raises(ValueError, match="finite"):
        sm.update(state, np.array([1.0, np.inf]), PARAMS.vector())
    np.testing.assert_array_equal(state, before)  # a rejected batch leaves the state untouched
    # Read-only readings (a frame decoded from bytes) are fine.
    readonly = np.full(4, 5.0)
    readonly.flags.writeable = False
    assert sm.update(state, readonly, PARAMS.vector()) == []


def test_odd_arguments_compile_nothing_and_read_only_readings_detect_the_same() -> None:
    # update() calls the kernel directly and relies on its dispatcher refusing other types: after
    # every kind of odd argument it still has exactly its two specialisations.
    values = _stream(6)
    pv = PARAMS.vector()
    state = sm.new_state(PARAMS)
    for odd, field in (
        ((state, values.astype(np.float32), pv), "values"),
        ((state, values[::2], pv), "values"),
        ((state, values.reshape(2, -1), pv), "values"),
        ((state, values.tolist(), pv), "values"),
        ((state, values, pv.astype(np.float32)), "params"),
        ((state, values, pv[:-1]), "params"),
        ((state[::2], values, pv), "state"),
        ((state.astype(np.float32), values, pv), "state"),
        ((state.tolist(), values, pv), "state"),
    ):
        with pytest.raises(ValueError, match=field):
            sm.update(*odd)
    frozen = values.copy()
    frozen.flags.writeable = False
    expected = sm.update(sm.new_state(PARAMS), values, pv)
    assert expected
    assert sm.update(sm.new_state(PARAMS), frozen, pv) == expected
    # Other valid readings detect the same: an unaligned view (bytes at an odd offset; numba's types
    # ignore alignment) and an ndarray subclass.
    raw = b"x" + values.tobytes()
    unaligned = np.frombuffer(raw, dtype=np.float64, offset=1)
    assert not unaligned.flags.aligned
    assert sm.update(sm.new_state(PARAMS), unaligned, pv) == expected
    assert sm.update(sm.new_state(PARAMS), values.view(_Subclass), pv) == expected
    kernel: Any = sm._update_kernel
    assert len(kernel.signatures) == 2


class _Subclass(np.ndarray):
    pass


# -- through the engine -------------------------------------------------------------------------


@pytest.fixture
def plant() -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10}],
            "monitoring": {"signals": {"baseline_n": 300, "settle_s": 0}},
        }
    )


def _run(engine: MachineEngine, plant: PlantConfig, drift: bool) -> tuple[MachineState, list[Any]]:
    spec = plant.machines[0]
    state = engine.new_state(spec)
    t0 = 1_790_000_000_000
    engine.on_state(state, spec, t0, "running", None)
    rng = np.random.default_rng(11)
    changes = []
    for batch in range(360):  # 1 h at 1 Hz, 10 s batches
        times = t0 + 1000 * (np.arange(10, dtype=np.int64) + 10 * batch + 1)
        values = 40.0 + rng.normal(0.0, 0.2, 10)
        if drift and batch >= 180:
            values += 0.2 * 6.0 * (batch - 180) / 180.0  # 6 sigma over 30 min
        # A signal judged as its level (temperatures are judged against an expected level).
        out = engine.on_samples(state, spec, int(times[-1]), [("vibration_rms", times, values)])
        changes.extend(out.alerts)
    return state, changes


def test_engine_raises_one_drift_alert_per_detector_naming_the_signal(plant: PlantConfig) -> None:
    engine = MachineEngine(plant)
    state, changes = _run(engine, plant, drift=True)
    opened = [c.alert for c in changes if c.status == "open" and not c.update and c.alert.kind == "drift"]
    assert opened, "a 6-sigma ramp must raise a drift alert"
    assert {a.subject for a in opened} == {"vibration_rms"}
    detectors = [a.evidence["detector"] for a in opened]
    assert len(detectors) == len(set(detectors)), "repeats must update one alert per detector"
    first = min(opened, key=lambda a: a.started_ms)
    evidence = first.evidence
    assert evidence["signal"] == "vibration_rms" and evidence["baseline_sigma"] > 0
    assert evidence["shift_sigma"] > 0.3 and abs(evidence["baseline_mean"] - 40.0) < 0.1
    # The state, with its monitors, survives a JSON round trip.
    again = MachineState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert again.monitors.keys() == state.monitors.keys()


def test_engine_normal_run_raises_no_drift_alert(plant: PlantConfig) -> None:
    _, changes = _run(MachineEngine(plant), plant, drift=False)
    assert [c for c in changes if c.alert.kind == "drift"] == []


def test_quality_characteristic_gets_spc_and_capability(plant: PlantConfig) -> None:
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    rng = np.random.default_rng(2)
    t0 = 1_790_000_000_000
    changes = []
    for i in range(60):
        value = 25.0 + rng.normal(0.0, 0.006) + (0.03 if i >= 40 else 0.0)
        out = engine.on_quality(state, spec, t0 + i * 60_000, "diameter_mm", value, 24.97, 25.03, "P1")
        changes.extend(out.alerts)
    opened = [c.alert for c in changes if c.status == "open" and not c.update and c.alert.kind == "spc"]
    # One SPC alert for the characteristic and product; every rule that fired on the step is in its evidence.
    assert len(opened) == 1 and opened[0].subject == "diameter_mm@P1"
    evidence = state.alerts["spc/diameter_mm@P1"].evidence
    assert "rule1" in evidence["detectors"] and (evidence["signal"], evidence["product"]) == (
        "diameter_mm",
        "P1",
    )
    assert state.alerts["spc/diameter_mm@P1"].count > 1
    assert opened[0].message.startswith("diameter_mm (P1): ")
    # The message gives the sigma the rule judged by (the I-MR one), as the evidence does: its own
    # figures give its shift. It gave the overall sigma, so they read about -3.0 where a rule said -3.3.
    for change in changes:
        if change.alert.kind != "spc":
            continue
        said = r"last point at ([-+][\d.]+) sigma \(value (\S+), baseline (\S+) \+/- (\S+)\)"
        figures = re.search(said, change.alert.message)
        assert figures is not None, change.alert.message
        shift, value, mean, sigma = (float(figure) for figure in figures.groups())
        assert figures.group(4) == f"{change.alert.evidence['baseline_sigma']:g}", change.alert.message
        # Printed to 6 significant digits (:g) and the shift to 0.1: that much rounding, no more.
        rounding = sum(0.5 * 10 ** (math.floor(math.log10(abs(x))) - 5) for x in (value, mean)) / sigma
        assert abs((value - mean) / sigma - shift) <= 0.05 + rounding + 1e-9, change.alert.message
    cap = engine.capability(state)["diameter_mm|P1|-"]
    assert cap.n == 60 and cap.cpk is not None and cap.lsl == 24.97


def test_a_product_changeover_is_no_drift_and_each_product_is_judged(plant: PlantConfig) -> None:
    # A 25 mm and a 32 mm part measured as one series gave +174 sigma alerts at every changeover.
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    rng = np.random.default_rng(3)
    t0 = 1_790_000_000_000
    changes = []
    for i in range(240):
        product, nominal = ("P1", 25.0) if (i // 40) % 2 == 0 else ("P2", 32.0)
        step = 0.03 if product == "P2" and i >= 200 else 0.0  # P2 drifts in its last run only
        value = nominal + rng.normal(0.0, 0.006) + step
        changes.extend(
            engine.on_quality(state, spec, t0 + i * 60_000, "diameter_mm", value, None, None, product).alerts
        )
    opened = {c.alert.subject for c in changes if c.status == "open"}
    assert opened == {"diameter_mm@P2"}, opened
    # A baseline reset of the characteristic resets its monitors of every product.
    engine.reset_baselines(state, t0 + 240 * 60_000, "characteristics", "diameter_mm")
    assert not [key for key in state.monitors if key.startswith("characteristics:")]
    assert not [key for key in state.alerts if key.endswith("@P2")]


def test_parts_of_products_beyond_the_bound_are_not_judged(plant: PlantConfig) -> None:
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    for i in range(MAX_PRODUCT_MONITORS + 5):
        engine.on_quality(state, spec, 1_790_000_000_000 + i, "diameter_mm", 25.0, None, None, f"P{i}")
    monitors = [key for key in state.monitors if key.startswith("characteristics:diameter_mm@")]
    assert len(monitors) == MAX_PRODUCT_MONITORS


# -- state size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("buckets", [2, 3, 5])
def test_serialised_state_stays_within_2_kb_after_a_million_readings(buckets: int) -> None:
    """Issue 6: at most 2 KB of state per machine and signal (the state is JSON in a Faust table)."""
    rng = np.random.default_rng(buckets)
    n = 1_000_000
    # Noise, level steps every 10k readings and a slow ramp: ADWIN's window keeps growing and cutting.
    values = rng.normal(0.0, 1.0, n) + np.repeat(rng.normal(0.0, 2.0, n // 10_000), 10_000)
    values += np.linspace(0.0, 5.0, n)
    params = sm.MonitorParams(adwin_max_buckets=buckets, adwin_clock=128, adwin_delta=1e-9)
    pv = params.vector()
    state = sm.new_state(params)
    largest = 0
    for lo in range(0, n, 500):
        sm.update(state, values[lo : lo + 500], pv)
        if lo % 50_000 == 0:
            largest = max(largest, len(orjson.dumps(sm.to_list(state))))
    largest = max(largest, len(orjson.dumps(sm.to_list(state))))
    assert largest <= 2048
    # Worst case: in-control noise, no cut, until every row the cap allows is full.
    full = sm.new_state(params)
    noise = rng.normal(0.0, 1.0, 300_000)
    for lo in range(0, noise.shape[0], 500):
        sm.update(full, noise[lo : lo + 500], pv)
    assert full[sm.ADWIN_AT + 4] == sm.adwin_rows(buckets)  # the cap binds
    assert len(orjson.dumps(sm.to_list(full))) <= 2048
    restored = sm.from_list(orjson.loads(orjson.dumps(sm.to_list(state))))
    assert sm.to_list(restored) == sm.to_list(state)


def test_corrupt_or_foreign_state_lists_are_rejected() -> None:
    state = sm.new_state(PARAMS)
    sm.update(state, _stream(1), PARAMS.vector())
    good = sm.to_list(state)
    for bad in (good[:-1], [*good[:-1], "b64:@@@"], [*good[:-1], 3.0], [*good[:-1], "b64:AAAA"]):
        with pytest.raises(ValueError):
            sm.from_list(bad)


def test_residual_mode_restart_safe_and_detects_a_step() -> None:
    params = sm.MonitorParams(baseline_n=300, mode="residual", reference_half_life=200.0, adwin_delta=0.01)
    pv = params.vector()
    rng = np.random.default_rng(8)
    values = 20.0 + np.linspace(0.0, 30.0, 6000) + rng.normal(0.0, 1.0, 6000)  # a slow wander
    values[4000:] += 8.0  # a step the reference has not absorbed yet
    whole = _absolute(sm.update(sm.new_state(params), values, pv), 0)
    assert any(first >= 4000 and first < 4100 for _, first, _, _ in whole.values())
    state = sm.new_state(params)
    first = _absolute(sm.update(state, values[:2500].copy(), pv), 0)
    restored = sm.from_list(orjson.loads(orjson.dumps(sm.to_list(state))))
    second = _absolute(sm.update(restored, values[2500:].copy(), pv), 2500)
    assert _merge(first, second) == whole
