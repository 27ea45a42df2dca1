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

from models.drift._arrays import FloatArray, IntArray, as_values
from models.numba_config import kernel

__all__ = ["SETTLED", "SIZE", "EwmaChart", "advance_decay", "init", "step"]

W: Final = 0
DECAY: Final = 1
SIZE: Final = 2

# Below this ``1.0 - decay`` rounds to exactly 1.0 (anything under 2**-54 does): the limit has
# settled, and a loop may carry ``decay = 0.0`` for the same comparisons. It must not carry the
# real one: ``decay * keep * keep`` sinks into the subnormal range and stays there (rounding makes
# a small subnormal its own product), and every multiplication by a subnormal takes a microcode
# assist: ~100 ns a reading more, for ever, from ~72,000 readings on at lam 0.005.
SETTLED: Final = 2.0**-60


@kernel
def init(state: FloatArray, base: int) -> None:
    state[base + W] = 0.0
    state[base + DECAY] = 1.0


@kernel
def step(w: float, decay: float, z: float, lam: float, limit: float) -> tuple[float, float, bool]:
    """One standardised reading over scalars; returns ``(w, decay, beyond the limit)``."""
    keep = 1.0 - lam
    w = lam * z + keep * w
    decay = decay * keep * keep
    # Compare squares: no sqrt in the per-reading path.
    return w, decay, w * w > limit * limit * (lam / (2.0 - lam)) * (1.0 - decay)


@kernel
def advance_decay(decay: float, lam: float, n: int) -> float:
    """``decay`` after ``n`` readings of :func:`step`, bit for bit: stops once it no longer changes
    (0.0, or the subnormal it gets stuck at), so a settled chart pays one multiplication a call."""
    keep = 1.0 - lam
    for _ in range(n):
        after = decay * keep * keep
        if after == decay:
            break
        decay = after
    return decay


@kernel
def _detect_kernel(
    state: FloatArray, values: FloatArray, mu0: float, sigma: float, lam: float, limit: float, out: IntArray
) -> int:
    found = 0
    w, decay = state[W], state[DECAY]
    settled = decay < SETTLED
    running = 0.0 if settled else decay  # the same comparisons, without subnormals (SETTLED)
    for i in range(values.shape[0]):
        w, running, hit = step(w, running, (values[i] - mu0) / sigma, lam, limit)
        if hit:
            out[found] = i
            found += 1
    state[W] = w
    state[DECAY] = advance_decay(decay, lam, values.shape[0]) if settled else running
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
