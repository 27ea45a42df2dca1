"""Aligning a machine's readings into rows: one per reading of the model's first signal (the clock).

Every other signal contributes its newest reading at or before the row's instant, or the value held
from earlier batches; a reading older than the held value of its signal still aligns by its own time
but never replaces the newer held value. Rows missing a signal (never seen yet, or not for its hold
bound before the row's instant: a sensor that failed) are dropped, rather than scored with a value
from long ago. A model learns each signal's bound from its training history (:func:`hold_bounds`),
so a signal sent every 15 minutes is held between its readings and a 1 Hz one for 10 minutes.

One numba pass over the batch's readings laid end to end: per call the Python side only joins the
arrays, so a message of one reading per signal costs a few microseconds instead of a handful of
numpy calls per signal (alignment was two thirds of scoring a one-row batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from models.arrays import FloatArray
from models.numba_config import kernel

__all__ = ["HELD_AT_LEAST_MS", "NOT_BOUNDED", "Series", "align_rows", "hold_bounds"]

# The shortest hold bound a model learns: a signal's last reading stands in for it this long at least.
HELD_AT_LEAST_MS: Final = 10 * 60_000
# The bound of a model registered before bounds were learnt: held for ever, as it was trained.
NOT_BOUNDED: Final = np.iinfo(np.int64).max // 2
_TYPICAL_GAP_PERCENTILE: Final = 95.0
_GAPS_PER_BOUND: Final = 2


def hold_bounds(times: Sequence[Sequence[npt.NDArray[np.int64]]]) -> tuple[int, ...]:
    """Per signal, how long its last reading may stand in for it: twice the 95th percentile of the
    gaps between its readings in training, taken per machine (``times[signal]`` holds one array
    per machine) and the longest of those, at least :data:`HELD_AT_LEAST_MS`. Per machine: one
    machine of a type that sends a value hourly, next to nine that send it every 15 minutes, must
    keep its rows. A percentile, not the longest gap: a machine switched off overnight must not
    teach that a reading stays good for 12 hours."""
    bounds = []
    for per_machine in times:
        bound = HELD_AT_LEAST_MS
        for machine_times in per_machine:
            gaps = np.diff(np.sort(machine_times))
            gaps = gaps[gaps > 0]
            if gaps.shape[0]:
                typical = math.ceil(float(np.percentile(gaps, _TYPICAL_GAP_PERCENTILE)))
                bound = max(bound, _GAPS_PER_BOUND * typical)
        bounds.append(bound)
    return tuple(bounds)


Series = Sequence[tuple[str, npt.NDArray[np.int64], FloatArray]]


@kernel
def _align_kernel(
    block_signal: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    times: npt.NDArray[np.int64],
    values: FloatArray,
    n_signals: int,
    hold: FloatArray,
    hold_ts: npt.NDArray[np.int64],
    max_age_ms: npt.NDArray[np.int64],
    out_ts: npt.NDArray[np.int64],
    out_rows: FloatArray,
) -> int:
    # The last block of each signal is the one that counts (as a later entry of a mapping would).
    chosen = np.full(n_signals, -1, dtype=np.int64)
    for b in range(block_signal.shape[0]):
        chosen[block_signal[b]] = b
    order_t = np.empty(times.shape[0], dtype=np.int64)
    order_v = np.empty(times.shape[0], dtype=np.float64)
    for s in range(n_signals):
        b = chosen[s]
        if b < 0:
            continue
        lo, hi = starts[b], starts[b + 1]
        ordered = True
        for i in range(lo + 1, hi):
            if times[i] < times[i - 1]:
                ordered = False
                break
        if ordered:
            order_t[lo:hi] = times[lo:hi]
            order_v[lo:hi] = values[lo:hi]
        else:
            perm = np.argsort(times[lo:hi], kind="mergesort")  # stable: equal times keep their order
            for j in range(hi - lo):
                order_t[lo + j] = times[lo + perm[j]]
                order_v[lo + j] = values[lo + perm[j]]
    rows = 0
    clock = chosen[0]
    if clock >= 0:
        c_lo, c_hi = starts[clock], starts[clock + 1]
        pointer = np.empty(n_signals, dtype=np.int64)
        for s in range(n_signals):
            pointer[s] = starts[chosen[s]] - 1 if chosen[s] >= 0 else -1
        for c in range(c_lo, c_hi):
            at = order_t[c]
            complete = True
            for s in range(n_signals):
                value, value_at = hold[s], hold_ts[s]
                b = chosen[s]
                if b >= 0:
                    lo, hi = starts[b], starts[b + 1]
                    p = pointer[s]
                    while p + 1 < hi and order_t[p + 1] <= at:
                        p += 1
                    pointer[s] = p
                    if p >= lo and order_t[p] >= value_at:
                        value, value_at = order_v[p], order_t[p]
                if value_at < 0 or at - value_at > max_age_ms[s]:
                    value = np.nan
                out_rows[rows, s] = value
                if np.isnan(value):
                    complete = False
            if complete:
                out_ts[rows] = at
                rows += 1
    for s in range(n_signals):
        b = chosen[s]
        if b >= 0 and starts[b + 1] > starts[b]:
            last = starts[b + 1] - 1
            if order_t[last] >= hold_ts[s]:
                hold[s] = order_v[last]
                hold_ts[s] = order_t[last]
    return rows


def align_rows(
    signals: tuple[str, ...],
    series: Series,
    hold: FloatArray,
    hold_ts: npt.NDArray[np.int64],
    max_age_ms: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Rows at the clock signal's reading times, each signal's value at most ``max_age_ms[signal]``
    older than the row (None: no bound); updates ``hold``/``hold_ts`` in place."""
    index = {name: s for s, name in enumerate(signals)}
    used = [(index[name], times, values) for name, times, values in series if name in index]
    for _, times, values in used:
        if times.ndim != 1 or times.shape != values.shape:
            raise ValueError(f"series: times {times.shape} and values {values.shape} differ or are not 1-D")
    n_signals = len(signals)
    if not used:
        return np.empty(0, dtype=np.int64), np.empty((0, n_signals))
    lengths = [times.shape[0] for _, times, _ in used]
    starts = np.zeros(len(used) + 1, dtype=np.int64)
    starts[1:] = np.cumsum(lengths)
    all_times = np.concatenate([times for _, times, _ in used]).astype(np.int64, copy=False)
    all_values = np.concatenate([values for _, _, values in used]).astype(np.float64, copy=False)
    block_signal = np.array([s for s, _, _ in used], dtype=np.int64)
    clock_rows = max((n for (s, _, _), n in zip(used, lengths, strict=True) if s == 0), default=0)
    out_ts = np.empty(clock_rows, dtype=np.int64)
    out_rows = np.empty((clock_rows, n_signals))
    max_age = np.full(n_signals, NOT_BOUNDED, dtype=np.int64) if max_age_ms is None else max_age_ms
    if max_age.shape != (n_signals,) or max_age.dtype != np.int64:
        raise ValueError(f"max_age_ms: {max_age.shape} {max_age.dtype}, expected ({n_signals},) int64")
    rows = _align_kernel(
        block_signal, starts, all_times, all_values, n_signals, hold, hold_ts, max_age, out_ts, out_rows
    )
    return out_ts[:rows], out_rows[:rows]
