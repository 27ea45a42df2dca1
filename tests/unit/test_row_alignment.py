"""Row alignment (numba) equals the plain numpy alignment it replaced, on random batches.

The reference below is the previous ``align_rows``, kept as the definition of right: unsorted and
duplicate times, signals listed twice in a batch (the later entry counts), missing signals, readings
older than the held values, holds carried across a sequence of batches, and values too old to stand
in for their signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly.row_alignment import HELD_AT_LEAST_MS, NOT_BOUNDED, align_rows, hold_bounds

FloatArray = npt.NDArray[np.float64]
Series = Sequence[tuple[str, npt.NDArray[np.int64], FloatArray]]


def reference_align_rows(
    signals: tuple[str, ...],
    series: Series,
    hold: FloatArray,
    hold_ts: npt.NDArray[np.int64],
    max_age_ms: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    by_name: dict[str, tuple[npt.NDArray[np.int64], FloatArray]] = {}
    for name, times, values in series:
        if name in signals:
            order = np.argsort(times, kind="stable")
            by_name[name] = (times[order], values[order])
    clock = by_name.get(signals[0])
    n_signals = len(signals)
    if clock is None:
        ts = np.empty(0, dtype=np.int64)
        rows = np.empty((0, n_signals))
    else:
        ts = clock[0]
        rows = np.empty((ts.shape[0], n_signals))
        for s, name in enumerate(signals):
            got = by_name.get(name)
            column = np.full(ts.shape[0], hold[s])
            taken_at = np.full(ts.shape[0], hold_ts[s])
            if got is not None:
                times, values = got
                position = np.searchsorted(times, ts, side="right") - 1
                seen = position >= 0
                # A batch reading is newer than the held one unless the held one is later.
                use = seen & (times[np.maximum(position, 0)] >= hold_ts[s])
                column = np.where(use, values[np.maximum(position, 0)], column)
                taken_at = np.where(use, times[np.maximum(position, 0)], taken_at)
            # Never seen, or silent for longer than a value may stand in: missing.
            rows[:, s] = np.where((taken_at < 0) | (ts - taken_at > max_age_ms[s]), np.nan, column)
        complete = ~np.isnan(rows).any(axis=1)
        ts, rows = ts[complete], np.ascontiguousarray(rows[complete])
    for s, name in enumerate(signals):
        got = by_name.get(name)
        if got is not None and got[0].shape[0] and got[0][-1] >= hold_ts[s]:
            hold[s] = got[1][-1]
            hold_ts[s] = got[0][-1]
    return ts, rows


SIGNALS = ("a", "b", "c")


@st.composite
def batches(draw: st.DrawFn) -> list[list[tuple[str, npt.NDArray[np.int64], FloatArray]]]:
    out = []
    for _ in range(draw(st.integers(1, 5))):
        batch = []
        for _ in range(draw(st.integers(0, 5))):
            name = draw(st.sampled_from([*SIGNALS, "other"]))
            n = draw(st.integers(1, 6))  # an empty block crashed the reference: see below
            times = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=np.int64)
            values = np.array(
                draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n)), dtype=np.float64
            )
            batch.append((name, times, values))
        out.append(batch)
    return out


@settings(max_examples=400, deadline=None)
@given(batches(), st.lists(st.sampled_from([0, 3, 8, NOT_BOUNDED]), min_size=3, max_size=3))
def test_alignment_equals_the_reference_batch_after_batch(
    sequence: list[list[tuple[str, npt.NDArray[np.int64], FloatArray]]], bounds: list[int]
) -> None:
    hold, hold_ts = np.full(3, np.nan), np.full(3, -1, dtype=np.int64)
    ref_hold, ref_hold_ts = hold.copy(), hold_ts.copy()
    max_age = np.array(bounds, dtype=np.int64)
    for batch in sequence:
        ts, rows = align_rows(SIGNALS, batch, hold, hold_ts, max_age)
        ref_ts, ref_rows = reference_align_rows(SIGNALS, batch, ref_hold, ref_hold_ts, max_age)
        assert np.array_equal(ts, ref_ts)
        assert np.array_equal(rows, ref_rows)
        assert rows.flags.c_contiguous and rows.shape == (ts.shape[0], 3)
        assert np.array_equal(hold, ref_hold, equal_nan=True) and np.array_equal(hold_ts, ref_hold_ts)


def test_a_signal_block_without_readings_changes_nothing() -> None:
    """The previous alignment raised IndexError on it (the message was dead-lettered)."""
    hold, hold_ts = np.full(3, np.nan), np.full(3, -1, dtype=np.int64)
    one = np.array([5], dtype=np.int64)
    full = [("a", one, np.array([1.0])), ("b", one, np.array([2.0])), ("c", one, np.array([3.0]))]
    with_empty = [*full[:2], ("b", np.empty(0, dtype=np.int64), np.empty(0)), full[2]]
    ts, rows = align_rows(SIGNALS, [*full[:1], full[2]], hold.copy(), hold_ts.copy())
    assert ts.shape[0] == 0  # b never seen: no complete row
    ts, rows = align_rows(SIGNALS, with_empty, hold, hold_ts)
    assert ts.shape[0] == 0 and hold_ts[1] == -1  # the later, empty b block is the one that counts
    ts, rows = align_rows(SIGNALS, full, hold, hold_ts)
    assert ts.tolist() == [5] and rows.tolist() == [[1.0, 2.0, 3.0]]


def test_hold_bounds_follow_each_signals_rhythm_not_its_longest_silence() -> None:
    """A 1 Hz sensor is held the shortest bound, a lab value every 15 minutes twice its period; a
    machine switched off every night (one 12-hour gap a day) does not stretch either."""
    minute = 60_000
    day = 24 * 60 * minute
    fast = [np.arange(0, 12 * 60 * minute, 1000, dtype=np.int64) + d * day for d in range(3)]
    slow = [np.arange(0, 12 * 60 * minute, 15 * minute, dtype=np.int64) + d * day for d in range(3)]
    one_machine = [np.concatenate(fast)], [np.concatenate(slow)]
    assert hold_bounds(one_machine) == (HELD_AT_LEAST_MS, 30 * minute)
    # machines apart: the gap between two machines' histories is no gap of either
    assert hold_bounds([fast, slow]) == (HELD_AT_LEAST_MS, 30 * minute)
    # one machine of a type sends it hourly, nine every 15 minutes: the hourly one keeps its rows
    hourly = np.arange(0, 12 * 60 * minute, 60 * minute, dtype=np.int64)
    assert hold_bounds([[*[slow[0]] * 9, hourly]]) == (120 * minute,)
    assert hold_bounds([[np.array([5], dtype=np.int64)]]) == (HELD_AT_LEAST_MS,)  # one reading: no gap
