"""Cycle times of one product in one window: count, mean, standard deviation, quantiles, speed loss.

Mean and variance come from running sums (exact to merge); p50/p95/p99 from a relative-error
:class:`~models.quantile_sketch.QuantileSketch` (1 %), so an hour's figures merge into a shift's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from models.numba_config import kernel
from models.quantile_sketch import QuantileSketch, SketchBins


@kernel
def _running_sums(values: npt.NDArray[np.float64], total: float, total_sq: float) -> tuple[float, float]:
    # One value at a time, in order and without fastmath: bit-identical to adding them one by one
    # in Python, so a window's sums do not depend on how its cycles were batched.
    for value in values:
        total += value
        total_sq += value * value
    return total, total_sq


__all__ = ["MAX_WINDOW_PRODUCTS", "OTHER_PRODUCTS", "CycleStats", "stats_of"]

# Products come from telemetry (a gateway may send lot or serial numbers), and a window's cycle
# times are kept per product in the machine's state and in its KPI record: bounded, or one
# tenant's day record outgrew what the broker takes (1 MB by default), and the worker, retrying it,
# stopped for every machine it owns. A window keeps its first MAX_WINDOW_PRODUCTS products apart
# (~170 bytes each in a record) and the cycles of any further product together under
# OTHER_PRODUCTS, which no product code can be (streams.contract.ID_PATTERN), so a window's
# cycle count and mean stay whole.
MAX_WINDOW_PRODUCTS: Final = 64
OTHER_PRODUCTS: Final = "*"


@dataclass(slots=True)
class CycleStats:
    ideal_s: float | None = None
    count: int = 0
    total_s: float = 0.0
    total_sq: float = 0.0
    sketch: QuantileSketch = field(default_factory=QuantileSketch)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.total_sq += seconds * seconds
        self.sketch.add_value(seconds)

    def add_many(self, seconds: npt.NDArray[np.float64], bins: SketchBins | None = None) -> None:
        """Add cycle times in order: the same sums as :meth:`add` one by one, one sketch update.

        ``bins`` are the sketch's bins of ``seconds`` when the caller adds the same times to
        several windows and has binned them once.
        """
        self.count += int(seconds.shape[0])
        self.total_s, self.total_sq = _running_sums(seconds, self.total_s, self.total_sq)
        if bins is None:
            self.sketch.add(seconds)
        else:
            self.sketch.add_bins(bins)

    def merge(self, other: CycleStats) -> None:
        self.count += other.count
        self.total_s += other.total_s
        self.total_sq += other.total_sq
        self.sketch.merge(other.sketch)

    def figures(self) -> dict[str, float | int | None]:
        """count, mean_s, std_s (sample), p50_s, p95_s, p99_s, ideal_s and speed_loss_s.

        ``speed_loss_s`` is the time these cycles took beyond the ideal cycle: Σ(cycle − ideal).
        """
        mean = self.total_s / self.count if self.count else None
        std = None
        if self.count > 1 and mean is not None:
            variance = (self.total_sq - self.count * mean * mean) / (self.count - 1)
            std = math.sqrt(max(variance, 0.0))
        return {
            "count": self.count,
            "mean_s": mean,
            "std_s": std,
            "p50_s": self.sketch.quantile(0.5),
            "p95_s": self.sketch.quantile(0.95),
            "p99_s": self.sketch.quantile(0.99),
            "ideal_s": self.ideal_s,
            "speed_loss_s": self.total_s - self.ideal_s * self.count if self.ideal_s is not None else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ideal_s": self.ideal_s,
            "count": self.count,
            "total_s": self.total_s,
            "total_sq": self.total_sq,
            "sketch": self.sketch.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleStats:
        return cls(
            ideal_s=data["ideal_s"],
            count=data["count"],
            total_s=data["total_s"],
            total_sq=data["total_sq"],
            sketch=QuantileSketch.from_dict(data["sketch"]),
        )


def stats_of(products: dict[str, CycleStats], key: str, ideal_s: float | None) -> CycleStats:
    """The statistics a window keeps the cycles of product ``key`` ("-": none) in: its own, created
    while the window has fewer than :data:`MAX_WINDOW_PRODUCTS`, else :data:`OTHER_PRODUCTS`'
    (no ideal cycle: its products have different ones)."""
    stats = products.get(key)
    if stats is not None:
        return stats
    if len(products) - (OTHER_PRODUCTS in products) < MAX_WINDOW_PRODUCTS:
        stats = products[key] = CycleStats(ideal_s=ideal_s)
        return stats
    stats = products.get(OTHER_PRODUCTS)
    if stats is None:
        stats = products[OTHER_PRODUCTS] = CycleStats()
    return stats
