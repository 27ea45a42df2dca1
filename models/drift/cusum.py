"""Two-sided tabular CUSUM (Page 1954; Montgomery, *Introduction to SPC*, ch. 9) on standardised readings.

With ``z = (x - mu0) / sigma``: ``C+ = max(0, C+ + z - k)``, ``C- = max(0, C- - z - k)``; a side
signals when it exceeds ``h`` and then restarts from zero, so a persisting shift signals again only
after another ``h / (shift - k)`` readings. ``k`` is half the shift (in sigma) the chart is tuned
for; ``h`` sets the false-alarm rate (``k = 0.5, h = 5`` gives an in-control ARL of about 465
independent readings). The shift estimate at a signal is ``k + C / N`` (``N`` readings since the
side last stood at zero), Montgomery's estimator.

State slice (:data:`SIZE` floats): ``HI``, ``LO``, ``N_HI``, ``N_LO``, ``SHIFT`` (estimate at the
last signal, in sigma, signed).

>>> import numpy as np
>>> Cusum(k=0.5, h=4.0).detect(np.r_[np.zeros(20), np.full(10, 2.0)]).tolist()
[22, 25, 28]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from models.arrays import FloatArray, IntArray, as_values
from models.numba_config import kernel

__all__ = ["SIZE", "Cusum", "init", "step"]

HI: Final = 0
LO: Final = 1
N_HI: Final = 2
N_LO: Final = 3
SHIFT: Final = 4
SIZE: Final = 5


@kernel
def init(state: FloatArray, base: int) -> None:
    for i in range(SIZE):
        state[base + i] = 0.0


@kernel
def step(
    hi: float, lo: float, n_hi: float, n_lo: float, z: float, k: float, h: float
) -> tuple[float, float, float, float, float]:
    """One standardised reading over scalars; returns ``(hi, lo, n_hi, n_lo, shift)``.

    ``shift`` is 0.0 without a signal, else the signed shift estimate (in sigma) of the side that
    signalled, which then restarts from zero.
    """
    hi = max(0.0, hi + z - k)
    lo = max(0.0, lo - z - k)
    n_hi = n_hi + 1.0 if hi > 0.0 else 0.0
    n_lo = n_lo + 1.0 if lo > 0.0 else 0.0
    shift = 0.0
    if hi > h:
        shift = k + hi / n_hi
        hi = 0.0
        n_hi = 0.0
    elif lo > h:
        shift = -(k + lo / n_lo)
        lo = 0.0
        n_lo = 0.0
    return hi, lo, n_hi, n_lo, shift


@kernel
def _detect_kernel(
    state: FloatArray, values: FloatArray, mu0: float, sigma: float, k: float, h: float, out: IntArray
) -> int:
    found = 0
    hi, lo, n_hi, n_lo = state[HI], state[LO], state[N_HI], state[N_LO]
    for i in range(values.shape[0]):
        hi, lo, n_hi, n_lo, shift = step(hi, lo, n_hi, n_lo, (values[i] - mu0) / sigma, k, h)
        if shift != 0.0:
            out[found] = i
            found += 1
            state[SHIFT] = shift
    state[HI], state[LO], state[N_HI], state[N_LO] = hi, lo, n_hi, n_lo
    return found


class Cusum:
    """Two-sided CUSUM of readings with in-control mean ``mu0`` and standard deviation ``sigma``."""

    def __init__(self, k: float = 0.5, h: float = 5.0, mu0: float = 0.0, sigma: float = 1.0) -> None:
        if not (k >= 0 and h > 0 and sigma > 0 and math.isfinite(mu0)):
            raise ValueError("k >= 0, h > 0, sigma > 0 and a finite mu0 are required")
        self.k, self.h, self.mu0, self.sigma = float(k), float(h), float(mu0), float(sigma)
        self.state = np.zeros(SIZE, dtype=np.float64)

    @property
    def shift_sigma(self) -> float:
        """Estimated shift at the last signal, in sigma (signed)."""
        return float(self.state[SHIFT])

    def detect(self, values: FloatArray) -> IntArray:
        values = as_values(values)
        out = np.empty(values.shape[0], dtype=np.int64)
        return out[: _detect_kernel(self.state, values, self.mu0, self.sigma, self.k, self.h, out)]
