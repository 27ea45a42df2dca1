"""A mergeable quantile sketch with relative error, for cycle times (p50/p95/p99 per machine and product).

Values go into logarithmic bins ``i = ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``; every
value in bin ``i`` lies in ``(gamma**(i-1), gamma**i]``, and answering with the bin's midpoint
``2 * gamma**i / (gamma + 1)`` is within a relative error ``a`` of any value in it (the DDSketch idea
of Masson et al., 2019). Bins are counts, so two sketches merge by adding counts, exactly: a shift's
sketch is the sum of its hours'. Cycle times cluster, so a sparse ``{bin: count}`` map stays small
(tens of bins) and serialises into the machine's table state.

>>> sketch = QuantileSketch()
>>> sketch.add(np.array([10.0, 11.0, 12.0, 13.0, 40.0]))
>>> abs(sketch.quantile(0.5) - 12.0) <= 0.01 * 12.0
True
>>> sketch.count
5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.numba_config import kernel

__all__ = ["DEFAULT_RELATIVE_ACCURACY", "QuantileSketch", "SketchBins"]

DEFAULT_RELATIVE_ACCURACY = 0.01
_MIN_VALUE = 1e-9  # cycle times are positive; anything smaller is clamped into the lowest bin


@kernel
def _bin_indices(values: npt.NDArray[np.float64], log_gamma: float) -> npt.NDArray[np.int64]:
    out = np.empty(values.shape[0], dtype=np.int64)
    for i in range(values.shape[0]):
        value = max(values[i], _MIN_VALUE)
        out[i] = math.ceil(math.log(value) / log_gamma)
    return out


@dataclass(frozen=True, slots=True)
class SketchBins:
    """Values already binned: the bin indexes, their counts, and the number of values."""

    indices: list[int]
    counts: list[int]
    total: int
    relative_accuracy: float


@dataclass(slots=True)
class QuantileSketch:
    """Counts per logarithmic bin; ``relative_accuracy`` is the guaranteed relative error of quantiles."""

    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    bins: dict[int, int] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.relative_accuracy < 1:
            raise ValueError("relative_accuracy must lie in (0, 1)")

    @property
    def _gamma(self) -> float:
        return (1 + self.relative_accuracy) / (1 - self.relative_accuracy)

    def add(self, values: npt.NDArray[np.float64]) -> None:
        """Add positive, finite values (a batch; one call per batch, not per value)."""
        if values.dtype != np.float64 or values.ndim != 1:
            raise ValueError("values must be a 1-D float64 array")
        if values.size == 0:
            return
        self.add_bins(self.bins_of(values))

    def bins_of(self, values: npt.NDArray[np.float64]) -> SketchBins:
        """The (bin, count) pairs ``values`` would add: bin once, add to several sketches."""
        if values.dtype != np.float64 or values.ndim != 1:
            raise ValueError("values must be a 1-D float64 array")
        if not np.isfinite(values).all() or (values <= 0).any():
            raise ValueError("values must be positive and finite")
        indices, counts = np.unique(_bin_indices(values, math.log(self._gamma)), return_counts=True)
        return SketchBins(indices.tolist(), counts.tolist(), int(values.size), self.relative_accuracy)

    def add_bins(self, bins: SketchBins) -> None:
        if bins.relative_accuracy != self.relative_accuracy:
            raise ValueError("bins of a sketch with another relative accuracy")
        for index, count in zip(bins.indices, bins.counts, strict=True):
            self.bins[index] = self.bins.get(index, 0) + count
        self.count += bins.total

    def add_value(self, value: float) -> None:
        """Add one value without numpy: the per-event path (a cycle event carries one time)."""
        if not math.isfinite(value) or value <= 0:
            raise ValueError("values must be positive and finite")
        index = math.ceil(math.log(max(value, _MIN_VALUE)) / math.log(self._gamma))
        self.bins[index] = self.bins.get(index, 0) + 1
        self.count += 1

    def merge(self, other: QuantileSketch) -> None:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("only sketches with the same relative accuracy merge")
        for index, count in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + count
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1) within the relative accuracy, or None when empty."""
        if not 0 <= q <= 1:
            raise ValueError("q must lie in [0, 1]")
        if self.count == 0:
            return None
        # Rank as numpy's 'lower' method counts it: the value at position floor(q * (n - 1)).
        rank = math.floor(q * (self.count - 1))
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen > rank:
                return 2 * self._gamma**index / (self._gamma + 1)
        raise AssertionError("unreachable: counts add up to count")  # pragma: no cover

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.relative_accuracy,
            "bins": [[i, c] for i, c in sorted(self.bins.items())],
            "n": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> QuantileSketch:
        bins = data["bins"]
        assert isinstance(bins, list)
        accuracy = data["a"]
        count = data["n"]
        assert isinstance(accuracy, float) and isinstance(count, int)
        return cls(relative_accuracy=accuracy, bins={int(i): int(c) for i, c in bins}, count=count)
