"""The expected-level model of temperatures (models.expected_level) and its use by the engine.

The synthetic plant here is written from the physics (a first-order lag towards a running or idle
level, a daily ambient sinusoid, AR(1) noise), not taken from the simulator: the model must learn
whatever a machine does from its data.
"""

from __future__ import annotations

import base64
import itertools
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models import expected_level as el
from models import signal_monitor
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import PlantConfig
from service.analyze import analyze_file
from service.settings import load_settings

T0 = 1_790_000_000_000
HOUR_S = 3_600
DAY_S = 86_400
UTC_OFFSET_MS = 9 * 3_600_000  # the plant's zone below is Asia/Seoul (no DST)


@dataclass
class Plant:
    times: np.ndarray
    values: np.ndarray
    running: np.ndarray
    hall: np.ndarray


def _plant(
    seed: int,
    seconds: int,
    *,
    tau_s: float = 900.0,
    idle: float = 31.0,
    running_level: float = 47.0,
    amplitude: float = 2.0,
    noise: float = 0.15,
    ramp: tuple[int, int, float] | None = None,
) -> Plant:
    """1 Hz readings of a machine that runs ~12 min and stops ~1.5 min (sometimes 6) at random."""
    rng = np.random.default_rng(seed)
    times = T0 + 1000 * np.arange(seconds, dtype=np.int64)
    running = np.zeros(seconds, dtype=bool)
    i, run = 0, True
    while i < seconds:
        mean = 750.0 if run else (360.0 if rng.random() < 0.1 else 60.0)
        length = 5 + int(rng.exponential(mean))
        running[i : i + length] = run
        i, run = i + length, not run
    keep = np.exp(-1.0 / tau_s)
    level = np.empty(seconds)
    x = idle
    for k in range(seconds):
        x = (running_level if running[k] else idle) + keep * (x - (running_level if running[k] else idle))
        level[k] = x
    shocks = rng.standard_normal(seconds) * noise * 0.8
    ar = np.empty(seconds)
    e = 0.0
    for k in range(seconds):
        e = 0.6 * e + shocks[k]
        ar[k] = e
    local_hour = ((times + UTC_OFFSET_MS) / 3_600_000.0) % 24.0
    hall = 22.0 + amplitude * np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)
    values = level + ar + (hall - 22.0)
    if ramp is not None:
        start, length, size = ramp
        inside = np.arange(seconds) - start
        values += np.where((inside >= 0) & (inside < length), size * noise * inside / length, 0.0)
    return Plant(times, np.round(values, 3), running, hall)


def _feed(
    plant: Plant,
    params: np.ndarray,
    state: np.ndarray | None = None,
    *,
    lo: int = 0,
    hi: int | None = None,
    with_hall: bool = False,
    interim: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Batches of 10 readings as the engine hands them over: the state at the batch's end and its start.

    ``interim``: filled (from ``lo``) with where the expected level was the interim ambient's.
    """
    state = el.new_state() if state is None else state
    hi = plant.times.shape[0] if hi is None else hi
    changes = np.flatnonzero(np.diff(plant.running)) + 1
    out = np.full(hi - lo, np.nan)
    for start in range(lo, hi, 10):
        end = min(start + 10, hi)
        before = changes[changes < end]
        since = int(plant.times[before[-1]]) if before.size else T0
        out[start - lo : end - lo] = el.update(
            state,
            plant.times[start:end],
            plant.values[start:end],
            params,
            running_since_ms=since,
            running=bool(plant.running[end - 1]),
            utc_offset_ms=UTC_OFFSET_MS,
            ambient=plant.hall[start:end] if with_hall else None,
            interim=None if interim is None else interim[start - lo : end - lo],
        )
    return state, out


@pytest.mark.parametrize(("tau_s", "idle", "running_level"), [(600.0, 28.0, 36.0), (1_200.0, 34.0, 46.0)])
def test_learns_a_known_time_constant_and_gain(tau_s: float, idle: float, running_level: float) -> None:
    plant = _plant(1, 5 * HOUR_S, tau_s=tau_s, idle=idle, running_level=running_level)
    state, expected = _feed(plant, el.ThermalParams().vector())
    fit = el.fit(state)
    assert fit is not None
    assert fit.tau_s == pytest.approx(tau_s, rel=0.08)
    assert fit.gain == pytest.approx(running_level - idle, rel=0.05)
    assert fit.sigma < 0.2  # the noise's own sigma is 0.15: the lag and the ambient are explained
    assert np.isnan(expected).all()  # no ambient profile yet: nothing is judged on the first day


def test_residual_is_flat_over_a_normal_day_once_the_profile_is_learnt() -> None:
    plant = _plant(2, 3 * DAY_S)
    _, expected = _feed(plant, el.ThermalParams().vector())
    judged = np.isfinite(expected)
    first = int(np.argmax(judged))
    # Training (3 h) plus a day of profile, and from then on every reading has an expected level.
    assert 26 * HOUR_S <= first <= 28 * HOUR_S
    assert judged[first:].all()
    residual = (plant.values - expected)[2 * DAY_S :]
    # Without the model the level moves by 16 degC with the state and 4 degC over the day; the
    # residual is the noise (sigma 0.15) and no hour of the day is off by more than a third of it.
    assert abs(residual.mean()) < 0.03
    assert residual.std() < 0.19
    hourly = residual[: (residual.shape[0] // HOUR_S) * HOUR_S].reshape(-1, HOUR_S).mean(axis=1)
    assert np.abs(hourly).max() < 0.1
    # The raw level against its mean, for scale.
    assert plant.values[2 * DAY_S :].std() > 10 * residual.std()


def test_a_hall_sensor_explains_the_ambient_an_hour_after_training() -> None:
    plant = _plant(3, 8 * HOUR_S)
    state, expected = _feed(plant, el.ThermalParams().vector(), with_hall=True)
    assert el.last_ambient(state) == pytest.approx(plant.hall[-1])
    judged = np.isfinite(expected)
    first = int(np.argmax(judged))
    assert 4 * HOUR_S <= first <= 5 * HOUR_S and judged[first:].all()  # training, then an hour for c
    residual = (plant.values - expected)[first:]
    assert abs(residual.mean()) < 0.05 and residual.std() < 0.19


def test_state_round_trip_gives_the_same_expected_levels() -> None:
    plant = _plant(4, 2 * DAY_S)
    params = el.ThermalParams().vector()
    whole, expected = _feed(plant, params)
    half = 30 * HOUR_S  # at a batch boundary: the batches (and states within them) are the same
    state, first = _feed(plant, params, hi=half)
    stored = orjson.dumps(el.to_list(state))
    assert len(stored) <= 2048  # the table-state budget per signal
    restored = el.from_list(orjson.loads(stored))
    restored, second = _feed(plant, params, restored, lo=half)
    np.testing.assert_array_equal(np.concatenate([first, second]), expected)
    np.testing.assert_array_equal(restored, whole)
    assert len(stored) < 800  # trained: the header and the profile only
    training, _ = _feed(plant, params, hi=HOUR_S)
    assert not el.ready(training)
    stored_training = orjson.dumps(el.to_list(training))
    assert len(stored_training) <= 2048
    np.testing.assert_array_equal(el.from_list(orjson.loads(stored_training)), training)
    for bad in ([], ["b64:AAAA"], ["x"], [1.0], "b64:", [stored.decode()]):
        with pytest.raises(ValueError, match="expected level"):
            el.from_list(bad)


def test_training_sums_follow_their_definitions() -> None:
    # The training kernel works on its sums in a scratch layout of its own for speed; here they are
    # recomputed from the model's definitions, reading by reading, across a batch boundary (sums
    # stored and loaded again) and with the machine's state changing inside a batch.
    plant = _plant(11, 3_000)
    params = el.ThermalParams(train_s=10 * HOUR_S).vector()  # still training at the end
    state = el.new_state()
    # Idle, running from reading 600, idle again from reading 1,700.
    for lo, hi, since, running in ((0, 1_234, 600, True), (1_234, 3_000, 1_700, False)):
        el.update(
            state, plant.times[lo:hi], plant.values[lo:hi], params,
            running_since_ms=int(plant.times[since]), running=running, utc_offset_ms=UTC_OFFSET_MS,
        )  # fmt: skip
    u = ((np.arange(3_000) >= 600) & (np.arange(3_000) < 1_700)).astype(float)
    t = (plant.times - plant.times[0]) / 1000.0
    y = plant.values - plant.values[0]
    s = t / 3_600.0
    shared = [len(t), s.sum(), (s * s).sum(), y.sum(), (s * y).sum(), (y * y).sum()]
    np.testing.assert_allclose(state[el.TRAIN_AT : el.TRAIN_AT + el.SHARED], shared, rtol=1e-12)
    dt = np.diff(t, prepend=t[0])
    for k, tau in enumerate(el.TAUS_S):
        x = np.empty_like(t)
        level = u[0]
        for i in range(len(t)):
            level = u[i] + np.exp(-dt[i] / tau) * (level - u[i])
            x[i] = level
        e = np.exp(-t / tau)
        want = [x[-1], x.sum(), (x * x).sum(), (x * s).sum(), (x * y).sum(),
                e.sum(), (e * e).sum(), (e * x).sum(), (e * s).sum(), (e * y).sum()]  # fmt: skip
        at = el.TRAIN_AT + el.SHARED + k * el.PER_TAU
        got = state[at : at + el.PER_TAU]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"tau {tau}")
    assert state[el.FLIPS] == 2.0


def _flushed(value: float) -> float:
    return 0.0 if abs(value) < np.finfo(np.float64).smallest_normal else value


def _training_sums_reading_by_reading(
    times: np.ndarray, values: np.ndarray, u: np.ndarray, batch_starts: set[int]
) -> tuple[list[float], list[list[float]]]:
    """The training sums as the model defines them, one reading at a time in Python floats (same
    operations in the same order): the shared sums and, per time constant, the stored slots."""
    t0, y0, last = float(times[0]), float(values[0]), float(times[0])
    shared = [0.0] * 6
    x = [float(u[0])] * el.N_TAUS
    e = [0.0] * el.N_TAUS
    per_tau = [[0.0] * (el.PER_TAU - 1) for _ in range(el.N_TAUS)]
    for i in range(len(times)):
        t = float(times[i])
        dt = max(t - last, 0.0) / 1000.0
        last = max(last, t)
        y = float(values[i]) - y0
        elapsed = (t - t0) / 1000.0
        s = elapsed * (1000.0 / 3_600_000.0)
        for j, term in enumerate((1.0, s, s * s, y, s * y, y * y)):
            shared[j] += term
        ui = float(u[i])
        for k, tau in enumerate(el.TAUS_S):
            inv = 1.0 / float(tau)
            keep = math.exp(-dt * inv)
            e[k] = math.exp(-elapsed * inv) if i in batch_starts else _flushed(e[k] * keep)
            x[k] = _flushed(ui + keep * (x[k] - ui))
            xk, ek = x[k], e[k]
            for j, term in enumerate((xk, xk * xk, xk * s, xk * y, ek, ek * ek, ek * xk, ek * s, ek * y)):
                per_tau[k][j] += term
    return shared, [[x[k], *per_tau[k]] for k in range(el.N_TAUS)]


def test_training_sums_are_bit_for_bit_the_reading_by_reading_sums() -> None:
    # The kernel folds readings of one step into the filters a few at a time, without the flush
    # below the smallest normal float where no value can get there: the sums must be exactly the
    # reading-by-reading ones. At 10 ms the shortest time constant's fading term passes through
    # the subnormals at readings 71-74 of a batch, while the value is off its first one only from
    # reading 71: a subnormal product would be the only term of its sum of e * y.
    n = 700
    rng = np.random.default_rng(5)
    steps = np.full(n, 10, dtype=np.int64)
    steps[400:450] = 20  # another step for a while
    times = T0 + np.cumsum(steps) - steps[0]
    times[520] = times[519]  # a repeated time stamp (a step of 0)
    times[600] = times[598]  # a late reading
    values = np.full(n, 40.0)
    values[71:] += rng.normal(0.0, 1.0, n - 71).round(3)
    # Running from the start, idle from reading 200 (the shortest lag's filter then decays
    # through the subnormals too), running again from 330.
    u = ((np.arange(n) < 200) | (np.arange(n) >= 330)).astype(float)
    params = el.ThermalParams(train_s=10 * HOUR_S).vector()  # still training at the end
    state = el.new_state()
    batches = ((0, 150), (150, 290), (290, 450), (450, 640), (640, n))  # one change at most in each
    for lo, hi in batches:
        changes = [i for i in range(lo + 1, hi) if u[i] != u[i - 1]]
        since = changes[0] if changes else lo
        el.update(
            state, times[lo:hi], values[lo:hi], params, running_since_ms=int(times[since]),
            running=bool(u[hi - 1]), utc_offset_ms=0,
        )  # fmt: skip
    shared, per_tau = _training_sums_reading_by_reading(times, values, u, {lo for lo, _ in batches})
    np.testing.assert_array_equal(state[el.TRAIN_AT : el.TRAIN_AT + el.SHARED], shared)
    for k in range(el.N_TAUS):
        at = el.TRAIN_AT + el.SHARED + k * el.PER_TAU
        np.testing.assert_array_equal(state[at : at + el.PER_TAU], per_tau[k], err_msg=f"tau {el.TAUS_S[k]}")
    assert state[el.TRAIN_AT + el.SHARED + el.K_SEY] == 0.0  # that fading term added nothing


def _interim_reference(
    plant: Plant, thermal: np.ndarray, from_ms: int, tau_ms: float, trend: bool
) -> np.ndarray:
    """The interim ambient the slow way: double exponential smoothing of reading - g x, per reading."""
    out = np.full(plant.times.shape[0], np.nan)
    s1 = s2 = last = seen = None
    for i in range(plant.times.shape[0]):
        t = float(plant.times[i])
        if t < from_ms:
            continue
        a = plant.values[i] - thermal[i]
        if last is None or s1 is None or s2 is None or seen is None or t - last > tau_ms:
            s1 = s2 = a
            seen = 0.0
        else:
            gap = t - last
            k = np.exp(-gap / tau_ms)
            guess = 2 * s1 - s2 + (s1 - s2) * gap / tau_ms if trend else s1
            if seen >= tau_ms:
                out[i] = guess + thermal[i]
            s1 = a + k * (s1 - a)
            s2 = s1 + k * (s2 - s1)
            seen += gap
        last = t
    return out


@pytest.mark.parametrize("trend", [False, True])
def test_the_interim_ambient_judges_the_first_day_and_hands_over_to_the_profile(trend: bool) -> None:
    plant = _plant(7, 2 * DAY_S)
    off, expected_off = _feed(plant, el.ThermalParams().vector())
    params = el.ThermalParams(interim_s=3_600.0, interim_trend=trend).vector()
    interim = np.zeros(plant.times.shape[0], dtype=bool)
    on, expected = _feed(plant, params, interim=interim)
    profiled = np.isfinite(expected_off)
    first_profiled = int(np.argmax(profiled))
    judged = np.isfinite(expected)
    first = int(np.argmax(judged))
    # Judged from the end of training plus one time constant (4 h), not from ~27 h.
    assert 4 * HOUR_S <= first <= 5 * HOUR_S and first_profiled > 26 * HOUR_S
    assert judged[first:].all()
    # Interim exactly where the profile had nothing; where it has a value, nothing changes.
    np.testing.assert_array_equal(interim, judged & ~profiled)
    np.testing.assert_array_equal(expected[profiled], expected_off[profiled])
    np.testing.assert_array_equal(on[: el.INTERIM_AT], off[: el.INTERIM_AT])
    assert el.handovers(on) == 1 and el.handovers(off) == 0
    # The lag is removed and the ambient (4 degC a day) followed: the residual is about the noise
    # (sigma 0.15); the mean lags the ambient's slope (up to 0.5 degC/h) by its time constant.
    residual = (plant.values - expected)[first:first_profiled]
    assert abs(residual.mean()) < (0.05 if trend else 0.35)
    assert residual.std() < (0.25 if trend else 0.45)


@pytest.mark.parametrize("trend", [False, True])
def test_the_interim_ambient_equals_the_slow_reference_through_gaps(trend: bool) -> None:
    """A machine that never stops has no thermal part (g = 0, training ends at 4 x train_s), so the
    expected level is the interim ambient itself; gaps shorter than its time constant are bridged,
    a longer one restarts it."""
    plant = _plant(8, 12 * HOUR_S, amplitude=3.0)
    plant.running[:] = True
    keep = np.ones(plant.times.shape[0], dtype=bool)
    keep[6 * HOUR_S : 6 * HOUR_S + 600] = False  # 10 min: bridged
    keep[8 * HOUR_S : 8 * HOUR_S + 2 * HOUR_S] = False  # 2 h: restarted
    plant = Plant(plant.times[keep], plant.values[keep], plant.running[keep], plant.hall[keep])
    params = el.ThermalParams(train_s=1_800.0, interim_s=1_800.0, interim_trend=trend).vector()
    interim = np.zeros(plant.times.shape[0], dtype=bool)
    state, expected = _feed(plant, params, interim=interim)
    fit = el.fit(state)
    assert fit is not None and fit.gain == 0.0
    trained = int(np.argmax(plant.times >= T0 + 4 * 1_800 * 1000))
    reference = _interim_reference(
        plant, np.zeros(plant.times.shape[0]), int(plant.times[trained + 1]), 1.8e6, trend
    )
    np.testing.assert_allclose(expected, reference, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(interim, np.isfinite(reference))
    # Not judged during training plus a time constant, nor for one after the long gap.
    after_gap = int(np.argmax(plant.times >= T0 + 10 * HOUR_S * 1000))
    assert np.isnan(expected[after_gap : after_gap + 1_700]).all() and np.isfinite(expected[-1])


def test_a_restart_on_the_first_day_resumes_the_interim_ambient_exactly() -> None:
    plant = _plant(9, 30 * HOUR_S)
    params = el.ThermalParams(interim_s=1_800.0, interim_trend=True).vector()
    whole, expected = _feed(plant, params)
    half = 10 * HOUR_S  # judged against the interim ambient
    state, first = _feed(plant, params, hi=half)
    assert np.isfinite(first[-1])
    stored = orjson.dumps(el.to_list(state))
    assert len(stored) < 800
    restored, second = _feed(plant, params, el.from_list(orjson.loads(stored)), lo=half)
    np.testing.assert_array_equal(np.concatenate([first, second]), expected)
    np.testing.assert_array_equal(restored, whole)


def _packed(vector: np.ndarray) -> list[str]:
    return ["b64:" + base64.b64encode(vector.astype("<f8").tobytes()).decode("ascii")]


def test_a_state_stored_by_version_1_loads_and_goes_on_as_before() -> None:
    """Version 1 stored a trained state as header and profile only (no interim slots)."""
    plant = _plant(10, 2 * DAY_S)
    params = el.ThermalParams().vector()
    split = 30 * HOUR_S
    state, _ = _feed(plant, params, hi=split)
    old = state[: el.INTERIM_AT].copy()
    old[el.VERSION] = 1.0
    loaded = el.from_list(_packed(old))
    _, expected = _feed(plant, params, el.from_list(el.to_list(state)), lo=split)
    _, from_old = _feed(plant, params, loaded, lo=split)
    np.testing.assert_array_equal(from_old, expected)
    assert np.isfinite(expected).all()
    # With the interim ambient switched on too: the profile's readings are judged as before.
    on = el.ThermalParams(interim_s=3_600.0).vector()
    _, from_old_on = _feed(plant, on, el.from_list(_packed(old)), lo=split)
    np.testing.assert_array_equal(from_old_on, expected)
    # A training state is the same in both versions; other layouts of a version are refused.
    training, _ = _feed(plant, params, hi=HOUR_S)
    training[el.VERSION] = 1.0
    assert el.ready(el.from_list(_packed(training))) is False
    wrong = state[: el.INTERIM_AT].copy()  # version 2 without its interim slots
    with pytest.raises(ValueError, match="layout"):
        el.from_list(_packed(wrong))
    wrong = state[: el.I_HANDOVERS + 1].copy()  # a version 2 layout
    wrong[el.VERSION] = 1.0
    with pytest.raises(ValueError, match="layout"):
        el.from_list(_packed(wrong))
    wrong[el.VERSION] = 3.0
    with pytest.raises(ValueError, match="version"):
        el.from_list(_packed(wrong))
    cut = training[: el.INTERIM_AT].copy()  # a version 1 state in training, cut to the trained size
    with pytest.raises(ValueError, match="training must be whole"):
        el.from_list(_packed(cut))


def test_a_late_reading_does_not_restart_the_interim_ambient() -> None:
    # A gateway re-sends a reading taken a minute ago, after newer ones: it is judged against the
    # interim estimate as it stands. Restarting the estimate left the next 35 min unjudged.
    plant = _plant(9, 14 * HOUR_S)
    params = el.ThermalParams(interim_s=2_100.0).vector()
    cut = 10 * HOUR_S
    state, first = _feed(plant, params, hi=cut)
    assert np.isfinite(first[cut - 600 :]).all()  # judged against the interim ambient by then
    clean = state.copy()
    late = cut - 60
    flags = np.zeros(1, dtype=np.bool_)
    expected = el.update(
        state, plant.times[late : late + 1], plant.values[late : late + 1], params,
        running_since_ms=0, running=bool(plant.running[late]), utc_offset_ms=UTC_OFFSET_MS, interim=flags,
    )  # fmt: skip
    assert np.isfinite(expected).all() and flags.all()
    _, after_late = _feed(plant, params, state, lo=cut)
    _, after_clean = _feed(plant, params, clean, lo=cut)
    assert np.isfinite(after_late[:HOUR_S]).all()
    np.testing.assert_allclose(after_late, after_clean, rtol=0, atol=1e-6)


def test_a_late_reading_judged_against_the_interim_ambient_is_no_handover() -> None:
    # A gateway off 12:00-13:00 every day: the profile lacks hour 12, so 13:00-13:30 stays judged
    # against the interim ambient and the profile takes over again at 13:30 each day. A reading
    # from 13:15 re-sent after that must not count as another handover (the monitor restarts at
    # each one and would drop its baseline).
    full = _plant(12, 40 * HOUR_S)
    local_h = ((full.times + UTC_OFFSET_MS) / 3_600_000.0) % 24.0
    keep = ~((local_h >= 12.0) & (local_h < 13.0))
    plant = Plant(full.times[keep], full.values[keep], full.running[keep], full.hall[keep])
    params = el.ThermalParams(interim_s=900.0).vector()
    local_h = local_h[keep]
    # The plant starts at 23:13 local: its second 13:00 is ~38 h in (the profile has a day by then).
    day2 = np.flatnonzero(plant.times >= T0 + 30 * HOUR_S * 1000)
    after = int(day2[np.flatnonzero(local_h[day2] >= 13.75)[0]])  # 13:45
    state, _ = _feed(plant, params, hi=after)
    assert el.handovers(state) == 2
    late = int(day2[np.flatnonzero(local_h[day2] >= 13.25)[0]])
    flags = np.zeros(1, dtype=np.bool_)
    expected = el.update(
        state, plant.times[late : late + 1], plant.values[late : late + 1], params,
        running_since_ms=0, running=bool(plant.running[late]), utc_offset_ms=UTC_OFFSET_MS, interim=flags,
    )  # fmt: skip
    assert np.isfinite(expected).all() and flags.all()  # judged against the interim ambient
    _feed(plant, params, state, lo=after, hi=after + 600)
    assert el.handovers(state) == 2
    training, _ = _feed(plant, params, hi=HOUR_S)  # and none while training, whose sum the slot holds
    assert training[el.I_HANDOVERS] != 0 and el.handovers(training) == 0


def _resend(state: np.ndarray, plant: Plant, params: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
    """A gateway re-sends the reading ``at`` after newer ones: its expected level and interim flag."""
    flags = np.zeros(1, dtype=np.bool_)
    expected = el.update(
        state, plant.times[at : at + 1], plant.values[at : at + 1], params,
        running_since_ms=0, running=bool(plant.running[at]), utc_offset_ms=UTC_OFFSET_MS, interim=flags,
    )  # fmt: skip
    return expected, flags


@pytest.mark.parametrize("hours_late", [1.5, 2.5, 5.0])
def test_a_reading_from_an_earlier_hour_neither_splits_the_profile_nor_hands_over(hours_late: float) -> None:
    # First day, 20 min into an hour: the profile has values for the hours before the last one, so
    # a re-sent reading from 2 h ago is judged against the profile. It counted as the handover from
    # the interim ambient (the engine restarts the monitor there, dropping its baseline), and it
    # ended the hour being accumulated: that hour was folded twice into the profile, half each time.
    plant = _plant(9, 14 * HOUR_S)
    params = el.ThermalParams(interim_s=2_100.0).vector()
    cut = 10 * HOUR_S + 1_200
    clean, _ = _feed(plant, params, hi=cut)
    state = clean.copy()
    expected, flags = _resend(state, plant, params, cut - int(hours_late * HOUR_S))
    assert np.isfinite(expected).all() and not flags.any()  # judged against the profile
    assert el.handovers(state) == 0
    state, after = _feed(plant, params, state, lo=cut)
    clean, after_clean = _feed(plant, params, clean, lo=cut)
    np.testing.assert_array_equal(after, after_clean)
    np.testing.assert_array_equal(state, clean)  # the profile too: the late reading was not learnt


def test_a_late_reading_far_behind_the_interim_estimate_is_not_judged() -> None:
    # The estimate describes the ambient around its newest reading; 2 h back the daily swing has
    # moved it by several sigma, so judging against it would raise false alarms.
    plant = _plant(9, 14 * HOUR_S)
    params = el.ThermalParams(interim_s=2_100.0).vector()
    cut = 10 * HOUR_S + 1_200
    state, _ = _feed(plant, params, hi=cut)
    expected, flags = _resend(state, plant, params, cut - 3_000)  # its half hour has no profile value
    assert np.isnan(expected).all() and not flags.any()
    expected, flags = _resend(state, plant, params, cut - 600)
    assert np.isfinite(expected).all() and flags.all()


def test_bad_input_is_rejected_naming_the_field() -> None:
    state = el.new_state()
    params = el.ThermalParams().vector()
    times = T0 + np.arange(3, dtype=np.int64) * 1000
    with pytest.raises(ValueError, match="values"):
        el.update(state, times, np.ones(2), params, running_since_ms=T0, running=True, utc_offset_ms=0)
    with pytest.raises(ValueError, match="ambient"):
        el.update(
            state,
            times,
            np.ones(3),
            params,
            running_since_ms=T0,
            running=True,
            utc_offset_ms=0,
            ambient=np.array([1.0, np.nan, 1.0]),
        )
    before = state.copy()
    with pytest.raises(ValueError, match="values: readings must be finite"):
        el.update(
            state,
            times,
            np.array([1.0, np.inf, 1.0]),
            params,
            running_since_ms=T0,
            running=True,
            utc_offset_ms=0,
        )
    np.testing.assert_array_equal(state, before)  # untouched
    with pytest.raises(ValueError, match="train_s"):
        el.ThermalParams(train_s=0).vector()
    with pytest.raises(ValueError, match="interim_s"):
        el.ThermalParams(interim_s=-1.0).vector()
    with pytest.raises(ValueError, match="interim"):
        el.update(
            state,
            times,
            np.ones(3),
            params,
            running_since_ms=T0,
            running=True,
            utc_offset_ms=0,
            interim=np.zeros(2, dtype=bool),
        )


# -- through the engine ------------------------------------------------------------------------------


def _engine_plant(timezone: str = "Asia/Seoul") -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": timezone,
            "machines": [{"tenant": "t", "site": "s", "line": "L1", "id": "M01", "ideal_cycle_s": 30}],
        }
    )


def _through_engine(plant: Plant, engine: MachineEngine, run: int = 1) -> tuple[MachineState, list[Any]]:
    """``run`` > 1: consecutive batches of a machine state go through ``on_samples_each`` that many
    at a time, as the worker applies a Kafka batch's messages of one machine."""
    spec = engine.plant.machines[0]
    state = engine.new_state(spec)
    changes = np.flatnonzero(np.diff(plant.running)) + 1
    opened: list[Any] = []
    engine.on_state(state, spec, T0, "running" if plant.running[0] else "idle", None)
    edges = [*changes.tolist(), plant.times.shape[0]]
    lo = 0
    for edge in edges:
        # Batches of up to 10 readings, cut at each state change (its state record comes first).
        batches = [
            (
                int(plant.times[min(start + 10, edge) - 1]),
                [("spindle_temp", plant.times[start : start + 10][: edge - start],
                  plant.values[start : start + 10][: edge - start])],
            )
            for start in range(lo, edge, 10)
        ]  # fmt: skip
        for first in range(0, len(batches), run):
            group = batches[first : first + run]
            outs = (
                engine.on_samples_each(state, spec, group)
                if run > 1
                else [engine.on_samples(state, spec, *group[0])]
            )
            for out in outs:
                # With the evidence as opened (the alert object is updated in place later).
                opened.extend((c, dict(c.alert.evidence)) for c in out.alerts if c.status == "open")
        if edge < plant.times.shape[0]:
            new = "running" if plant.running[edge] else "idle"
            engine.on_state(state, spec, int(plant.times[edge]), new, None)
        lo = edge
    return state, opened


def test_engine_raises_a_drift_alert_on_a_temperature_ramp_and_none_on_a_normal_run() -> None:
    engine = MachineEngine(_engine_plant())
    normal_state, normal = _through_engine(_plant(5, 2 * DAY_S), engine)
    assert "spindle_temp" in normal_state.expected and "signals:spindle_temp" in normal_state.monitors
    assert not [c for c, _ in normal if c.alert.kind == "drift"]
    start = 36 * HOUR_S
    _, drifted = _through_engine(_plant(5, 2 * DAY_S, ramp=(start, 2 * HOUR_S, 6.0)), engine)
    drifts = [(c, evidence) for c, evidence in drifted if c.alert.kind == "drift"]
    assert drifts, "the 6 sigma ramp must be detected"
    alert, evidence = drifts[0][0].alert, drifts[0][1]
    assert alert.subject == "spindle_temp" and "spindle_temp" in alert.message
    assert T0 + start * 1000 <= alert.started_ms <= T0 + (start + 2 * HOUR_S) * 1000
    assert evidence["judged"] == "residual" and evidence["signal"] == "spindle_temp"
    assert evidence["expected_from"] == "profile"
    assert evidence["observed"] - evidence["expected"] == pytest.approx(evidence["value"])
    # When it opened: an upward shift of the residual (the ramp), whose single reading is within
    # noise of the shift (sigma 0.15), never the raw ~45 degC.
    assert evidence["shift_sigma"] > 1.0 and abs(evidence["value"]) < 1.0 and evidence["observed"] > 30.0
    assert "expected" in alert.message


def _interim_engine(**fields: Any) -> MachineEngine:
    config = _engine_plant().model_dump()
    config["monitoring"] = {"overrides": {"spindle_temp": fields}}
    return MachineEngine(PlantConfig.model_validate(config))


def test_engine_judges_the_first_day_against_the_interim_ambient_and_says_so() -> None:
    engine = MachineEngine(_engine_plant())  # the defaults: an interim ambient of 35 min
    start = 10 * HOUR_S
    _, drifted = _through_engine(_plant(11, 30 * HOUR_S, ramp=(start, HOUR_S, 8.0)), engine)
    drifts = [(c, evidence) for c, evidence in drifted if c.alert.kind == "drift"]
    assert drifts, "a steep ramp on the first day must be detected against the interim ambient"
    alert, evidence = drifts[0][0].alert, drifts[0][1]
    assert T0 + start * 1000 <= alert.started_ms <= T0 + (start + 2 * HOUR_S) * 1000
    assert evidence["expected_from"] == "interim" and evidence["shift_sigma"] > 1.0
    # Without the interim ambient nothing is judged on the first day (the profile needs a day).
    _, unjudged = _through_engine(
        _plant(11, 26 * HOUR_S, ramp=(start, HOUR_S, 8.0)), _interim_engine(ambient_interim_s=0.0)
    )
    assert not [c for c, _ in unjudged if c.alert.kind == "drift"]


def test_the_monitor_starts_a_new_baseline_when_the_profile_takes_over() -> None:
    engine = MachineEngine(_engine_plant())
    plant = _plant(12, 30 * HOUR_S)
    state, opened = _through_engine(plant, engine)
    model = state.expected["spindle_temp"]
    assert el.handovers(model) == 1
    assert not [c for c, _ in opened if c.alert.kind == "drift"]
    # Judged since ~4 h, but the monitor holds only the readings since the handover (~27 h).
    monitor = state.monitors["signals:spindle_temp"]
    assert 0 < monitor[signal_monitor.N] < 4 * HOUR_S


@pytest.mark.parametrize("run", [8, 30])
def test_runs_of_batches_cross_the_handover_as_one_by_one(run: int) -> None:
    # The worker applies a machine's consecutive messages as a run, preparing every batch before
    # judging them: the monitor's restart at the handover must still come after the batches before
    # it, so the new baseline holds no residual of the interim ambient.
    plant = _plant(12, 30 * HOUR_S)
    one_state, one_opened = _through_engine(plant, MachineEngine(_engine_plant()))
    run_state, run_opened = _through_engine(plant, MachineEngine(_engine_plant()), run)
    assert el.handovers(run_state.expected["spindle_temp"]) == 1
    assert run_state.to_dict() == one_state.to_dict()
    assert [(c.alert.id, c.alert.started_ms, evidence) for c, evidence in run_opened] == [
        (c.alert.id, c.alert.started_ms, evidence) for c, evidence in one_opened
    ]


def test_machine_state_keeps_the_model_and_old_states_still_load() -> None:
    engine = MachineEngine(_engine_plant())
    state, _ = _through_engine(_plant(6, 4 * HOUR_S), engine)
    data = orjson.loads(orjson.dumps(state.to_dict()))
    assert len(orjson.dumps(data["expected"]["spindle_temp"])) <= 2048
    restored = MachineState.from_dict(data)
    np.testing.assert_array_equal(restored.expected["spindle_temp"], state.expected["spindle_temp"])
    del data["expected"]  # written before the model existed
    assert MachineState.from_dict(data).expected == {}
    data["expected"] = {"spindle_temp": ["b64:AAAA"]}  # another layout: that signal learns again
    assert MachineState.from_dict(data).expected == {}


def _telemetry_lines(plant: Plant) -> bytes:
    """The synthetic plant as contract telemetry: a state record at each change, 10 s sample records."""
    base = {"v": 1, "tenant": "t", "site": "s", "line": "L1", "machine": "M01"}
    changes = set((np.flatnonzero(np.diff(plant.running)) + 1).tolist())
    lines = [
        orjson.dumps({**base, "ts": T0, "kind": "state", "state": "running" if plant.running[0] else "idle"})
    ]
    lo = 0
    for i in range(1, plant.times.shape[0] + 1):
        if i == plant.times.shape[0] or i in changes or i - lo == 10:
            signal = {
                "signal": "spindle_temp",
                "ts": plant.times[lo:i].tolist(),
                "values": plant.values[lo:i].tolist(),
            }
            lines.append(
                orjson.dumps({**base, "ts": int(plant.times[i - 1]), "kind": "samples", "signals": [signal]})
            )
            if i in changes:
                state = "running" if plant.running[i] else "idle"
                lines.append(
                    orjson.dumps({**base, "ts": int(plant.times[i]), "kind": "state", "state": state})
                )
            lo = i
    return b"\n".join(lines) + b"\n"


def test_analyze_raises_the_temperature_drift_alert_from_a_file(tmp_path: Path) -> None:
    """The same engine behind ``linepulse analyze``: a ramp on day 2 is a drift alert naming the signal."""
    start = 36 * HOUR_S
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(_telemetry_lines(_plant(7, 2 * DAY_S, ramp=(start, 90 * 60, 6.0))))
    analyze_file(source, _engine_plant(), tmp_path / "out", load_settings())
    alerts = [orjson.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()]
    # Opened (an update of an open alert is published with a later updated_at).
    drifts = [
        a
        for a in alerts
        if a["kind"] == "drift" and a["status"] == "open" and a["updated_at"] == a["started_at"]
    ]
    assert [a["evidence"]["signal"] for a in drifts] == ["spindle_temp"]
    assert drifts[0]["evidence"]["judged"] == "residual"
    assert start * 1000 <= drifts[0]["evidence"]["last_ts_ms"] - T0 <= (start + 90 * 60) * 1000


def _fed_with_hall(plant: Plant, *, separate: bool) -> tuple[MachineState, Any]:
    """6 h through an engine whose spindle_temp uses the hall sensor, fed in 10 s batches; with
    ``separate`` the hall readings come in messages of their own, before the temperature's."""
    config = _engine_plant().model_dump()
    config["monitoring"] = {"overrides": {"spindle_temp": {"ambient_signal": "hall_temp"}}}
    with_hall = MachineEngine(PlantConfig.model_validate(config))
    spec = with_hall.plant.machines[0]
    state = with_hall.new_state(spec)
    with_hall.on_state(state, spec, T0, "running" if plant.running[0] else "idle", None)
    changes = set((np.flatnonzero(np.diff(plant.running)) + 1).tolist())
    for lo in range(0, plant.times.shape[0], 10):
        hi = lo + 10
        for i in range(max(lo, 1), hi):
            if i in changes:
                with_hall.on_state(
                    state, spec, int(plant.times[i]), "running" if plant.running[i] else "idle", None
                )
        temperature = ("spindle_temp", plant.times[lo:hi], plant.values[lo:hi])
        hall = ("hall_temp", plant.times[lo:hi], plant.hall[lo:hi])
        if separate:
            with_hall.on_samples(state, spec, int(plant.times[hi - 1]), [hall])
            with_hall.on_samples(state, spec, int(plant.times[hi - 1]), [temperature])
        else:
            with_hall.on_samples(state, spec, int(plant.times[hi - 1]), [temperature, hall])
    return state, spec


@pytest.mark.parametrize("separate", [False, True], ids=["hall in the same message", "hall on its own"])
def test_engine_uses_a_configured_hall_sensor_and_relearns_when_it_is_removed(separate: bool) -> None:
    plant = _plant(8, 6 * HOUR_S)
    state, spec = _fed_with_hall(plant, separate=separate)
    model = state.expected["spindle_temp"]
    assert el.uses_ambient(model) is True and el.last_ambient(model) == pytest.approx(plant.hall[-1])
    # Judged from ~4 h (training, then an hour for the constant): the monitor has its baseline by now.
    assert "signals:spindle_temp" in state.monitors
    # Without the hall sensor configured the model learnt with it means something else: start again.
    plain = MachineEngine(_engine_plant())
    plain.on_samples(
        state,
        spec,
        int(plant.times[-1]) + 1000,
        [("spindle_temp", plant.times[-1:] + 1000, plant.values[-1:])],
    )
    assert el.uses_ambient(state.expected["spindle_temp"]) is False
    assert not el.ready(state.expected["spindle_temp"])


def test_switching_the_expected_level_off_starts_the_raw_monitor_afresh() -> None:
    """A monitor that learnt residuals (mean ~0) must not judge raw readings (mean ~45)."""
    plant = _plant(8, 6 * HOUR_S)
    state, spec = _fed_with_hall(plant, separate=False)
    assert "signals:spindle_temp" in state.monitors  # judged as residuals by now
    config = _engine_plant().model_dump()
    config["monitoring"] = {"overrides": {"spindle_temp": {"expected_level": "none", "only_running": False}}}
    raw = MachineEngine(PlantConfig.model_validate(config))
    later = plant.times[-600:] + 600_000
    opened = []
    for lo in range(0, 600, 10):
        out = raw.on_samples(
            state,
            spec,
            int(later[lo + 9]),
            [("spindle_temp", later[lo : lo + 10], plant.values[-600 + lo : -590 + lo or None])],
        )
        opened += [c for c in out.alerts if c.status == "open"]
    assert opened == []
    assert "spindle_temp" not in state.expected
    # A new baseline of raw readings is being learnt: 600 of them so far.
    assert state.monitors["signals:spindle_temp"][1] == 600


def _berlin_spring_night(night_in_one_message: bool) -> MachineState:
    """Five days of a machine that stops 10 minutes an hour for two days, then runs on, in Berlin; its
    temperature follows the hall, whose swing follows the local clock. Messages of 10 minutes, but
    the night of the change to summer time (00:00-08:00) comes in one message if so asked."""
    plant = _engine_plant("Europe/Berlin")
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    calendar = engine.calendar_for(spec)
    start = int(datetime.fromisoformat("2026-03-24T00:00:00+01:00").timestamp() * 1000)
    night = int(datetime.fromisoformat("2026-03-29T00:00:00+01:00").timestamp() * 1000)
    morning = int(datetime.fromisoformat("2026-03-29T08:00:00+02:00").timestamp() * 1000)
    times = np.arange(start, morning, 10_000, dtype=np.int64)
    running = ((times - start) % 3_600_000 < 3_000_000) | (times >= start + 2 * DAY_S * 1000)
    heat = np.zeros(times.shape[0])
    for k in range(1, times.shape[0]):
        heat[k] = running[k] + np.exp(-10 / 900) * (heat[k - 1] - running[k])
    local_hour = np.array([(int(t) + calendar.utc_offset_ms(int(t))) % 86_400_000 for t in times]) / 3.6e6
    noise = np.random.default_rng(7).normal(0.0, 0.15, times.shape[0])
    values = np.round(30.0 + 2.0 * np.sin(2 * np.pi * (local_hour - 9.0) / 24.0) + 5.0 * heat + noise, 3)
    flips = {int(times[k]): bool(running[k]) for k in np.flatnonzero(np.diff(running)) + 1}
    state = engine.new_state(spec)
    engine.on_state(state, spec, start, "running", None)
    edges = [
        *range(start, night, 600_000),
        *([night] if night_in_one_message else range(night, morning, 600_000)),
    ]
    for lo, hi in itertools.pairwise([*edges, morning]):
        if lo in flips:
            engine.on_state(state, spec, lo, "running" if flips[lo] else "idle", None)
        inside = (times >= lo) & (times < hi)
        series = [("spindle_temp", times[inside], values[inside])]
        engine.on_samples(state, spec, int(times[inside][-1]), series)
    return state


def test_a_message_across_a_change_of_the_clocks_places_each_reading_by_its_own_local_hour() -> None:
    """A gateway's backlog or a replay may carry the night of a daylight-saving change in one message:
    the hourly profile must take each reading at its own local hour, so the model ends as it does
    from messages that never cross the change (it had put the whole night an hour early)."""
    one = _berlin_spring_night(night_in_one_message=True)
    many = _berlin_spring_night(night_in_one_message=False)
    assert el.fit(many.expected["spindle_temp"]) is not None, "the profile must be in use by that night"
    assert np.array_equal(one.expected["spindle_temp"], many.expected["spindle_temp"], equal_nan=True)
