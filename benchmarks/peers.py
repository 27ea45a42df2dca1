"""What linepulse is compared with: a pure-Python reference of the signal statistics, and river's.

Both keep the statistics :mod:`models.signal_stats` keeps (count, mean, variance, min, max, last,
exponentially weighted mean and variance, sum), one reading at a time, which is how a user of river
or of plain Python would write it. This module imports only numpy and river, so the Quix Streams
pipeline (:mod:`benchmarks.quix_pipeline`, run in its own virtualenv) uses the very same peer code.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["PythonSignalStats", "RiverSignalStats"]


def _as_list(column: Any) -> list[Any]:
    # .tolist() gives Python floats at once; iterating an array would box numpy scalars one by one.
    return column.tolist() if hasattr(column, "tolist") else list(column)


class PythonSignalStats:
    """Welford's update plus the EW recurrences, per reading, in plain Python: the slow reference."""

    __slots__ = ("alpha", "count", "ew_mean", "ew_var", "last", "last_ts", "m2", "max", "mean", "min", "sum")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = math.nan
        self.last_ts = -1
        self.ew_mean = math.nan
        self.ew_var = 0.0
        self.sum = 0.0

    def update(self, ts_ms: int, x: float) -> None:
        if not math.isfinite(x):
            raise ValueError(f"{x} is not finite")
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)
        self.sum += x
        if ts_ms >= self.last_ts:
            self.last, self.last_ts = x, ts_ms
        if self.count == 1:
            self.ew_mean = x
        else:
            d = x - self.ew_mean
            self.ew_mean += self.alpha * d
            self.ew_var = (1.0 - self.alpha) * (self.ew_var + self.alpha * d * d)

    def update_many(self, ts_ms: Any, values: Any) -> None:
        """Readings from numpy arrays or lists, one at a time."""
        for t, x in zip(_as_list(ts_ms), _as_list(values), strict=True):
            self.update(t, x)


class RiverSignalStats:
    """The same statistics from river's ``stats`` objects (and optionally its Page-Hinkley detector)."""

    __slots__ = ("ew_mean", "ew_var", "last", "last_ts", "max", "min", "page_hinkley", "sum", "var")

    def __init__(self, alpha: float, *, page_hinkley: bool = False) -> None:
        from river import drift, stats

        self.var = stats.Var()  # holds the count and the mean too
        self.min = stats.Min()
        self.max = stats.Max()
        self.sum = stats.Sum()
        self.ew_mean = stats.EWMean(fading_factor=alpha)
        self.ew_var = stats.EWVar(fading_factor=alpha)
        # Any: river ships no type hints for its detectors.
        self.page_hinkley: Any = drift.PageHinkley() if page_hinkley else None
        self.last = math.nan
        self.last_ts = -1

    def update(self, ts_ms: int, x: float) -> None:
        self.var.update(x)
        self.min.update(x)
        self.max.update(x)
        self.sum.update(x)
        self.ew_mean.update(x)
        self.ew_var.update(x)
        if self.page_hinkley is not None:
            self.page_hinkley.update(x)
        if ts_ms >= self.last_ts:
            self.last, self.last_ts = x, ts_ms

    def update_many(self, ts_ms: Any, values: Any) -> None:
        """Readings from numpy arrays or lists, one at a time."""
        for t, x in zip(_as_list(ts_ms), _as_list(values), strict=True):
            self.update(t, x)
