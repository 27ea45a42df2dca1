"""EWMA control chart (Roberts 1959; Lucas and Saccucci 1990) on standardised readings.

``w = lam * z + (1 - lam) * w`` from ``w = 0``; it signals while ``|w| > L * s``, where
``s = sqrt(lam / (2 - lam) * (1 - (1 - lam)**(2 i)))`` is the exact standard deviation of ``w`` after
``i`` readings (so the chart is not blind at the start). The chart is not reset by a signal: it keeps
signalling while the shift lasts, which is what keeps a drift alert open. ``w`` itself is the
smoothed estimate of the current shift in sigma units; :mod:`models.signal_monitor` reports it as the
shift size and uses it to decide when a drift has returned to the baseline band.

State slice (:data:`SIZE` floats): ``W``, ``DECAY`` (``(1 - lam)**(2 i)``).

>>> import numpy as np
>>> EwmaChart(lam=0.2, L=3.0).detect(np.r_[np.zeros(20), np.full(5, 2.0)]).tolist()
[23, 24]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from models.arrays import FloatArray, IntArray, as_values
from models.finite import FLUSH_EVERY, flushed
from models.numba_config import kernel

__all__ = ["SETTLED", "SIZE", "EwmaChart", "init", "step"]

W: Final = 0
DECAY: Final = 1
SIZE: Final = 2
# At or below 2**-54, 1 - decay rounds to exactly 1, so the limit no longer depends on decay: it is
# set to 0 there, limits bit for bit as before. Left alone, decay would sink to a subnormal and stay
# (models.finite: why), ~90 ns a reading instead of ~3 for the monitor's whole EWMA pass on Intel.
SETTLED: Final = 2.0**-54


@kernel
def init(state: FloatArray, base: int) -> None:
    state[base + W] = 0.0
    state[base + DECAY] = 1.0


@kernel
def step(w: float, decay: float, z: float, lam: float, limit: float) -> tuple[float, float, bool]:
    """One standardised reading over scalars; returns ``(w, decay, beyond the limit)``."""
    keep = 1.0 - lam
    w = lam * z + keep * w
    # Settled charts skip the decay (a predictable branch): its two multiplications and the select
    # were the loop's longest carried chain.
    if decay != 0.0:
        decay = decay * keep * keep
        if decay <= SETTLED:
            decay = 0.0
    # Compare squares: no sqrt in the per-reading path.
    return w, decay, w * w > limit * limit * (lam / (2.0 - lam)) * (1.0 - decay)


@kernel
def _detect_kernel(
    state: FloatArray, values: FloatArray, mu0: float, sigma: float, lam: float, limit: float, out: IntArray
) -> int:
    found = 0
    w, decay = state[W], state[DECAY]
    n = values.shape[0]
    for block in range(0, n, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, n)):
            w, decay, hit = step(w, decay, (values[i] - mu0) / sigma, lam, limit)
            if hit:
                out[found] = i
                found += 1
        w = flushed(w)
    state[W], state[DECAY] = w, decay
    return found


class EwmaChart:
    """EWMA chart of readings with in-control mean ``mu0`` and standard deviation ``sigma``."""

    def __init__(self, lam: float = 0.2, L: float = 3.0, mu0: float = 0.0, sigma: float = 1.0) -> None:
        if not (0 < lam <= 1 and L > 0 and sigma > 0 and math.isfinite(mu0)):
            raise ValueError("0 < lam <= 1, L > 0, sigma > 0 and a finite mu0 are required")
        self.lam, self.L, self.mu0, self.sigma = float(lam), float(L), float(mu0), float(sigma)
        self.state = np.empty(SIZE, dtype=np.float64)
        init(self.state, 0)

    @property
    def value(self) -> float:
        """The smoothed shift, in sigma."""
        return float(self.state[W])

    def detect(self, values: FloatArray) -> IntArray:
        values = as_values(values)
        out = np.empty(values.shape[0], dtype=np.int64)
        return out[: _detect_kernel(self.state, values, self.mu0, self.sigma, self.lam, self.L, out)]
