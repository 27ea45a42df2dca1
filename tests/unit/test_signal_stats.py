"""Streaming signal statistics against numpy at every step, and against a slow reference for EW."""

from __future__ import annotations

import doctest
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import signal_stats
from models.signal_stats import (
    COUNT,
    EW_MEAN,
    EW_VAR,
    LAST,
    LAST_TS,
    M2,
    MAX,
    MEAN,
    MIN,
    STATE_SIZE,
    SUM,
    alpha_from_half_life,
    from_list,
    merge,
    new_state,
    summarize,
    to_list,
    update,
    update_runs,
    update_runs_side_by_side,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _reference_ew(values: list[float], alpha: float) -> tuple[float, float]:
    """The textbook recurrence, one Python float at a time."""
    mean, var = values[0], 0.0
    for x in values[1:]:
        diff = x - mean
        incr = alpha * diff
        mean += incr
        var = (1.0 - alpha) * (var + diff * incr)
    return mean, var


def _readings(rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    ts = T0 + np.cumsum(rng.integers(0, 50, size=n)).astype(np.int64)
    # An offset and a drift: catastrophic cancellation would show up against numpy.
    values = 1_000.0 + np.linspace(0.0, 5.0, n) + rng.normal(0.0, 2.0, size=n)
    return ts, values


def test_module_docstring_examples_run() -> None:
    assert doctest.testmod(signal_stats, raise_on_error=False).failed == 0


def test_new_state_is_empty() -> None:
    state = new_state()
    assert state.shape == (STATE_SIZE,)
    assert state.dtype == np.float64
    assert state[COUNT] == 0 and state[MEAN] == 0 and state[M2] == 0 and state[SUM] == 0
    assert all(math.isnan(state[i]) for i in (MIN, MAX, LAST, LAST_TS, EW_MEAN, EW_VAR))
    assert summarize(state) == signal_stats.SignalSummary(0, None, None, None, None, None, None, None, None)
    assert state.nbytes < 2048


@pytest.mark.parametrize("seed", range(5))
def test_matches_numpy_at_every_step(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts, values = _readings(rng, 3_000)
    alpha = 0.05
    state = new_state()
    start = 0
    while start < len(values):
        stop = min(len(values), start + int(rng.integers(0, 200)))  # batch sizes 0..199, empty included
        update(state, ts[start:stop], values[start:stop], alpha)
        start = stop
        if stop == 0:
            continue
        prefix = values[:stop]
        summary = summarize(state)
        assert summary.count == stop
        assert summary.mean == pytest.approx(prefix.mean(), rel=1e-9)
        assert state[SUM] == pytest.approx(prefix.sum(), rel=1e-9)
        assert summary.min == prefix.min() and summary.max == prefix.max()
        assert summary.last == prefix[-1] and summary.last_ts_ms == ts[stop - 1]
        if stop >= 2:
            assert summary.std == pytest.approx(prefix.std(ddof=1), rel=1e-9)
        else:
            assert summary.std is None
        ew_mean, ew_var = _reference_ew(prefix.tolist(), alpha)
        assert summary.ew_mean == pytest.approx(ew_mean, rel=1e-9)
        assert summary.ew_std == pytest.approx(math.sqrt(ew_var), rel=1e-9, abs=1e-12)


def test_single_reading() -> None:
    state = new_state()
    update(state, np.array([T0]), np.array([4.5]))
    assert summarize(state) == signal_stats.SignalSummary(1, 4.5, None, 4.5, 4.5, 4.5, T0, 4.5, 0.0)


def test_late_batch_counts_but_does_not_replace_last() -> None:
    state = new_state()
    update(state, np.array([T0 + 1_000]), np.array([1.0]))
    update(state, np.array([T0, T0 + 500]), np.array([7.0, 9.0]))
    summary = summarize(state)
    assert summary.count == 3 and summary.max == 9.0
    assert (summary.last, summary.last_ts_ms) == (1.0, T0 + 1_000)


def test_equal_timestamps_later_arrival_wins() -> None:
    state = new_state()
    update(state, np.array([T0, T0]), np.array([1.0, 2.0]))
    assert state[LAST] == 2.0
    update(state, np.array([T0]), np.array([3.0]))
    assert state[LAST] == 3.0 and state[LAST_TS] == T0


def test_half_life() -> None:
    alpha = alpha_from_half_life(10)
    assert (1.0 - alpha) ** 10 == pytest.approx(0.5)
    with pytest.raises(ValueError, match="readings"):
        alpha_from_half_life(0)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(finite, max_size=40),
    second=st.lists(finite, max_size=40),
    gap=st.integers(min_value=-5_000, max_value=5_000),
)
def test_merge_equals_update_over_concatenation(first: list[float], second: list[float], gap: int) -> None:
    ts_a = T0 + np.arange(len(first), dtype=np.int64) * 10
    ts_b = T0 + gap + np.arange(len(second), dtype=np.int64) * 10
    a, b, both = new_state(), new_state(), new_state()
    update(a, ts_a, np.array(first, dtype=np.float64))
    update(b, ts_b, np.array(second, dtype=np.float64))
    a_before, b_before = a.copy(), b.copy()
    update(both, np.concatenate([ts_a, ts_b]), np.array(first + second, dtype=np.float64))
    merged = merge(a, b)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
    assert merged[COUNT] == both[COUNT]
    scale = max([1.0, *map(abs, first + second)])
    np.testing.assert_allclose(merged[[MEAN, SUM]], both[[MEAN, SUM]], rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(merged[M2], both[M2], rtol=1e-9, atol=1e-9 * scale * scale)
    np.testing.assert_array_equal(merged[[MIN, MAX, LAST_TS, LAST]], both[[MIN, MAX, LAST_TS, LAST]])
    # EW fields come from the newer side (documented), not from the concatenation.
    if first and second:
        newer = b if b[LAST_TS] >= a[LAST_TS] else a
        np.testing.assert_array_equal(merged[[EW_MEAN, EW_VAR]], newer[[EW_MEAN, EW_VAR]])


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.lists(finite, max_size=30), min_size=1, max_size=6),
    shuffle_ts=st.booleans(),
    seeded=st.booleans(),
)
def test_update_runs_is_bit_for_bit_one_update_per_run(
    runs: list[list[float]], shuffle_ts: bool, seeded: bool
) -> None:
    sizes = [len(run) for run in runs]
    values = np.array([x for run in runs for x in run], dtype=np.float64)
    ts = T0 + np.arange(values.shape[0], dtype=np.int64) * 10
    if shuffle_ts:  # late readings and equal timestamps across runs
        ts = T0 + (np.arange(values.shape[0], dtype=np.int64) * 7919) % 13 * 10
    one_by_one, together = new_state(), new_state()
    if seeded:
        for state in (one_by_one, together):
            update(state, np.array([T0, T0 + 5]), np.array([3.0, -1.0]))
    start = 0
    for size in sizes:
        if size:
            update(one_by_one, ts[start : start + size], values[start : start + size])
        start += size
    update_runs(together, ts, values, np.cumsum(np.array(sizes, dtype=np.int64)))
    np.testing.assert_array_equal(together, one_by_one)


def _ordered_ts(sizes: list[int], steps: list[int], back: list[int]) -> np.ndarray:
    """Each run's timestamps oldest first (equal ones included), a run possibly older than the one
    before it (a late message): what the engine gives the statistics."""
    ts: list[int] = []
    for k, size in enumerate(sizes):
        t = T0 + 100_000 * k - 150_000 * back[k % len(back)]
        for i in range(size):
            t += steps[i % len(steps)]
            ts.append(t)
    return np.array(ts, dtype=np.int64)


def _lasts(ts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each run's last timestamp (an empty run's is never read)."""
    return np.array([ts[end - 1] if end else 0 for end in ends], dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.lists(finite, max_size=30), min_size=1, max_size=6),
    steps=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    back=st.lists(st.integers(0, 1), min_size=1, max_size=3),
    seeded=st.booleans(),
)
def test_update_runs_of_ordered_runs_with_their_last_timestamps_is_bit_for_bit_update_runs(
    runs: list[list[float]], steps: list[int], back: list[int], seeded: bool
) -> None:
    sizes = [len(run) for run in runs]
    values = np.array([x for run in runs for x in run], dtype=np.float64)
    ends = np.cumsum(np.array(sizes, dtype=np.int64))
    ts = _ordered_ts(sizes, steps, back)
    joined, lasts = new_state(), new_state()
    if seeded:
        for state in (joined, lasts):
            update(state, np.array([T0, T0 + 5]), np.array([3.0, -1.0]))
    update_runs(joined, ts, values, ends)
    update_runs(lasts, _lasts(ts, ends), values, ends, lasts=True)
    np.testing.assert_array_equal(lasts, joined)


@settings(max_examples=100, deadline=None)
@given(
    runs=st.lists(st.lists(st.tuples(finite, finite, finite), max_size=30), min_size=1, max_size=6),
    signals=st.sampled_from([2, 3]),
    steps=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    back=st.lists(st.integers(0, 1), min_size=1, max_size=3),
)
def test_side_by_side_of_ordered_runs_with_their_last_timestamps_is_bit_for_bit(
    runs: list[list[tuple[float, float, float]]], signals: int, steps: list[int], back: list[int]
) -> None:
    sizes = [len(run) for run in runs]
    ends = np.cumsum(np.array(sizes, dtype=np.int64))
    columns = [np.array([row[k] for run in runs for row in run], dtype=np.float64) for k in range(signals)]
    ts = [_ordered_ts(sizes, steps[k:] or steps, back) + k for k in range(signals)]
    joined = [new_state() for _ in range(signals)]
    lasts = [new_state() for _ in range(signals)]
    update_runs_side_by_side(list(zip(joined, ts, columns, strict=True)), ends)
    update_runs_side_by_side(
        list(zip(lasts, [_lasts(t, ends) for t in ts], columns, strict=True)), ends, lasts=True
    )
    for k in range(signals):
        np.testing.assert_array_equal(lasts[k], joined[k])


def test_lasts_take_one_timestamp_per_run() -> None:
    state = new_state()
    values, ends = np.array([1.0, 2.0, 3.0]), np.array([1, 3])
    with pytest.raises(ValueError, match=r"^values: has 3 timestamps but there are 2 runs"):
        update_runs(state, np.array([T0, T0, T0]), values, ends, lasts=True)
    with pytest.raises(ValueError, match=r"group\[1\]\.values: has 1 timestamps but there are 2 runs"):
        update_runs_side_by_side(
            [(new_state(), np.array([T0, T0]), values), (new_state(), np.array([T0]), values)],
            ends,
            lasts=True,
        )
    np.testing.assert_array_equal(state, new_state())
    # The newest of an ordered run is its last reading: LAST and LAST_TS come from there.
    update_runs(state, np.array([T0 + 10, T0 + 30]), values, ends, lasts=True)
    assert (state[LAST], state[LAST_TS]) == (3.0, float(T0 + 30))


def test_update_runs_rejects_bad_ends_and_non_finite_values_untouched() -> None:
    state = new_state()
    update(state, np.array([T0]), np.array([1.0]))
    before = state.copy()
    ts, values = np.array([T0, T0, T0]), np.array([1.0, 2.0, 3.0])
    for ends in (np.array([1, 2]), np.array([2, 1, 3]), np.array([], dtype=np.int64), np.array([-1, 3])):
        with pytest.raises(ValueError, match=r"^ends"):
            update_runs(state, ts, values, ends)
    with pytest.raises(ValueError, match=r"values\[2\]"):
        update_runs(state, ts, np.array([1.0, 2.0, np.nan]), np.array([1, 3]))
    np.testing.assert_array_equal(state, before)


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.lists(st.tuples(finite, finite, finite), max_size=30), min_size=1, max_size=6),
    signals=st.sampled_from([2, 3]),
    stretch=st.integers(1, 9),
    shuffle_ts=st.booleans(),
    seeded=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_side_by_side_is_bit_for_bit_update_runs_of_each(
    runs: list[list[tuple[float, float, float]]],
    signals: int,
    stretch: int,
    shuffle_ts: bool,
    seeded: list[bool],
) -> None:
    # Stretched runs cross the subnormal flush's 64-reading blocks.
    runs = [run * stretch for run in runs]
    sizes = [len(run) for run in runs]
    ends = np.cumsum(np.array(sizes, dtype=np.int64))
    n = int(ends[-1])
    columns = [np.array([row[k] for run in runs for row in run], dtype=np.float64) for k in range(signals)]
    ts = [T0 + np.arange(n, dtype=np.int64) * 10 + k for k in range(signals)]
    if shuffle_ts:  # late readings and equal timestamps across runs
        ts[1] = T0 + (np.arange(n, dtype=np.int64) * 7919) % 13 * 10
    alone = [new_state() for _ in range(signals)]
    together = [new_state() for _ in range(signals)]
    for k in range(signals):
        if seeded[k]:
            for state in (alone[k], together[k]):
                update(state, np.array([T0, T0 + 5]), np.array([3.0, -1.0]))
        update_runs(alone[k], ts[k], columns[k], ends)
    update_runs_side_by_side(list(zip(together, ts, columns, strict=True)), ends)
    for k in range(signals):
        np.testing.assert_array_equal(together[k], alone[k])


@pytest.mark.parametrize("signals", [2, 3])
def test_side_by_side_rejects_bad_input_with_every_state_untouched(signals: int) -> None:
    states = [new_state() for _ in range(signals)]
    update(states[0], np.array([T0]), np.array([1.0]))
    before = [state.copy() for state in states]
    ts, values = np.array([T0, T0, T0]), np.array([1.0, 2.0, 3.0])
    nan = np.array([1.0, 2.0, np.nan])

    def group(**changed: tuple[np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [(state, *changed.get(f"s{k}", (ts, values))) for k, state in enumerate(states)]

    for ends in (np.array([1, 2]), np.array([2, 1, 3]), np.array([], dtype=np.int64), np.array([-1, 3])):
        with pytest.raises(ValueError, match=r"^ends"):
            update_runs_side_by_side(group(), ends)
    last = f"s{signals - 1}"
    with pytest.raises(ValueError, match=r"^ends"):
        update_runs_side_by_side(group(**{last: (ts[:2], values[:2])}), np.array([1, 3]))
    for k in range(signals):
        with pytest.raises(ValueError, match=rf"group\[{k}\]\.values: values\[2\]"):
            update_runs_side_by_side(group(**{f"s{k}": (ts, nan)}), np.array([1, 3]))
    with pytest.raises(ValueError, match=rf"group\[{signals - 1}\]\.values: has 3 readings but ts_ms has 2"):
        update_runs_side_by_side(group(**{last: (ts[:2], values)}), np.array([1, 3]))
    with pytest.raises(ValueError, match=r"its own state"):
        update_runs_side_by_side([(states[0], ts, values)] * signals, np.array([1, 3]))
    with pytest.raises(ValueError, match=r"2 or 3 signals"):
        update_runs_side_by_side(group()[:1], np.array([1, 3]))
    for state, kept in zip(states, before, strict=True):
        np.testing.assert_array_equal(state, kept)


@pytest.mark.parametrize(
    ("state", "ts", "values", "name"),
    [
        (np.zeros(STATE_SIZE, np.float32), np.array([T0]), np.array([1.0]), "state"),
        (np.zeros(STATE_SIZE + 1), np.array([T0]), np.array([1.0]), "state"),
        (np.zeros((2, STATE_SIZE))[:, 0], np.array([T0]), np.array([1.0]), "state"),
        (new_state(), np.array([float(T0)]), np.array([1.0]), "ts_ms"),
        (new_state(), [T0], np.array([1.0]), "ts_ms"),
        (new_state(), np.array([[T0]]), np.array([1.0]), "ts_ms"),
        (new_state(), np.array([T0]), np.array([1], dtype=np.int64), "values"),
        (new_state(), np.array([T0]), np.array([1.0], dtype=np.float32), "values"),
        (new_state(), np.array([T0, T0]), np.array([1.0, 2.0, 3.0])[::2], "values"),
        (new_state(), np.array([T0, T0]), np.array([1.0]), "values"),
        (new_state(), np.array([T0, T0]), np.array([1.0, np.nan]), "values"),
        (new_state(), np.array([T0]), np.array([np.inf]), "values"),
    ],
)
def test_bad_input_names_the_argument(state: object, ts: object, values: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}"):
        update(state, ts, values)  # type: ignore[arg-type]


def test_rejected_batch_leaves_state_unchanged() -> None:
    state = new_state()
    update(state, np.array([T0]), np.array([1.0]))
    before = state.copy()
    with pytest.raises(ValueError, match=r"values\[2\]"):
        update(state, np.array([T0, T0, T0]), np.array([1.0, 2.0, np.nan]))
    np.testing.assert_array_equal(state, before)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, math.nan])
def test_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match=r"^alpha"):
        update(new_state(), np.array([T0]), np.array([1.0]), alpha)


def test_read_only_state_rejected_by_update_but_readable() -> None:
    state = new_state()
    state.setflags(write=False)
    with pytest.raises(ValueError, match=r"^state: must be writable"):
        update(state, np.array([T0]), np.array([1.0]))
    assert summarize(state).count == 0


def test_read_only_columns_accepted() -> None:
    ts, values = np.array([T0, T0 + 1]), np.array([1.0, 2.0])
    ts.setflags(write=False)
    values.setflags(write=False)
    state = new_state()
    update(state, ts, values)
    assert state[COUNT] == 2


@pytest.mark.parametrize("readings", [0, 1, 5])
def test_json_round_trip(readings: int) -> None:
    state = new_state()
    update(state, T0 + np.arange(readings, dtype=np.int64), np.arange(readings, dtype=np.float64))
    encoded = json.dumps(to_list(state), allow_nan=False)
    restored = from_list(json.loads(encoded))
    np.testing.assert_array_equal(restored, state)  # NaN == NaN here


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([0.0] * (STATE_SIZE - 1), "^values: expected a list"),
        ({"count": 0}, "^values: expected a list"),
        ([0.0, "1", *[0.0] * (STATE_SIZE - 2)], r"^values\[1\]"),
        ([True, *[0.0] * (STATE_SIZE - 1)], r"^values\[0\]"),
        ([-1.0, *[0.0] * (STATE_SIZE - 1)], r"^values\[0\]: the count"),
        ([1.5, *[0.0] * (STATE_SIZE - 1)], r"^values\[0\]: the count"),
        ([None, *[0.0] * (STATE_SIZE - 1)], r"^values\[0\]: the count"),
    ],
)
def test_from_list_rejects(payload: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_list(payload)  # type: ignore[arg-type]


def test_fast_path_checks_sizes_and_accepts_every_valid_array() -> None:
    """update() calls the compiled kernel directly (its dispatcher checks the types); the kernel
    checks the sizes, and anything the dispatcher refuses takes the checked path: the same errors,
    and the same state for every valid kind of array."""
    update(new_state(), np.array([T0]), np.array([1.0]))  # compiles and seals the kernel
    kernel: Any = signal_stats._update_kernel
    assert len(kernel.signatures) == 4  # writable and read-only columns, in every combination
    with pytest.raises(ValueError, match=r"^state: expected float64 of shape"):
        update(np.zeros(STATE_SIZE + 1), np.array([T0]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"^values: has 1 readings but ts_ms has 2"):
        update(new_state(), np.array([T0, T0]), np.array([1.0]))
    ts, values = T0 + np.arange(50, dtype=np.int64), np.linspace(0.0, 5.0, 50)
    reference = new_state()
    update(reference, ts, values)
    for ts_ro, values_ro in ((True, False), (False, True), (True, True)):
        ts_view, values_view = ts.copy(), values.copy()
        ts_view.setflags(write=not ts_ro)
        values_view.setflags(write=not values_ro)
        state = new_state()
        update(state, ts_view, values_view)
        np.testing.assert_array_equal(state, reference)
    state = new_state().view(_Subclass)
    update(state, ts.view(_Subclass), values.view(_Subclass))
    np.testing.assert_array_equal(state, reference)
    state = new_state()
    update(state, ts, values, 1)  # an int alpha, as before: the checked path
    with pytest.raises(ValueError, match=r"^alpha"):
        update(state, ts, values, "0.1")  # type: ignore[arg-type]
    assert len(kernel.signatures) == 4  # nothing compiled on the way


class _Subclass(np.ndarray):
    pass


def test_first_non_finite_equals_numpy_on_every_kind_of_float() -> None:
    # The kernel screens the exponent bits before it scans: random bit patterns (NaNs of every
    # payload, infinities, subnormals, zeros of both signs), read-only views included.
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    exponent = np.uint64(0x7FF0000000000000)
    bits[::97] |= exponent  # some non-finite ones
    bits[1::7] &= ~exponent  # and subnormals and zeros
    floats = bits.view(np.float64)
    for lo in range(0, floats.shape[0], 200):
        chunk = floats[lo : lo + 200]
        bad = np.flatnonzero(~np.isfinite(chunk))
        assert signal_stats._first_non_finite(chunk) == (int(bad[0]) if bad.size else -1)
        finite = chunk[np.isfinite(chunk)]
        finite.flags.writeable = False
        assert signal_stats._first_non_finite(finite) == -1
    for bad_value in (np.nan, np.inf, -np.inf):
        row = np.array([np.finfo(np.float64).max, 5e-324, -0.0, bad_value, bad_value])
        assert signal_stats._first_non_finite(row) == 3
