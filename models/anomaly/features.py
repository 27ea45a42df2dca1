"""Windowed features of a machine's aligned signals: one multivariate vector per row.

A *row* is one instant with a value for every signal the model uses (see
:func:`models.anomaly.scoring.align_rows`). For row ``i`` the window is rows ``max(0, i-w+1) .. i``
and, per signal, the kernel computes :data:`STATS`:

=========  ============================================================================
``mean``   arithmetic mean over the window (a short window smooths noise)
``std``    population standard deviation (ddof=0; 0 for a window of one row)
``min``    smallest value
``max``    largest value
``last``   the row's own value
``slope``  least-squares slope per row (0 for a window of one row)
=========  ============================================================================

The feature vector is ``[signal_0:stat_a, signal_0:stat_b, ..., signal_1:stat_a, ...]`` for the
statistics a :class:`FeatureSpec` selects. The stream keeps the last ``w - 1`` rows of a machine as
*history* and passes them with each batch, so a row's features do not depend on where batches
begin and end: training (:func:`window_features` over a whole file with empty history) and the
stream compute bit-identical vectors. Each window is evaluated from its rows, not by running sums,
for that reason: running sums would make the rounding depend on the batch boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from models.arrays import FloatArray
from models.numba_config import kernel

__all__ = ["STATS", "FeatureSpec", "as_rows", "next_history", "window_features"]


STATS: Final[tuple[str, ...]] = ("mean", "std", "min", "max", "last", "slope")
_N_STATS: Final = len(STATS)
MAX_WINDOW: Final = 10_000  # rows; far beyond any useful window, bounds the per-row cost


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which signals, over how many rows, with which statistics; stored with every model."""

    signals: tuple[str, ...]
    window: int = 10
    stats: tuple[str, ...] = ("mean", "std")

    def __post_init__(self) -> None:
        if not self.signals:
            raise ValueError("signals: a feature spec needs at least one signal")
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals: listed twice in {self.signals}")
        if not 1 <= self.window <= MAX_WINDOW:
            raise ValueError(f"window: must be 1..{MAX_WINDOW} rows, got {self.window}")
        unknown = [stat for stat in self.stats if stat not in STATS]
        if unknown or not self.stats or len(set(self.stats)) != len(self.stats):
            raise ValueError(f"stats: expected distinct names out of {STATS}, got {self.stats}")

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in column order, ``signal:stat``."""
        return tuple(f"{signal}:{stat}" for signal in self.signals for stat in self.stats)

    @property
    def columns(self) -> npt.NDArray[np.int64]:
        """Indices of the selected features in the kernel's full output (all :data:`STATS`)."""
        picks = [STATS.index(stat) for stat in self.stats]
        return np.array([s * _N_STATS + p for s in range(len(self.signals)) for p in picks], dtype=np.int64)


@kernel
def _features_kernel(rows: FloatArray, first: int, window: int, out: FloatArray) -> None:
    """All statistics of every signal for rows ``first ..``; ``out`` is (rows - first, signals * 6)."""
    n_rows, n_signals = rows.shape
    for i in range(first, n_rows):
        lo = max(0, i - window + 1)
        m = i - lo + 1
        k_mean = (m - 1) / 2.0
        # sum over k of (k - k_mean)^2 for k = 0..m-1 in closed form: m (m^2 - 1) / 12.
        k_ss = m * (m * m - 1.0) / 12.0
        r = i - first
        for s in range(n_signals):
            total = 0.0
            lo_v = rows[lo, s]
            hi_v = rows[lo, s]
            for j in range(lo, i + 1):
                x = rows[j, s]
                total += x
                lo_v = min(lo_v, x)
                hi_v = max(hi_v, x)
            mean = total / m
            ss = 0.0
            cross = 0.0
            for j in range(lo, i + 1):
                d = rows[j, s] - mean
                ss += d * d
                cross += (j - lo - k_mean) * d
            base = s * 6
            out[r, base + 0] = mean
            out[r, base + 1] = math.sqrt(ss / m)
            out[r, base + 2] = lo_v
            out[r, base + 3] = hi_v
            out[r, base + 4] = rows[i, s]
            out[r, base + 5] = cross / k_ss if m > 1 else 0.0


def as_rows(array: object, n_signals: int, name: str) -> FloatArray:
    """A C-contiguous float64 (n, n_signals) array of finite values, or ValueError."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != np.float64 or array.ndim != 2 or array.shape[1] != n_signals:
        raise ValueError(
            f"{name}: expected float64 of shape (n, {n_signals}), got {array.dtype} {array.shape}"
        )
    if array.size and not np.isfinite(array).all():
        raise ValueError(f"{name}: values must be finite")
    return np.ascontiguousarray(array)


def window_features(spec: FeatureSpec, rows: FloatArray, history: FloatArray | None = None) -> FloatArray:
    """Feature matrix (len(rows), len(spec.names)) of ``rows``, preceded by ``history`` (oldest first).

    ``history`` is what :func:`next_history` returned for the previous batch (or ``None`` at the
    start); only its last ``window - 1`` rows are used.
    """
    n_signals = len(spec.signals)
    new = as_rows(rows, n_signals, "rows")
    past = np.empty((0, n_signals)) if history is None else as_rows(history, n_signals, "history")
    past = past[max(0, past.shape[0] - (spec.window - 1)) :]
    joined = np.ascontiguousarray(np.concatenate((past, new))) if past.shape[0] else new
    full = np.empty((new.shape[0], n_signals * _N_STATS), dtype=np.float64)
    if new.shape[0]:
        _features_kernel(joined, past.shape[0], spec.window, full)
    if len(spec.stats) == _N_STATS and spec.stats == STATS:
        return full
    return np.ascontiguousarray(full[:, spec.columns])


def next_history(spec: FeatureSpec, rows: FloatArray, history: FloatArray | None = None) -> FloatArray:
    """The last ``window - 1`` rows of ``history`` followed by ``rows``: the next batch's history."""
    n_signals = len(spec.signals)
    keep = spec.window - 1
    parts = [] if history is None else [as_rows(history, n_signals, "history")]
    parts.append(as_rows(rows, n_signals, "rows"))
    joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return np.ascontiguousarray(joined[joined.shape[0] - min(keep, joined.shape[0]) :])
